"""Low-rank adapters (LoRA, Hu et al. 2021) on a diffusion U-Net, through peft.

Each adapted layer W keeps its base weights frozen and learns a low-rank change B A (rank r,
scaled by alpha / r), so an adapted model is the base plus a few per cent of its size. Adapted:
the two 3x3 convolutions of every residual block and the attention's query/key/value and output
projections. The per-style vectors are trained beside the adapters (a collection's new style
needs its own vector) and saved with them; nothing else of the base changes.

An adapter run's checkpoints hold only these tensors (``AdapterView``); its images are made by
the base with the adapters merged into its weights, so they cost what the base's do.

peft (and transformers under it) takes a few seconds to import, so it is imported when an
adapter is built or loaded, not when brushwork starts.
"""

from __future__ import annotations

import torch
import torch.nn as nn

ADAPTED_LAYERS = r".*\.(conv1|conv2|qkv|proj)"  # peft matches the full module name
STYLE_TENSORS = ("unet.style_vectors", "unet.no_style")  # trained beside the adapters
ADAPTER_NAME = "default"  # peft's name for a model's single adapter (it appears in tensor names)


def add_lora(net: nn.Module, rank: int) -> nn.Module:
    """``net`` with LoRA layers of ``rank`` injected in place (alpha = rank: the change starts at
    zero and is scaled by 1); only the adapters and style vectors stay trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=ADAPTED_LAYERS, lora_dropout=0.0)
    net = inject_adapter_in_model(config, net, adapter_name=ADAPTER_NAME)
    for name, param in net.named_parameters():
        param.requires_grad_(is_adapter_tensor(name))
    return net


def is_adapter_tensor(name: str) -> bool:
    return ".lora_" in name or name in STYLE_TENSORS


def adapter_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors an adapter run saves: the low-rank factors and the style vectors."""
    return {k: v for k, v in net.state_dict().items() if is_adapter_tensor(k)}


def load_adapter(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter tensors into a LoRA-injected ``net``; all of them, and only them."""
    expected = set(adapter_state(net))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise RuntimeError(f"adapter tensors do not fit: missing {missing[:3]}, unexpected {extra[:3]}")
    net.load_state_dict(state, strict=False)


def merge(net: nn.Module) -> nn.Module:
    """Fold every adapter into its base weights (W + B A): sampling then runs at the base's cost."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in net.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    return net


class AdapterView(nn.Module):
    """What a checkpoint saves of an adapted network: ``state_dict`` is its adapter tensors only and
    ``load_state_dict`` loads exactly those (the base weights come from the base run)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        object.__setattr__(self, "net", net)  # not a submodule: its other weights are not saved

    def parameters(self, recurse: bool = True):
        return (p for name, p in self.net.named_parameters() if is_adapter_tensor(name))

    def state_dict(self, *args, **kwargs):
        return adapter_state(self.net)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        load_adapter(self.net, dict(state))
