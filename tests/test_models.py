import pytest
import torch

from brushwork.config import gan_preset
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
