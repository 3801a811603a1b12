"""VGG19 feature extractor (Simonyan & Zisserman 2015), for perceptual losses.

Weights, in order of preference:

* a local file (``vgg_weights="/path/vgg19.pth"``): a torchvision-format VGG19 state dict, read
  with ``torch.load(weights_only=True)`` (never unpickles code), or a ``.safetensors`` file;
* ``"imagenet"``: torchvision's weight API (``VGG19_Weights.IMAGENET1K_V1``), which uses the torch
  hub cache (``~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth``) or downloads there;
* ``"random"``: a fixed-seed random initialisation, so features run anywhere (tests use it).
  Random features still measure image structure to a degree, but far worse than trained ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from brushwork.errors import BrushworkError, WeightsUnavailable
from brushwork.utils import tensors_hash

IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Index (in torchvision's vgg19().features) of the ReLU ending each named layer.
RELU_INDEX = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_4": 17,
              "relu4_1": 20, "relu4_2": 22, "relu5_1": 29}


def _vgg19_conv_stack() -> nn.Sequential:
    """VGG19's convolutional part (torchvision's layout and indices), without the classifier."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["E"], batch_norm=False)


def _random_state() -> dict[str, torch.Tensor]:
    """Fixed-seed He initialisation, as torchvision initialises an untrained VGG."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, module in _vgg19_conv_stack().named_children():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            state[f"features.{name}.weight"] = torch.randn(module.weight.shape, generator=generator) * (2 / fan_out) ** 0.5
            state[f"features.{name}.bias"] = torch.zeros(module.out_channels)
    return state


def _vgg19_state(weights: str) -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights

    if weights == "random":
        return _random_state()
    if weights == "imagenet":
        from brushwork.utils import network_reaches

        hub = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
        missing = WeightsUnavailable(f"ImageNet VGG19 weights are not on this machine and cannot be "
                                     f"downloaded: put {IMAGENET_FILE} ({VGG19_Weights.IMAGENET1K_V1.url}) "
                                     f"at {hub}", option="vgg_weights=PATH")
        if not hub.is_file() and not network_reaches(VGG19_Weights.IMAGENET1K_V1.url):
            raise missing  # at once: no 25 s of failing download first
        try:
            return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=not hub.is_file())
        except Exception:  # the download failed after all
            raise missing from None
    path = Path(weights)
    if not path.is_file():
        raise BrushworkError(f"VGG19 weights file not found: {weights}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BrushworkError(f"cannot read VGG19 weights {weights}: {exc}"[:300]) from None


def imagenet_weights_cached() -> bool:
    """Whether torchvision's ImageNet VGG19 file is in the torch hub cache (no download needed)."""
    return (Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE).is_file()


class VGGFeatures(nn.Module):
    """Frozen VGG19 up to the deepest requested layer; returns {layer name: features}.
    Input: images [B, 3, H, W] in [-1, 1]; ImageNet normalisation happens inside."""

    def __init__(self, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_4", "relu4_2"),
                 weights: str = "imagenet", channels_last: bool = True):
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        unknown = [name for name in layers if name not in RELU_INDEX]
        if unknown:
            raise BrushworkError(f"unknown VGG layer(s): {', '.join(unknown)}")
        conv_stack = _vgg19_conv_stack()
        state = {k[len("features."):]: v for k, v in _vgg19_state(weights).items()
                 if k.startswith("features.")}  # the classifier's weights are not needed
        try:
            conv_stack.load_state_dict(state)
        except RuntimeError as exc:
            raise BrushworkError(f"{weights} is not a VGG19 state dict: {str(exc)[:200]}") from None
        # Identity of the whole VGG19 feature stack (not just the layers kept), so every use of
        # the same weights agrees: AdaIN decoders are pinned to it.
        self.identity = tensors_hash(conv_stack.state_dict())[:16]
        # what provenance records: the named weights, or a file's name (never its local path)
        self.weights_name = weights if weights in ("imagenet", "random") else Path(weights).name
        self.layers = {RELU_INDEX[n]: n for n in layers}
        # channels_last: 1.14x faster VGG passes on oneDNN CPUs (measured at 256 px), more on GPUs
        self.features = conv_stack[: max(self.layers) + 1].eval().requires_grad_(False).to(
            memory_format=self.memory_format)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (((x + 1) / 2 - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        out = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                out[self.layers[i]] = h
        return out


def perceptual_loss(vgg: VGGFeatures, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum over layers of the mean squared feature difference (Johnson et al. 2016)."""
    fa, fb = vgg(x_hat), vgg(x)
    return sum((fa[k] - fb[k]).square().mean() for k in fa)
