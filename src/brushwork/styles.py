"""Styles of a run: names (the data's first-level folders), mixes, and the weight vectors models take.

A style request is turned into weights over the run's K styles, [K] or [N, K], summing to 1:

* a name, ``"baroque"`` -> one-hot;
* a mix, ``{"baroque": 0.6, "romanticism": 0.4}`` or the CLI's ``"baroque:0.6,romanticism:0.4"``
  -> the normalised weights (a conditional generator mixes the styles' embeddings with them);
* a list of K numbers, or a tensor [K] / [N, K] -> normalised;
* a list of N requests (names or mixes) -> one row per image.

Without a request, a conditional run gives seed s the style ``s % K``, so a seed always means the
same image.
"""

from __future__ import annotations

import torch

from brushwork.errors import BrushworkError


def parse_style_mix(text: str) -> dict[str, float]:
    """'baroque:0.6,romanticism:0.4' -> {'baroque': 0.6, 'romanticism': 0.4}."""
    mix: dict[str, float] = {}
    for part in str(text).split(","):
        name, sep, weight = part.strip().rpartition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            mix[name.strip()] = mix.get(name.strip(), 0.0) + float(weight)
        except ValueError:
            raise BrushworkError(f"bad style mix {text!r}: use name:weight pairs like "
                                 f"baroque:0.6,romanticism:0.4") from None
    return mix


def style_request(style: str | None = None, mix: str | None = None):
    """A request from the two ways a person names one: a style name, or a mix 'a:0.6,b:0.4'."""
    if style and mix:
        raise BrushworkError("give --style or --style-mix, not both")
    return parse_style_mix(mix) if mix else (style or None)


def _normalised(weights: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise BrushworkError("style weights must be finite numbers >= 0")
    total = weights.sum(-1, keepdim=True)
    if (total <= 0).any():
        raise BrushworkError("style weights must add up to a positive number")
    return weights / total


def _index(name: str, names: list[str]) -> int:
    if name not in names:
        raise BrushworkError(f"unknown style {name!r}; this run's styles are: {', '.join(names)}")
    return names.index(name)


def style_weights(style, names: list[str]) -> torch.Tensor:
    """Weights [K] (or [N, K] for a list of names or a 2-D tensor) for a style request."""
    k = len(names)
    if isinstance(style, str):
        if ":" in style:
            return style_weights(parse_style_mix(style), names)
        return torch.eye(k)[_index(style, names)]
    if isinstance(style, dict):
        weights = torch.zeros(k)
        for name, weight in style.items():
            weights[_index(name, names)] += float(weight)
        return _normalised(weights)
    if isinstance(style, (list, tuple)) and style and isinstance(style[0], (str, dict, list, torch.Tensor)):
        return torch.stack([style_weights(s, names) for s in style])  # one request per image
    weights = torch.as_tensor(style, dtype=torch.float32)
    if weights.shape[-1] != k or weights.dim() not in (1, 2):
        raise BrushworkError(f"a style weight vector needs {k} entries (one per style: "
                             f"{', '.join(names)}), got shape {tuple(weights.shape)}")
    return _normalised(weights)


def seed_styles(seeds: list[int], num_styles: int) -> torch.Tensor:
    """The default one-hot styles [N, K] of seeds: seed s gets style s % K."""
    return torch.eye(num_styles)[torch.tensor(seeds) % num_styles]


def describe(style, names: list[str]) -> dict:
    """Provenance fields for one image's style request, kept as given (not normalised or
    rounded), so that ``style_from_record`` rebuilds exactly the same weights."""
    if isinstance(style, str):
        return {"style_mix": parse_style_mix(style)} if ":" in style else {"style": style}
    if isinstance(style, dict):
        return {"style_mix": {str(k): float(v) for k, v in style.items()}}
    return {"style_weights": [float(w) for w in torch.as_tensor(style, dtype=torch.float32).tolist()]}


def style_from_record(record: dict):
    """The style request an image's provenance record holds, or None."""
    for key in ("style", "style_mix", "style_weights"):
        if key in record:
            return record[key]
    return None
