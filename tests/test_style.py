import math

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.models.style import CONTENT_LAYER, adain, load_style_encoder, mean_std
from brushwork.provenance import read_record
from brushwork.style import transfer as style_transfer
from brushwork.style.transfer import (_RGB_TO_YIQ, GatysSettings, _style_targets, StyleRequest,
                                      adain_transfer, coral, gatys, gatys_losses, gram_matrix,
                                      luminance_transfer, normalise_weights, pil_to_tensor,
                                      resize_longest, stylize, total_variation)


@pytest.fixture(scope="module")
def encoder():
    return load_style_encoder("random", "cpu")


def _image(seed, size=(48, 40), smooth=False):
    rng = np.random.RandomState(seed)
    arr = rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if smooth:  # a gradient "photo" with strong colour
        y, x = np.mgrid[0:size[1], 0:size[0]]
        arr = np.stack([x * 255 // size[0], y * 255 // size[1], np.full_like(x, 180)], -1).astype(np.uint8)
    return Image.fromarray(arr)


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # 2 channels, 1x2 pixels
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4  # F F^T / (C*H*W)
    assert torch.allclose(gram_matrix(f)[0], expected)
    big = torch.randn(2, 8, 5, 7)  # channels_last (the encoder's layout) gives the same matrix
    assert torch.allclose(gram_matrix(big.to(memory_format=torch.channels_last)), gram_matrix(big), atol=1e-6)


def test_total_variation_and_mean_std_by_hand():
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    assert total_variation(x).item() == pytest.approx(1.0)  # every horizontal step is 1
    m, s = mean_std(torch.tensor([1.0, 3.0]).view(1, 1, 1, 2))
    assert m.item() == pytest.approx(2.0) and s.item() == pytest.approx(1.0, abs=1e-4)


def test_adain_takes_the_styles_statistics():
    c, s = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8) * 3 + 5
    out_mean, out_std = mean_std(adain(c, s))
    s_mean, s_std = mean_std(s)
    assert torch.allclose(out_mean, s_mean, atol=1e-4) and torch.allclose(out_std, s_std, atol=1e-3)
    assert torch.allclose(adain(c, c), c, atol=1e-3)


def test_gatys_lowers_content_and_style_losses(encoder):
    content = pil_to_tensor(_image(1, smooth=True))
    style = _image(2)
    only_content = GatysSettings(steps=15, init="noise", scales=1, style_weight=0, tv_weight=0)
    _, from_noise = gatys(encoder, content, [style], [1.0], only_content)
    assert from_noise[-1]["content"] < 0.5 * from_noise[0]["content"]
    _, from_content = gatys(encoder, content, [style], [1.0], GatysSettings(steps=15, scales=1))
    assert from_content[-1]["style"] < 0.5 * from_content[0]["style"]
    assert from_content[-1]["total"] < from_content[0]["total"]
    _, adam = gatys(encoder, content, [style], [1.0], GatysSettings(steps=15, optimizer="adam", scales=2))
    assert adam[-1]["total"] < adam[0]["total"]


def _returned_loss(encoder, out, content, style, settings):
    target = encoder(content)[CONTENT_LAYER]
    grams = _style_targets(encoder, [style], [1.0], max(content.shape[-2:]))
    return gatys_losses(encoder, out, target, grams, settings)["total"].item()


def test_gatys_returns_its_best_iterate(encoder):
    """An optimiser can end above its best loss; the image returned is the best one."""
    content = pil_to_tensor(_image(1, smooth=True))
    style = _image(2)
    settings = GatysSettings(steps=4, scales=1, optimizer="adam", lr=2.0)  # big steps: not monotone
    out, history = gatys(encoder, content, [style], [1.0], settings)
    best = min(h["total"] for h in history)
    assert best < history[-1]["total"]  # the run did go back up, so the check means something
    assert _returned_loss(encoder, out, content, style, settings) == pytest.approx(best, rel=1e-4)


def test_lbfgs_restarts_from_the_best_image(encoder, monkeypatch):
    """A round of L-BFGS that ends above the best loss restarts from the best image."""
    monkeypatch.setattr(style_transfer, "RESTART_EVERY", 5)
    content = pil_to_tensor(_image(1, smooth=True))
    style = _image(2)
    settings = GatysSettings(steps=12, scales=1)
    out, history = gatys(encoder, content, [style], [1.0], settings)
    totals = [h["total"] for h in history]
    assert len(totals) == 12  # the evaluation budget is kept across restarts
    assert totals[4] > min(totals[:5])  # the first round ended above its best (as measured) ...
    assert totals[5] == pytest.approx(min(totals[:5]), rel=1e-5)  # ... so round 2 began from it
    assert _returned_loss(encoder, out, content, style, settings) == pytest.approx(min(totals), rel=1e-4)


def test_multiscale_output_has_the_contents_shape_whatever_the_style_size(encoder):
    content, style = _image(1, (64, 40)), _image(2, (200, 300))
    out = stylize(content, [style], StyleRequest(size=64, gatys=GatysSettings(steps=4, scales=2)), encoder)
    assert out.size == (64, 40)


def test_adain_strength_zero_decodes_the_contents_own_features(encoder):
    seen = {}

    def decoder(t):  # a recording stand-in for the trained decoder
        seen["t"] = t
        return torch.zeros(t.shape[0], 3, t.shape[2] * 8, t.shape[3] * 8)

    content = pil_to_tensor(_image(3, (64, 64)))
    adain_transfer(encoder, decoder, content, [_image(4)], [1.0], strength=0.0, size=64)
    assert torch.equal(seen["t"], encoder(content)["relu4_1"])
    adain_transfer(encoder, decoder, content, [_image(4)], [1.0], strength=1.0, size=64)
    assert not torch.allclose(seen["t"], encoder(content)["relu4_1"])


def test_strength_zero_returns_the_content(encoder):
    content = _image(5, (32, 32))
    out = stylize(content, [_image(6)], StyleRequest(size=32, strength=0.0), encoder)
    assert np.array_equal(np.asarray(out), np.asarray(resize_longest(content, 32)))


def test_luminance_preservation_keeps_the_contents_chroma():
    content = pil_to_tensor(_image(7, smooth=True)) * 0.5
    stylised = torch.rand_like(content) * 0.6 - 0.3
    out = luminance_transfer(stylised, content)
    inside = (out.abs() < 0.999).all(dim=1, keepdim=True)  # pixels the RGB gamut did not clip
    assert inside.float().mean() > 0.8
    yiq = lambda x: torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ, (x + 1) / 2)  # noqa: E731
    for got, want in [(yiq(out)[:, 1:], yiq(content)[:, 1:]), (yiq(out)[:, :1], yiq(stylised)[:, :1])]:
        assert torch.allclose(got[inside.expand_as(got)], want[inside.expand_as(want)], atol=1e-4)


