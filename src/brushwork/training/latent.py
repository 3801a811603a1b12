"""Latent diffusion's training data: each work encoded once by the autoencoder, never per step.

``train diffusion --latent AE`` names an autoencoder run (``brushwork train autoencoder``). When
training starts, every work and its mirror image are encoded into posterior means and kept in a
cache keyed by the collection, the canvas and the autoencoder's hash (a resumed run, or another
run on the same autoencoder, reads them back). The latents are scaled so that their spread is the
diffusion model's sigma_data (the scale is recorded in the run's config), and the autoencoder's
weights travel in every checkpoint of the run, so its images never depend on the autoencoder run
staying as it was.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from brushwork.config import AutoencoderConfig, DiffusionConfig, RunConfig, canvas_of, from_dict, size_text
from brushwork.data.dataset import ArtDataset, ImageBatcher, default_cache_dir
from brushwork.errors import BrushworkError
from brushwork.imaging import unit_from_uint8
from brushwork.models.autoencoder import LatentCodec
from brushwork.runs import checkpoint as ckpt
from brushwork.runs.builtin import resolve_run
from brushwork.runs.directory import read_run_config
from brushwork.utils import atomic_write, float32_hash

AUTOENCODER_MODULE = "autoencoder"  # the checkpoint module holding an autoencoder's weights (both kinds of run)


def attach_autoencoder(cfg: DiffusionConfig, ae_run: str | Path) -> DiffusionConfig:
    """``cfg`` set to learn in the latents of the autoencoder run ``ae_run``; refused in one line
    when that run is untrained or encodes another canvas."""
    ae_run = Path(ae_run).expanduser().resolve()
    ae_cfg = read_run_config(ae_run)  # "not a brushwork run" when it is none; its family is checked by
    # the caller (training.families: a run that can be a latent space)
    if ckpt.latest_checkpoint(ae_run) is None:
        raise BrushworkError(f"--latent {ae_run.name}: it has no checkpoint yet; train it first")
    ae = ae_cfg.model
    want, have = canvas_of(cfg.resolution, cfg.height), canvas_of(ae.resolution, ae.height)
    if want != have:
        raise BrushworkError(f"--latent {ae_run.name}: it encodes {size_text(ae.resolution, ae.height)} px works, "
                             f"not {size_text(cfg.resolution, cfg.height)} px; train at its size (or "
                             f"another autoencoder at this one)")
    return dataclasses.replace(cfg, autoencoder=str(ae_run), autoencoder_config=dataclasses.asdict(ae))


def check_same_autoencoder(cfg: DiffusionConfig, ae_run: str | Path) -> None:
    """A latent run resumed with ``--latent AE`` must name the autoencoder it learns in, as it was:
    one line otherwise (without --latent it goes on with the copy its checkpoints carry)."""
    ae_run = Path(ae_run).expanduser().resolve()
    newest = ckpt.latest_checkpoint(ae_run) if (ae_run / "config.json").is_file() else None
    found = "none"
    if newest is not None:
        found = autoencoder_hash(ckpt.read_checkpoint(newest, ckpt.sampling_prefixes((AUTOENCODER_MODULE,)))[0])
    if not cfg.autoencoder:
        raise BrushworkError("--latent: this run learns in pixels; a run cannot move into an autoencoder's "
                             "latents (start a new one with --latent)")
    if found != cfg.autoencoder_hash:
        raise BrushworkError(f"--latent {ae_run.name}: not the autoencoder this run learns in (it started on "
                             f"{Path(cfg.autoencoder).name}, model {cfg.autoencoder_hash[:10]}; {ae_run.name} now "
                             f"holds {found[:10]}, so its latents would not match); resume without --latent to go "
                             f"on with the autoencoder the run carries, or start a new run")


def autoencoder_hash(tensors: dict[str, torch.Tensor]) -> str:
    """The identity a latent run records of its autoencoder (the checkpoint ``tensors`` holding it),
    in float32: a run fully fine-tuned from the float16 base saves the same weights as float32."""
    return float32_hash(ckpt.module_state(tensors, AUTOENCODER_MODULE))


def _autoencoder_weights(cfg: DiffusionConfig, run_dir: Path, parent: str = "") -> dict[str, torch.Tensor]:
    """The autoencoder a latent run trains with: the copy in its own newest checkpoint when it has
    one (a resumed run), else its parent's (a run adapted from a latent run: ``parent``), else the
    autoencoder run's newest; refused if it is not the one the run started with."""
    sources = [ckpt.latest_checkpoint(run_dir), ckpt.latest_checkpoint(resolve_run(parent)) if parent else None,
               ckpt.latest_checkpoint(Path(cfg.autoencoder)) if Path(cfg.autoencoder).is_dir() else None]
    weights = {}
    for source in filter(None, sources):
        tensors, _ = ckpt.read_checkpoint(source, prefixes=ckpt.sampling_prefixes((AUTOENCODER_MODULE,)))
        if weights := ckpt.module_state(tensors, AUTOENCODER_MODULE):
            break
    if not weights:
        raise BrushworkError(f"the autoencoder run {cfg.autoencoder} has no checkpoint (it was removed?)")
    found = autoencoder_hash(tensors)
    if cfg.autoencoder_hash and found != cfg.autoencoder_hash:
        raise BrushworkError(f"the autoencoder {Path(cfg.autoencoder).name} has changed since this run started "
                             f"(model {cfg.autoencoder_hash[:10]}, now {found[:10]}): its latents would no longer "
                             f"match; continue with the autoencoder it had, or start a new run")
    ae_cfg = from_dict(AutoencoderConfig, cfg.autoencoder_config)
    channels = weights["decoder.net.0.weight"].shape[1] if "decoder.net.0.weight" in weights else -1
    if channels != ae_cfg.channels:
        raise BrushworkError(f"the autoencoder {Path(cfg.autoencoder).name} has {channels} latent channels, "
                             f"this run was set up for {ae_cfg.channels}; start a new run with --latent")
    cfg.autoencoder_hash = found
    return weights


