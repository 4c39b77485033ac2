"""Backbones: VGG16 cut at stride 16, the tiny backbone, and the layer/receptive-field table."""

from __future__ import annotations

import socket
import urllib.error

import pytest
import torch
import torchvision
from conftest import loss_history
from torch import nn

from tutorial_det import backbones
from tutorial_det.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TinyBackbone,
    format_layer_shapes,
    imagenet_normalize,
    layer_shapes,
    vgg16_stride16,
)


@pytest.fixture(scope="module")
def vgg() -> nn.Sequential:
    return vgg16_stride16()


# --------------------------------------------------------------------------- VGG16


def test_vgg16_is_cut_before_the_last_pool(vgg):
    assert isinstance(vgg, nn.Sequential)
    assert len(vgg) == 30
    assert vgg.out_channels == 512 and vgg.stride == 16
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg) == 4
    assert sum(isinstance(m, nn.Conv2d) for m in vgg) == 13
    assert isinstance(vgg[-1], nn.ReLU) and isinstance(vgg[-2], nn.Conv2d)


def test_vgg16_800_gives_512_x_50_x_50(vgg):
    rows = layer_shapes(vgg, (1, 3, 800, 800))
    assert rows[-1].shape == (1, 512, 50, 50)


def test_vgg16_forward_runs_on_real_tensors(vgg):
    with torch.no_grad():
        out = vgg(torch.randn(1, 3, 64, 48))
    assert out.shape == (1, 512, 4, 3)
    assert torch.isfinite(out).all() and out.abs().sum() > 0


def test_cut_follows_the_strides_not_a_count(vgg):
    layers = list(vgg)
    assert len(backbones.cut_at_stride(layers, 8)) == 23  # up to conv4_3 + ReLU
    assert len(backbones.cut_at_stride(layers, 1)) == 4  # conv1_1 .. ReLU before pool1
    with pytest.raises(ValueError, match="only 16"):
        backbones.cut_at_stride(layers, 32)


def test_vgg16_random_init_is_kaiming(vgg):
    conv = vgg[28]  # conv5_3: 512 -> 512, 3 x 3
    expected_std = (2.0 / (512 * 9)) ** 0.5  # fan-out
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_pretrained_falls_back_with_one_line(monkeypatch, capsys):
    def unavailable():
        raise urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(backbones, "load_vgg16_imagenet_state_dict", unavailable)
    model = vgg16_stride16(pretrained=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "VGG16 ImageNet weights unavailable (URLError: <urlopen error name resolution failed>); "
        "using random weights"
    ]
    assert len(model) == 30 and model.out_channels == 512


def test_pretrained_loads_the_feature_weights(monkeypatch, capsys, vgg):
    # A stand-in for the ImageNet file: every tensor of conv k filled with k, plus classifier keys.
    state = {
        f"features.{k}": torch.full_like(v, float(k.split(".")[0]))
        for k, v in vgg.state_dict().items()
    }
    state["classifier.0.weight"] = torch.zeros(3, 3)
    monkeypatch.setattr(backbones, "load_vgg16_imagenet_state_dict", lambda: state)
    model = vgg16_stride16(pretrained=True)
    assert capsys.readouterr().out == ""
    assert torch.all(model[0].weight == 0) and torch.all(model[28].weight == 28)
    assert torch.all(model[28].bias == 28)


