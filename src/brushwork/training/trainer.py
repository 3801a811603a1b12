"""The one training loop every model family uses.

A *task* (GANTask, and later other families) owns models, optimisers and ``train_step``; the
Trainer owns everything around it: batches, the progress bar, metrics.jsonl and TensorBoard,
sample grids, NaN detection, atomic checkpoints, resume and Ctrl-C.

Task protocol: ``modules()``, ``optimizers()``, ``train_step(images, step, labels) -> dict of 0-d
tensors`` (labels: style indices [B]),
``preview() -> images [N, 3, R, R] in [-1, 1]`` (fixed inputs, so grids are comparable over time),
``device``; optionally ``validate() -> dict of floats`` (held-out metrics for each log row).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from brushwork.data.dataset import ImageBatcher
from brushwork.errors import TrainingDiverged
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.directory import append_jsonl
from brushwork.training.distributed import SINGLE, World, agree, mean_over_ranks, peer_lost
from brushwork.imaging import save_grid
from brushwork.utils import atomic_write, reuse_freed_memory


STOP_CHECK_EVERY = 10  # steps between the ranks' agreements on stopping (each one syncs the host)


class MetricsLog:
    """metrics.jsonl (one JSON object per log interval) plus optional TensorBoard scalars."""

    def __init__(self, run_dir: Path, start_step: int):
        self.path = run_dir / "metrics.jsonl"
        self._drop_rows_after(start_step)  # rows logged after the checkpoint we resumed from
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        except ImportError:  # TensorBoard is optional at run time
            pass

    def _drop_rows_after(self, step: int) -> None:
        if not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write(self.path, "".join(r + "\n" for r in rows).encode())

    def write(self, row: dict) -> None:
        append_jsonl(self.path, row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["step"])

    def image(self, tag: str, grid_path: Path, step: int) -> None:
        if self.tb is not None:
            import numpy as np
            from PIL import Image

            self.tb.add_image(tag, np.asarray(Image.open(grid_path)), step, dataformats="HWC")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Trainer:
    def __init__(self, task, batcher: ImageBatcher, run_dir: Path, train_cfg, info: dict | None = None,
                 progress: bool = True, evaluator=None, world: World = SINGLE):
        self.task, self.batcher, self.cfg, self.world = task, batcher, train_cfg, world
        self.run_dir = Path(run_dir)
        self.info = info or {}
        self.progress = progress
        self.evaluator = evaluator  # () -> {"eval_<metric>": value}, run every cfg.eval_every steps
        self.step = 0
        self.stop_requested = False
        self.clock = time.perf_counter

    # -- checkpoints ----------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"rng/cpu": torch.get_rng_state()}
        if self.task.device.type == "cuda":
            state["rng/cuda"] = torch.cuda.get_rng_state(self.task.device)
        state.update({f"batcher/{k}": v for k, v in self.batcher.state_dict().items()})
        if hasattr(self.task, "extra_state"):  # e.g. a second data stream of the task's own
            state.update({f"task/{k}": v for k, v in self.task.extra_state().items()})
        return state

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 only; every rank holds the same weights)."""
        if not self.world.main:
            return None
        path = ckpt.checkpoint_path(self.run_dir, self.step)
        ckpt.save_checkpoint(path, self.step, self.task.modules(), self.task.optimizers(),
                             self._rng_state(), self.info)
        ckpt.prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)
        return path

    def resume(self) -> int:
        """Restore the newest complete checkpoint; returns its step (0 when there is none)."""
        path = ckpt.latest_checkpoint(self.run_dir)
        if path is None:
            return 0
        self.step, state, _ = ckpt.load_checkpoint(path, self.task.modules(), self.task.optimizers())
        torch.set_rng_state(state["rng/cpu"])
        if "rng/cuda" in state and self.task.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng/cuda"], self.task.device)
        self.batcher.load_state_dict({k[len("batcher/"):]: v for k, v in state.items()
                                      if k.startswith("batcher/")})
        if hasattr(self.task, "load_extra_state"):
            self.task.load_extra_state({k[len("task/"):]: v for k, v in state.items()
                                        if k.startswith("task/")})
        return self.step

    # -- the loop -------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested:  # second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self.stop_requested = True

    def _log(self, log: MetricsLog | None, sums: dict, count: int, seconds: float, bar) -> None:
        row = {"step": self.step}
        means = mean_over_ranks(self.world, {key: float(total) / count for key, total in sums.items()})
        for key, value in means.items():
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"{key} became {value} near step {self.step}; stopped without saving. "
                    f"The last good checkpoint is kept in {self.run_dir / 'checkpoints'}; "
                    f"try a lower learning rate or another preset")
            row[key] = round(value, 5)
        global_batch = self.cfg.batch_size * self.world.size
        row["img_per_s"] = round(count * global_batch / max(seconds, 1e-9), 1)
        row["images_seen"] = self.step * global_batch
        if log is None:  # not rank 0: the row is written there
            return
        if hasattr(self.task, "validate"):  # held-out metrics, for tasks that have them
            row.update(self.task.validate())
        if self.evaluator is not None and getattr(self.cfg, "eval_every", 0) and \
                self.step % self.cfg.eval_every == 0:
            row.update(self.evaluator())
        log.write(row)
        shown = {k: row[k] for k in row if k.startswith(("loss", "val_bits"))}
        bar.set_postfix(shown | {"img/s": row["img_per_s"]})

    def _preview(self, log: MetricsLog | None) -> None:
        if log is None:
            return
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        save_grid(self.task.preview(), path, getattr(self.task, "preview_columns", None))
        log.image("samples", path, self.step)

    def fit(self, time_limit: float | None = None, clock=time.perf_counter) -> int:
        """Train until ``cfg.steps`` (or ``time_limit`` seconds of ``clock``: wall time, or e.g.
        ``time.process_time`` for CPU time that other work on the machine does not eat into);
        returns the final step. Ctrl-C saves a checkpoint and returns early."""
        self.clock = clock
        # CPU: activations above 32 MiB (e.g. AdaIN's 256 px VGG passes) are reused from the heap,
        # not mapped and zero-filled again every step: 12.4 vs 13.7-15.8 s per AdaIN step (batch 8).
        with reuse_freed_memory(enabled=self.task.device.type == "cpu"):
            return self._fit(time_limit)

    def _fit(self, time_limit: float | None) -> int:
        cfg = self.cfg
        deadline = self.clock() + time_limit if time_limit else None
        log = MetricsLog(self.run_dir, self.step) if self.world.main else None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = tqdm(total=None if deadline else cfg.steps, initial=self.step, desc="training", unit="step",
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        try:
            return self._loop(log, bar, deadline)
        except RuntimeError as exc:  # a collective failed: another rank died
            lost = peer_lost(exc, self.world)
            if lost is None:
                raise
            raise lost from None
        finally:
            bar.close()
            if log is not None:
                log.close()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stopping(self, deadline: float | None) -> bool:
        """Stop now? (Ctrl-C, SIGTERM or the time limit.) Under torchrun all ranks agree, every
        STOP_CHECK_EVERY steps, so that none waits in a collective for one that has left."""
        late = bool(deadline) and self.clock() > deadline
        if not self.world.distributed:
            return self.stop_requested or late
        if self.step % STOP_CHECK_EVERY:
            return False
        self.stop_requested, late = agree(self.world, self.stop_requested, late)
        return self.stop_requested or late

    def _loop(self, log: MetricsLog | None, bar, deadline: float | None) -> int:
        cfg = self.cfg
        sums: dict[str, torch.Tensor] = {}
        count, tick = 0, time.perf_counter()
        while self.step < cfg.steps:
            real, labels = self.batcher.next()
            stats = self.task.train_step(real, self.step, labels)
            for key, value in stats.items():  # summed on the device: no host sync per step
                sums[key] = sums[key] + value if key in sums else value.clone()
            self.step += 1
            count += 1
            bar.update(1)
            eval_due = bool(self.evaluator) and cfg.eval_every and self.step % cfg.eval_every == 0
            logged = self.step % cfg.log_every == 0 or self.step == cfg.steps or eval_due
            if logged:
                self._log(log, sums, count, time.perf_counter() - tick, bar)
                sums, count = {}, 0
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                self._preview(log)
            if self.step % cfg.ckpt_every == 0 and self.step != cfg.steps:
                self.save()
            if logged:  # img/s counts training steps only, not logging, grids or saving
                tick = time.perf_counter()
            if self._stopping(deadline):
                break
        if count and sums:  # stopped between log intervals: check before saving
            self._log(log, sums, count, time.perf_counter() - tick, bar)
        # saved before the last grid is drawn (a minute at 128 px on a CPU): a second Ctrl-C
        # while it is drawn stops at once and loses nothing
        self.save()
        if self.stop_requested and self.world.main:
            bar.write(f"interrupted: saved checkpoint at step {self.step}; "
                      f"continue with --resume", file=sys.stderr)
        if self.step % cfg.sample_every and self.step != cfg.steps:
            self._preview(log)  # the grid of the final weights
        return self.step