def test_coral_matches_colour_mean_and_covariance():
    source = pil_to_tensor(_image(8)) * 0.3
    target = pil_to_tensor(_image(9, smooth=True)) * 0.5
    out = coral(source, target)
    flat_o, flat_t = out[0].flatten(1), target[0].flatten(1)
    assert torch.allclose(flat_o.mean(1), flat_t.mean(1), atol=0.02)
    assert torch.allclose(torch.cov(flat_o), torch.cov(flat_t), atol=0.01)


def test_mask_leaves_the_unmasked_region_untouched(encoder):
    content = _image(10, (48, 48))
    mask = Image.new("L", (48, 48), 0)
    mask.paste(255, (24, 0, 48, 48))  # stylise the right half only
    out = np.asarray(stylize(content, [_image(11)], StyleRequest(size=48, gatys=GatysSettings(steps=5)),
                             encoder, mask=mask))
    original = np.asarray(resize_longest(content, 48))
    assert np.array_equal(out[:, :20], original[:, :20])
    assert not np.array_equal(out[:, 28:], original[:, 28:])


def test_style_weights_are_normalised_and_checked():
    assert normalise_weights([0.7, 0.7], 2) == [0.5, 0.5]
    assert math.isclose(sum(normalise_weights([3, 1, 1], 3)), 1.0)
    assert normalise_weights([], 4) == [0.25] * 4
    for bad, n in [([1.0], 2), ([-1, 2], 2), ([0, 0], 2)]:
        with pytest.raises(BrushworkError):
            normalise_weights(bad, n)


def test_two_styles_blend_their_gram_targets(encoder):
    from brushwork.style.transfer import _style_targets

    a, b = _image(12), _image(13, smooth=True)
    ga, gb = _style_targets(encoder, [a], [1.0], 32), _style_targets(encoder, [b], [1.0], 32)
    mix = _style_targets(encoder, [a, b], [0.25, 0.75], 32)
    for name in ga:
        assert torch.allclose(mix[name], 0.25 * ga[name] + 0.75 * gb[name], rtol=1e-4, atol=1e-9)


@pytest.fixture
def folders(tmp_path):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in range(3):
        _image(20 + i, (40, 40), smooth=i == 0).save(content / f"c{i}.png")
        _image(30 + i, (40, 40)).save(style / f"s{i}.jpg")
    return content, style


