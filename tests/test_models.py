import pytest
import torch

from brushwork.config import apply_overrides, gan_preset
from brushwork.errors import BrushworkError
from brushwork.models.gan import build_gan, count_parameters


@pytest.mark.parametrize("preset", ["seed", "dcgan", "modern"])
@pytest.mark.parametrize("res", [32, 64, 128, 256])
def test_generator_and_discriminator_shapes(preset, res):
    cfg = gan_preset(preset, res)
    cfg.g_width, cfg.d_width = 8, 4  # shapes do not depend on width; keeps the test fast
    G, D = build_gan(cfg)
    z = torch.randn(2, cfg.z_dim)
    images = G(z)
    assert images.shape == (2, 3, res, res)
    assert images.abs().max() <= 1  # tanh output
    assert D(images).shape == (2,)


def test_textbook_dcgan64_sizes():
    G, D = build_gan(gan_preset("dcgan", 64))
    # Radford et al.'s 64 px DCGAN (ngf = ndf = 64, z = 100) has 3,576,704 / 2,765,568 weights.
    assert count_parameters(G) == 3_576_704
    assert count_parameters(D) == 2_765_568


def test_seed_generator_really_reaches_64px_with_nonlinearities():
    cfg = gan_preset("seed", 64)
    G, D = build_gan(cfg)
    kinds = {type(m).__name__ for m in G.modules()}
    assert "LeakyReLU" in kinds and "Tanh" in kinds
    assert G(torch.randn(1, 100)).shape[-1] == 64
    assert isinstance(D.dense, torch.nn.Linear)  # Flatten -> Dense head, as in the seed


def test_modern_discriminator_is_spectrally_normalised_without_batchnorm():
    G, D = build_gan(gan_preset("modern", 64))
    names = [n for n, _ in D.named_parameters()]
    assert any("parametrizations.weight.original" in n for n in names)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


@pytest.mark.parametrize("res", [16, 48, 512])
def test_bad_resolution_is_refused(res):
    with pytest.raises(BrushworkError, match="power of two"):
        build_gan(gan_preset("dcgan", res))


def test_unknown_preset():
    with pytest.raises(BrushworkError, match="unknown preset"):
        gan_preset("stylegan9")


def test_modern_generator_starts_as_a_resize_convolution():
    """A transposed conv initialised by init_as_resize computes nearest-2x + 3x3 conv exactly,
    so the fresh generator paints no checkerboard."""
    import torch.nn as nn

    from brushwork.models.gan import init_as_resize

    torch.manual_seed(0)
    t = nn.ConvTranspose2d(5, 7, 4, 2, 1, bias=False)
    init_as_resize(t)
    # recover the 3x3 kernel: taps 3 and 0 of each axis are k[-1] and k[1]; tap 1 - tap 0 = k[0]
    w = t.weight
    k = torch.stack([w[:, :, 3], w[:, :, 1] - w[:, :, 0], w[:, :, 0]], dim=2)
    k = torch.stack([k[..., 3], k[..., 1] - k[..., 0], k[..., 0]], dim=3)
    conv = nn.Conv2d(5, 7, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(k.transpose(0, 1))
    x = torch.randn(2, 5, 6, 6)
    expected = conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.allclose(t(x), expected, atol=1e-5)
    G, _ = build_gan(apply_overrides(gan_preset("modern", 32), ["g_upsample=transpose-as-resize"]))
    w = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)][1].weight
    # taps are sums of 3x3 taps: tap1 - tap0 = k[0] = tap2 - tap3 along each axis (not so for DCGAN's init)
    assert torch.allclose(w[:, :, 1] - w[:, :, 0], w[:, :, 2] - w[:, :, 3], atol=1e-7)
    w = [m for m in build_gan(gan_preset("dcgan", 32))[0].modules() if isinstance(m, nn.ConvTranspose2d)][1].weight
    assert not torch.allclose(w[:, :, 1] - w[:, :, 0], w[:, :, 2] - w[:, :, 3], atol=1e-7)


def test_growing_upsample_is_a_resize_conv_until_its_gate_opens():
    import torch.nn as nn

    from brushwork.models.gan import GrowingUpsample, set_growth

    torch.manual_seed(0)
    layer = GrowingUpsample(5, 7)
    conv = nn.Conv2d(5, 7, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(layer.v.transpose(0, 1))
        layer.u.normal_()  # a free part that has learned something
    x = torch.randn(2, 5, 6, 6)
    resized = conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.allclose(layer(x), resized, atol=1e-5)  # gate 0: exactly the resize conv
    set_growth(layer, 1.0)
    free = nn.functional.conv_transpose2d(x, layer.u, stride=2, padding=1)
    assert torch.allclose(layer(x), resized + free, atol=1e-5)  # gate 1: plus the whole free kernel
    G, _ = build_gan(gan_preset("modern", 32))  # the preset's generator grows this way
    grown = [m for m in G.modules() if isinstance(m, GrowingUpsample)]
    assert len(grown) == 3 and all(float(m.gate) == 0 for m in grown)
