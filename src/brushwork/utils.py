"""Small shared helpers: output paths and atomic file writes, device choice, hashing, heap reuse."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import platform
import tempfile
from pathlib import Path

import torch

from brushwork.errors import BrushworkError


class OutputError(BrushworkError):
    """A file or folder could not be written (unwritable place, full disk)."""


def output_error(exc: OSError, path: str | Path) -> BrushworkError:
    """One readable line for a failed write to ``path`` (the user's output path, not a bug)."""
    place = Path(path)
    reasons = {
        errno.ENOTDIR: "a file stands where a folder is needed",
        errno.EEXIST: "a file stands where a folder is needed",
        errno.EISDIR: "it is a folder; give a file name",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EFBIG: "the file is larger than this system allows (file size limit)",
        errno.ENOENT: "that place does not exist and cannot be created",
    }
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot write {place}: {reason}")


def ensure_dir(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) for output, or fail with one readable line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok only forgives folders: this one is a file
        raise OutputError(f"cannot write {path}: a file stands where a folder is needed") from None
    except OSError as exc:
        raise output_error(exc, path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: permission denied")
    return path


def ensure_output_file(path: str | Path) -> Path:
    """Check early that the file ``path`` can be written: its folder exists or can be made and
    is writable, and the path itself is not a folder. (A full disk shows only when writing.)"""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    ensure_dir(path.parent)
    return path


def confined(root: str | Path, user_path: str | Path, what: str = "the path") -> Path:
    """``user_path`` resolved (links, '..' and all) if it lies inside ``root``; else one line.
    Relative paths are taken relative to ``root``."""
    root = Path(root).resolve()
    path = (root / Path(user_path).expanduser()).resolve()
    if path != root and root not in path.parents:
        raise BrushworkError(f"{what} {user_path} is outside {root}, the only folder allowed here")
    return path


@contextlib.contextmanager
def atomic_writer(path: str | Path):
    """A binary file to write ``path`` through, so that ``path`` is either the old file or the
    complete new one, never half (for data written in pieces, larger than memory).

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over
    the target (rename is atomic on POSIX and Windows within one file system). Any OS failure
    (unwritable place, full disk) or interruption removes the temporary file; OS failures become
    one readable line.
    """
    path = ensure_output_file(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use normal permissions
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise output_error(exc, path) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_writer``)."""
    with atomic_writer(path) as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BrushworkError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BrushworkError("--device cuda asked for, but PyTorch sees no CUDA GPU here")
    return device


def network_reaches(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds: asked before a
    weights download, so that an offline machine says at once what to fetch instead of waiting."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names and raw bytes of a state dict: identifies a model independent of its file."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def float32_hash(tensors: dict[str, torch.Tensor]) -> str:
    """``tensors_hash`` of the weights in float32: the same weights whether a file holds them in
    float16 (a shipped model) or float32 (a run that loaded them and saved its own copy)."""
    return tensors_hash({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})


# glibc's mallopt() parameter numbers (from <malloc.h>), and the thresholds its adaptive rule
# settles at once a block of 32 MiB or more has been freed (mmap 32 MiB, trim twice that).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD = -1, -3, 32 << 20


def _glibc():
    """The C library, when it is glibc (Linux); else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True):
    """Keep large freed blocks in the heap for reuse while the block runs (glibc only).

    glibc hands out blocks above its mmap threshold (at most 32 MiB by default) as fresh mmap()s,
    and the kernel zero-fills every page of them on first touch. A 512 px VGG19 forward and
    backward pass allocates several 64 MiB activations each evaluation; served from the heap they
    are reused instead. Measured, Gatys at 512x384 px on 2 cores: 1.56-1.63 s per evaluation
    against 1.81-1.87 s without (kernel time 0.24 s -> 0.04 s per evaluation). On exit the
    thresholds go to where glibc's adaptive rule settles after such frees (it cannot be switched
    back on) and the heap is trimmed, so the memory returns to the system. Elsewhere (macOS,
    Windows, musl) a no-op.
    """
    libc = _glibc() if enabled else None
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30):
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _SETTLED_MMAP_THRESHOLD)
        libc.malloc_trim(0)