def test_stylize_cli_gatys_with_provenance_and_batch(folders, tmp_path):
    content, style = folders
    out = tmp_path / "out.png"
    assert main(["stylize", str(content / "c0.png"), "--style", str(style / "s0.jpg"), "--style",
                 str(style / "s1.jpg"), "--style-weights", "0.7,0.3", "--size", "32", "--steps", "3",
                 "--preserve-color", "--encoder", "random", "--out", str(out), "--device", "cpu"]) == 0
    record = read_record(out)["brushwork"]
    assert record["method"] == "gatys" and record["style_weights"] == [0.7, 0.3]
    assert record["preserve_color"] == "luminance" and len(record["style_sha256"]) == 2
    assert record["encoder"] == "random" and record["encoder_identity"]
    assert main(["stylize", str(content), "--style", str(style / "s0.jpg"), "--size", "32", "--steps",
                 "2", "--encoder", "random", "--out", str(tmp_path / "batch"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == [
        "c0_stylized.png", "c1_stylized.png", "c2_stylized.png"]


def test_adain_train_then_stylize_and_encoder_pinning(folders, tmp_path, capsys, monkeypatch):
    content, style = folders
    run = tmp_path / "adain"
    assert main(["train", "adain", "--content", str(content), "--style", str(style), "--out", str(run),
                 "--res", "32", "--batch-size", "2", "--steps", "4", "--ckpt-every", "2",
                 "--encoder", "random", "--set", "width=4", "--device", "cpu"]) == 0
    hint = capsys.readouterr().err.strip().splitlines()[-1]  # the closing hint fits the family
    assert f"brushwork stylize photo.jpg --style painting.jpg --method adain --model {run}" in hint
    assert "brushwork sample" not in hint
    assert main(["train", "adain", "--content", str(content), "--style", str(style), "--out", str(run),
                 "--res", "32", "--batch-size", "2", "--steps", "6", "--resume", "--quiet"]) == 0
    import socket  # the run's own (random) encoder is used: nothing is downloaded

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "fast.png"
    assert main(["stylize", str(content / "c1.png"), "--style", str(style / "s2.jpg"), "--method",
                 "adain", "--model", str(run), "--size", "40", "--strength",
                 "0.5", "--out", str(out), "--device", "cpu"]) == 0
    assert Image.open(out).size == (40, 40)
    record = read_record(out)["brushwork"]
    assert record["steps"] == 6 and record["encoder"] == "random" and record["model_name"] == "adain"
    torch.save({k: v + 1 for k, v in __import__("torchvision").models.vgg19().state_dict().items()},
               tmp_path / "other_vgg.pth")
    capsys.readouterr()
    assert main(["stylize", str(content / "c1.png"), "--style", str(style / "s2.jpg"), "--method",
                 "adain", "--model", str(run), "--vgg-weights", str(tmp_path / "other_vgg.pth"),
                 "--out", str(tmp_path / "x.png"), "--device", "cpu"]) == 2
    assert "was trained with VGG19 encoder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/missing.jpg", "--style", "{style}"], "no such image"),
    (["{content}", "--style", "{tmp}/bad.png"], "cannot read image"),
    (["{content}", "--style", "{style}", "--vgg-weights", "{tmp}/bad.png"], "cannot read VGG19 weights"),
    (["{content}", "--style", "{style}", "--style-weights", "1,2"], "1 style image(s) but 2"),
    (["{content}", "--style", "{style}", "--method", "adain"], "needs --model"),
    (["{content}", "--style", "{style}", "--strength", "1.5"], "--strength: must be in [0, 1]"),
    (["{content}", "--style", "{style}"], "vgg19-dcbb9e9d.pth"),  # no ImageNet weights offline
    (["{content}", "--style", "{style}"], "or pass a local file with --vgg-weights PATH"),
])
def test_stylize_errors_are_one_clear_line(folders, tmp_path, capsys, monkeypatch, argv, message):
    content, style = folders
    (tmp_path / "bad.png").write_text("not an image")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import socket

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    offline = message.endswith((".pth", "PATH"))
    extra = [] if "--vgg-weights" in argv or offline else ["--encoder", "random"]
    args = [a.replace("{tmp}", str(tmp_path)).replace("{content}", str(content / "c0.png"))
            .replace("{style}", str(style / "s0.jpg")) for a in argv]
    code = main(["stylize", *args, *extra, "--size", "32", "--steps", "1", "--out",
                 str(tmp_path / "o.png"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_invisible_watermark_round_trip_and_info(tmp_path, capsys):
    pytest.importorskip("imwatermark", reason="needs the invisible-watermark package")
    from brushwork.data.builtin import paint
    from brushwork.provenance.watermark import detect_watermark, embed_watermark

    art = paint("circles", 1, 320)
    marked = embed_watermark(art)
    assert detect_watermark(marked) and not detect_watermark(art)
    assert np.abs(np.asarray(marked, dtype=int) - np.asarray(art, dtype=int)).mean() < 3  # invisible
    with pytest.raises(BrushworkError, match="at least 256"):
        embed_watermark(paint("circles", 1, 64))
    art.save(tmp_path / "content.png")
    paint("drips", 2, 96).save(tmp_path / "style.png")
    out = tmp_path / "marked.png"
    assert main(["stylize", str(tmp_path / "content.png"), "--style", str(tmp_path / "style.png"),
                 "--size", "320", "--steps", "2", "--encoder", "random", "--watermark", "--out", str(out),
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["info", "--watermark", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "invisible watermark: found" in printed and "invisible-watermark:dwtDctSvd" in printed