@torch.no_grad()
def encode_works(codec: LatentCodec, ds: ArtDataset, device: torch.device, batch: int = 32,
                 progress: bool = True) -> torch.Tensor:
    """Posterior means of every work and of its mirror image: float16 [N, 2, C, h, w] (unscaled)."""
    h, w = canvas_of(codec.autoencoder_cfg.resolution, codec.autoencoder_cfg.height)
    top, left = (ds.images.shape[-2] - h) // 2, (ds.images.shape[-1] - w) // 2
    out = []
    for chunk in tqdm(ds.images.split(batch), desc="encoding works", unit="batch", file=sys.stderr,
                      disable=not progress or len(ds) <= batch):
        x = unit_from_uint8(chunk[..., top:top + h, left:left + w]).to(device)
        both = codec.encode(torch.cat([x, x.flip(3)]))
        out.append(torch.stack(both.chunk(2), dim=1).half().cpu())
    return torch.cat(out)


def cached_latents(codec: LatentCodec, ds: ArtDataset, ae_hash: str, cache_dir: str, device,
                   progress: bool = True) -> torch.Tensor:
    """``encode_works``, kept in the cache (atomically written) under the collection's
    fingerprint, the canvas and the autoencoder's hash; an unchanged collection is never
    encoded twice by the same autoencoder."""
    ae = codec.autoencoder_cfg
    name = f"{ds.fingerprint or 'uncached'}-{size_text(ae.resolution, ae.height)}-{ae_hash[:16]}.safetensors"
    path = Path(cache_dir or default_cache_dir()) / "latents" / name
    if ds.fingerprint and path.is_file():
        try:
            return load_file(str(path))["latents"]
        except Exception:  # a damaged cache file is encoded again
            pass
    latents = encode_works(codec, ds, device, progress=progress)
    if ds.fingerprint:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, save({"latents": latents.contiguous()}))
    return latents


@dataclasses.dataclass
class EncodedWorks:
    """A collection as latents [N, 2, C, h, w] (index 1: the mirrored work), scaled, with labels."""

    images: torch.Tensor
    labels: torch.Tensor
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def batcher(self, train_cfg, device, world) -> "LatentBatcher":
        return LatentBatcher(self, train_cfg.batch_size, tuple(self.images.shape[-2:]), device,
                             train_cfg.flip, train_cfg.seed, train_cfg.data_on_device, world=world)


class LatentBatcher(ImageBatcher):
    """ImageBatcher's shuffled, resumable order over encoded works; a flip picks the mirrored
    work's latent (a latent mirrored is not the latent of the mirrored work)."""

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._next_indices()
        flips = self._rows(torch.rand(len(idx), generator=self.generator) < 0.5) if self.flip else None
        idx = self._rows(idx)
        dev = self.images.device
        side = flips.long().to(dev) if flips is not None else torch.zeros(len(idx), dtype=torch.long, device=dev)
        batch = self.images[idx.to(dev), side]  # [B, C, h, w]
        return batch.to(self.device).float(), self.labels[idx.to(dev)].to(self.device)


def prepare_latent_task(task, run_cfg: RunConfig, ds: ArtDataset, run_dir: Path,
                        progress: bool = True) -> EncodedWorks:
    """Give a latent run's DiffusionTask its autoencoder and return the works it trains on, encoded
    (from the cache when they were before); sets the run's autoencoder hash and latent scale."""
    cfg, tc = run_cfg.model, run_cfg.train
    codec = LatentCodec(cfg.latent_autoencoder)
    codec.autoencoder.load_state_dict(_autoencoder_weights(cfg, run_dir, tc.init_from))
    codec = codec.to(task.device).eval().requires_grad_(False)
    latents = cached_latents(codec, ds, cfg.autoencoder_hash, tc.cache_dir, task.device, progress)
    if not cfg.latent_scale:  # first start: bring the latents' spread to sigma_data
        cfg.latent_scale = round(cfg.sigma_data / latents.float().std().item(), 6)
    codec.scale = cfg.latent_scale
    task.use_codec(codec)
    return EncodedWorks(latents.float() * cfg.latent_scale, ds.labels, ds.label_names)