def test_weights_come_from_the_hub_cache_without_network(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = backbones.vgg16_weights_path()
    assert path == tmp_path / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    torch.save({"features.0.bias": torch.arange(3.0)}, path)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the file is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    state = backbones.load_vgg16_imagenet_state_dict()
    assert torch.equal(state["features.0.bias"], torch.arange(3.0))


def test_download_runs_under_a_short_socket_timeout(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    seen = {}

    def failing_download(url, dst, hash_prefix=None, progress=True):
        seen.update(url=url, timeout=socket.getdefaulttimeout(), hash_prefix=hash_prefix)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    before = socket.getdefaulttimeout()
    with pytest.raises(urllib.error.URLError):
        backbones.load_vgg16_imagenet_state_dict(timeout=3.0)
    assert seen == {
        "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
        "timeout": 3.0,
        "hash_prefix": "397923af",
    }
    assert socket.getdefaulttimeout() == before


# --------------------------------------------------------------------------- layer table


def test_layer_shapes_vgg16_known_receptive_fields(vgg):
    rows = layer_shapes(vgg, (3, 800, 800))
    assert len(rows) == 30
    by_name = {r.name: r for r in rows}
    # conv1_2, pool1, pool2, pool3, pool4, conv5_3: the textbook VGG16 values
    expected = {
        "2": (1, 5),
        "4": (2, 6),
        "9": (4, 16),
        "16": (8, 44),
        "23": (16, 100),
        "28": (16, 196),
    }
    for name, (stride, field) in expected.items():
        assert (by_name[name].stride, by_name[name].receptive_field) == (stride, field), name
    conv5_3 = by_name["28"]
    assert conv5_3.shape == (1, 512, 50, 50)
    # The first output cell is centred on the first cell's centre, stride / 2: anchor centres.
    assert conv5_3.centre == 8.0
    assert conv5_3.layer.startswith("Conv2d(512, 512")


def _field_from_gradient(net: nn.Module, size: int, cell: tuple[int, int]) -> tuple[int, int, int]:
    """Rows of the input that reach one output cell, from the gradient (all weights positive, so
    nothing cancels): (first row, last row + 1, output height)."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    out = net(x)
    out[0, 0, cell[0], cell[1]].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.min()), int(rows.max()) + 1, out.shape[-2]


def test_layer_shapes_matches_the_gradient_footprint():
    net = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1),
        nn.AvgPool2d(2),
        nn.Sequential(nn.Conv2d(1, 1, 5, stride=2, padding=2), nn.ReLU()),
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),
        nn.AvgPool2d(3, stride=2, padding=1),
    )
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.1)
            nn.init.constant_(m.bias, 1.0)  # keeps the ReLU open
    rows = layer_shapes(net, (1, 1, 128, 128))
    last = rows[-1]
    assert [r.name for r in rows] == ["0", "1", "2.0", "2.1", "3", "4"]
    first, stop, height = _field_from_gradient(net, 128, (4, 4))
    assert last.shape[-2] == height
    assert stop - first == last.receptive_field
    assert (first + stop) / 2 == last.centre + 4 * last.stride


def test_layer_shapes_rejects_what_it_cannot_follow():
    with pytest.raises(ValueError, match="input_shape"):
        layer_shapes(nn.Sequential(nn.ReLU()), (800, 800))
    with pytest.raises(ValueError, match="layer 1 .Upsample. changes the spatial size"):
        layer_shapes(nn.Sequential(nn.ReLU(), nn.Upsample(scale_factor=2)), (1, 3, 8, 8))
    with pytest.raises(ValueError, match="only square"):
        layer_shapes(nn.Sequential(nn.Conv2d(3, 4, (3, 5))), (1, 3, 8, 8))


def test_layer_shapes_leaves_the_module_alone(vgg):
    before = vgg[0].weight.clone()
    layer_shapes(vgg, (1, 3, 32, 32))
    assert vgg[0].weight.device.type == "cpu" and torch.equal(vgg[0].weight, before)


def test_format_layer_shapes_prints_one_line_per_layer(vgg):
    table = format_layer_shapes(layer_shapes(vgg, (1, 3, 800, 800)))
    lines = table.splitlines()
    assert len(lines) == 31
    assert lines[0].split()[:4] == ["layer", "type", "output", "shape"]
    assert lines[29].split() == ["28", "Conv2d", "512", "x", "50", "x", "50", "16", "196", "8"]


# --------------------------------------------------------------------------- tiny backbone


def test_tiny_backbone_shapes_and_attributes():
    net = TinyBackbone()
    assert (net.out_channels, net.stride, net.stage_channels) == (128, 16, (32, 64, 128, 128))
    x = torch.randn(2, 3, 128, 96)
    stages = net.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [
        (2, 32, 64, 48),
        (2, 64, 32, 24),
        (2, 128, 16, 12),
        (2, 128, 8, 6),
    ]
    assert torch.equal(net(x), stages[-1])
    rows = layer_shapes(net, (1, 3, 128, 128))
    assert [r.stride for r in rows if r.layer.startswith("MaxPool")] == [2, 4, 8, 16]
    assert rows[-1].receptive_field == 70 and rows[-1].centre == 8.0


def test_tiny_backbone_init():
    torch.manual_seed(0)
    net = TinyBackbone()
    conv = net[2][3]  # second conv of stage 3: 128 -> 128
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert conv.weight.std().item() == pytest.approx((2.0 / (128 * 9)) ** 0.5, rel=0.05)
    bn = net[2][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_tiny_backbone_learns():
    torch.manual_seed(0)
    net = TinyBackbone(widths=(8, 8, 16, 16))
    x = torch.randn(4, 3, 32, 32)
    target = torch.randn(4, 16, 2, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = loss_history(lambda: (net(x) - target).pow(2).mean(), opt, 30)
    assert losses[-1] < 0.5 * losses[0]


def test_tiny_backbone_rejects_bad_configs():
    with pytest.raises(ValueError, match="same length"):
        TinyBackbone(widths=(8, 16), depths=(1,))
    with pytest.raises(ValueError, match="positive"):
        TinyBackbone(widths=(8, 0), depths=(1, 1))
    with pytest.raises(ValueError, match="non-empty"):
        TinyBackbone(widths=(), depths=())


def test_imagenet_normalize_matches_torchvision():
    images = torch.rand(2, 3, 5, 7)
    expected = torchvision.transforms.v2.functional.normalize(
        images, list(IMAGENET_MEAN), list(IMAGENET_STD)
    )
    assert torch.allclose(imagenet_normalize(images), expected)
    assert torch.allclose(imagenet_normalize(images[0]), expected[0])
    with pytest.raises(
        ValueError, match=r"expects \[..., 3, H, W\] RGB images, got shape \(1, 5, 7\)"
    ):
        imagenet_normalize(torch.rand(1, 5, 7))
