"""Run by tests/test_distributed.py, alone or under torchrun: one GAN training step (D step, R1,
G step) on a fixed global batch, in float64, saving the gradient each update applied (rank 0's,
which DDP has averaged over the ranks). Learning rates are 0, so every phase sees the same weights
in any world size: what is compared is the gradients themselves, not Adam's reaction to float
noise (its first steps move each weight by about +-lr, whatever the gradient's size).

    python tests/ddp_gradients.py PRESET OUT.safetensors [key=value ...]
"""

import sys

import torch
from safetensors.torch import save_file

# float64, set before brushwork builds its constants: in float32 R1's second derivative through
# BatchNorm differs by ~1e-3 between one process and two from summation order alone; in float64
# by ~1e-6, so the test can be tight.
torch.set_default_dtype(torch.float64)

from brushwork.config import gan_preset  # noqa: E402
from brushwork.training.distributed import barrier, close_world, init_world  # noqa: E402
from brushwork.training.gan import GANTask  # noqa: E402


def main(preset: str, out: str, *overrides: str) -> None:
    world, device = init_world("cpu")
    cfg = gan_preset(preset, 32)
    cfg.g_width = cfg.d_width = 8
    cfg.g_lr = cfg.d_lr = 0.0
    cfg.mixed_precision, cfg.diffaugment, cfg.r1_interval, cfg.r1_gamma = "no", "", 1, 0.1
    for item in overrides:
        key, value = item.split("=")
        setattr(cfg, key, type(getattr(cfg, key))(value))
    task = GANTask(cfg, device, seed=0, world=world)
    grads: dict[str, torch.Tensor] = {}
    for side, opt, module in (("D", task.opt_d, task.D), ("G", task.opt_g, task.G)):
        _record(side, opt, module, grads)
    torch.manual_seed(1)
    real = world.rows(torch.rand(8, 3, 32, 32) * 2 - 1)  # the global batch; this rank's rows
    labels = world.rows(torch.arange(8) % cfg.num_styles) if cfg.styled else None
    task.train_step(real, 0, labels)
    if world.main:
        save_file(grads, out)
    # every rank arrives before the group is torn down: a rank tearing it down while its peer
    # was still busy aborted the peer once in a full CI run ("terminate called without an active exception")
    barrier(world)
    close_world(world)


def _record(side: str, opt: torch.optim.Optimizer, module: torch.nn.Module, grads: dict) -> None:
    """Wrap ``opt.step`` to keep each parameter's gradient as the update sees it (None: absent)."""
    step, calls = opt.step, [0]

    def recording_step(*args, **kwargs):
        for name, p in module.named_parameters():
            if p.grad is not None:
                grads[f"{side}{calls[0]}/{name}"] = p.grad.detach().clone(memory_format=torch.contiguous_format)
        calls[0] += 1
        return step(*args, **kwargs)

    opt.step = recording_step


if __name__ == "__main__":
    main(*sys.argv[1:])
