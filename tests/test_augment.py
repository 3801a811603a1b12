import torch

from brushwork.data.augment import diff_augment, parse_policy
from brushwork.errors import BrushworkError

import pytest


def test_augmentations_keep_shape_and_pass_gradients():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_content_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.ones(64, 1, 8, 8)
    y = diff_augment(x, "translation")
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert (y == 0).any()  # some images were shifted in from the zero border
    assert (y.sum(dim=(1, 2, 3)) >= 8 * 8 * 0.75 ** 2).all()  # shifts of at most 1/8 per side


def test_cutout_removes_about_a_quarter():
    torch.manual_seed(0)
    x = torch.ones(256, 1, 16, 16)
    kept = diff_augment(x, "cutout").mean().item()
    assert 0.70 < kept < 0.85  # an 8x8 hole (1/4 of the area), partly off the edge


def test_unknown_policy_is_refused():
    assert parse_policy("color, cutout") == ["color", "cutout"]
    with pytest.raises(BrushworkError, match="unknown DiffAugment"):
        parse_policy("color,blur")
