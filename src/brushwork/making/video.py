"""Latent walks written as animated GIF (always available) or MP4 (with imageio-ffmpeg)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import BrushworkError
from brushwork.making.generate import TrainedModel, judged
from brushwork.imaging import to_uint8
from brushwork.latents import latents_for_seeds, walk, walk_latents
from brushwork.utils import atomic_write, ensure_output_file


def _gif_bytes(frames: np.ndarray, fps: float, comment: str) -> bytes:
    import io

    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=int(round(1000 / fps)), comment=comment.encode())
    return buf.getvalue()


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise BrushworkError("MP4 output needs imageio and imageio-ffmpeg "
                             "(pip install 'brushwork[video]'); or write a .gif") from None
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1) as w:
            for frame in frames:
                w.append_data(frame)
        tmp.replace(path)
    except Exception as exc:  # missing ffmpeg binary and the like
        tmp.unlink(missing_ok=True)
        raise BrushworkError(f"could not write MP4 ({exc}); write a .gif instead") from None


def write_frames(frames, out: Path, fps: float, record: dict | None) -> Path:
    """Images [F, 3, R, R] in [-1, 1] (or uint8 frames [F, R, R, 3]) -> ``out`` (.gif with the
    record in a comment, or .mp4)."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise BrushworkError(f"--out must end in .gif or .mp4, got {out.name}")
    if not 0 < fps <= 100:
        raise BrushworkError(f"fps must be in (0, 100], got {fps}")
    ensure_output_file(out)
    video = frames if isinstance(frames, np.ndarray) else to_uint8(frames)  # [F, R, R, 3]
    if suffix == ".gif":
        comment = json.dumps(record, sort_keys=True) if record else ""
        atomic_write(out, _gif_bytes(video, fps, comment))
    else:
        _write_mp4(video, out, fps)
    return out


def write_walk(model: TrainedModel, seeds: list[int], frames: int, out: Path, truncation: float = 1.0,
               fps: float = 12.0, loop: bool = False, metadata: bool = True,
               styles: list | None = None) -> Path:
    """Render a walk to ``out`` (.gif or .mp4): slerp through the seeds' latents and, on
    conditional runs, a linear blend through the key styles (``styles``, one per key; by default
    each seed's own style). One seed with several styles walks a single latent across styles."""
    ensure_output_file(out)  # an unwritable place fails before the rendering, not after
    if styles is not None and len(seeds) == 1:
        seeds = seeds * len(styles)
    if styles is not None and len(styles) != len(seeds):
        raise BrushworkError(f"{len(styles)} styles for {len(seeds)} seeds: give one seed, or one "
                             f"style per seed")
    keys = latents_for_seeds(seeds, model.z_dim, truncation)
    if styles is not None and not model.conditional:
        model.style_weights(styles, 1)  # says that this run takes no style
    key_styles = model.seed_styles(seeds) if styles is None else styles
    z = walk_latents(keys, frames, loop)
    style_frames = None
    if key_styles is not None:
        style_frames = walk(model.style_weights(key_styles, len(seeds)), frames, loop, torch.lerp)
    video = frames_of(model, z, style_frames)
    record = model.record(seeds=seeds, frames=frames, loop=loop, interpolation="slerp",
                          **model.prior_record(truncation), **judged_walk(model, video, out.name),
                          **({"styles": key_styles} if key_styles is not None else {})) if metadata else None
    return write_frames(video, out, fps, record)


def judged_walk(model: TrainedModel, video: np.ndarray, name: str, batch: int = 64) -> dict:
    """``{"originality": ...}`` for a walk whose model has a judge: COPY when any frame is one,
    which frames, and the verdict of the frame closest to a training work."""
    if model.judge is None:
        return {}
    verdicts = []
    for i in range(0, len(video), batch):
        frames = torch.from_numpy(np.ascontiguousarray(video[i:i + batch].transpose(0, 3, 1, 2)))
        verdicts += [v.get("originality") for v in judged(model, frames, [f"{name} frame {j}" for j in
                                                                         range(i, i + len(frames))])]
    if None in verdicts:  # not checked (no index)
        return {}
    closest = max(verdicts, key=lambda v: v["nearest"]["edit"]["score"])
    flagged = [i for i, v in enumerate(verdicts) if v["verdict"] == "COPY"]
    return {"originality": closest | {"verdict": "COPY" if flagged else "original", "frames_flagged": flagged}}


def frames_of(model: TrainedModel, z: torch.Tensor, styles: torch.Tensor | None = None,
              batch: int = 64) -> np.ndarray:
    """uint8 frames [F, R, R, 3] of latents [F, Z], made ``batch`` at a time: a long walk keeps
    only its 8-bit frames in memory, never all of its float images."""
    return np.concatenate([to_uint8(model.generate(z[i:i + batch], None if styles is None else styles[i:i + batch]))
                           for i in range(0, len(z), batch)])
