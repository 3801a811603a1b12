"""What every training task shares: Adam built the fastest way the device allows, and bf16 autocast."""

from __future__ import annotations

import contextlib

import torch


def use_bf16(cfg_value: str, device: torch.device) -> bool:
    if cfg_value == "bf16":
        return True
    if cfg_value == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return False


def autocast_context(bf16: bool, device: torch.device):
    """bf16 autocast when enabled, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_adam(params, lr: float, beta1: float, beta2: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel does the whole update in one launch per device (CUDA and CPU alike).
    try:
        return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), foreach=True)
