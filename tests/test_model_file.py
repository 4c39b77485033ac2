"""Model files: a detector rebuilt from its registry name, classes and options; frozen batch norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from tutorial_det.model_file import (
    ModelSpec,
    check_weights_fit,
    freeze_batch_norm,
    load_model_file,
    save_model_file,
)
from tutorial_det.resize import Resize, ResizedDetector
from tutorial_det.training import load_checkpoint

SPEC = ModelSpec("ssd", ("background", "circle", "square"))


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4))
    )
    net.train()
    for _ in range(3):  # running statistics away from their initial 0 / 1
        net(torch.rand(2, 3, 8, 8) * 3)
    return net


def test_a_model_file_rebuilds_the_model_with_its_weights(tmp_path):
    model = SPEC.build()
    meta = {"data": "shapes", "steps": 3}
    save_model_file(tmp_path / "m.pt", model, SPEC, meta)
    loaded, spec, got_meta = load_model_file(tmp_path / "m.pt")
    assert spec == SPEC and got_meta == meta and not loaded.training
    assert type(loaded) is type(model)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    state = load_checkpoint(tmp_path / "m.pt")
    assert state["spec"] == {
        "name": "ssd",
        "classes": ["background", "circle", "square"],
        "options": {},
        "frozen_batch_norm": False,
        "resize": None,
    }


def test_an_unregistered_model_and_bad_specs_are_named(tmp_path):
    save_model_file(tmp_path / "m.pt", SPEC.build(), SPEC)
    state = load_checkpoint(tmp_path / "m.pt")
    state["spec"]["name"] = "yolo"
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"'yolo' model, which is not registered here; .*'ssd'"):
        load_model_file(tmp_path / "renamed.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a tutorial_det model file"):
        load_model_file(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="the background and at least one class"):
        ModelSpec("ssd", ("background",))
    with pytest.raises(TypeError, match=r"options\[.f.\] is a builtins.builtin_function"):
        ModelSpec("ssd", ("background", "a"), {"f": len})


def test_check_weights_fit_lists_what_differs():
    model = small_net()
    state = model.state_dict()
    state["extra"] = torch.zeros(1)
    del state["0.bias"]
    state["1.weight"] = torch.ones(5)
    with pytest.raises(ValueError) as error:
        check_weights_fit(model, state, "f.pt")
    message = str(error.value)
    assert "the weights in f.pt do not fit the Sequential" in message
    assert "missing: 0.bias" in message and "not in the model: extra" in message
    assert "other shape (file vs model): 1.weight [5] vs [4]" in message


def test_frozen_batch_norm_keeps_the_eval_output_and_decouples_the_batch():
    net = small_net()
    images = torch.rand(4, 3, 8, 8) * 3
    net.eval()
    with torch.no_grad():
        expected = net(images)
    assert freeze_batch_norm(net) == 2
    assert [type(m) for m in net.modules()].count(FrozenBatchNorm2d) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    net.train()  # frozen: training mode normalises with the stored statistics too
    with torch.no_grad():
        torch.testing.assert_close(net(images), expected)
        # an image's output no longer depends on the other images of its batch
        torch.testing.assert_close(net(images[:1]), net(images)[:1])
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]


def test_a_frozen_batch_norm_model_file_round_trips(tmp_path):
    spec = ModelSpec("ssd", ("background", "circle"), {}, frozen_batch_norm=True)
    model = spec.build()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    save_model_file(tmp_path / "m.pt", model, spec)
    loaded, got, _ = load_model_file(tmp_path / "m.pt")
    assert got.frozen_batch_norm
    assert any(isinstance(m, FrozenBatchNorm2d) for m in loaded.modules())
    images = [torch.rand(3, 64, 64)]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)[0]["scores"], model(images)[0]["scores"])


def test_a_resized_model_comes_back_taking_images_of_any_size(tmp_path):
    spec = ModelSpec("ssd", ("background", "circle"), resize=Resize(64, "stretch"))
    torch.manual_seed(0)
    model = spec.build()
    assert isinstance(spec.for_inference(model), ResizedDetector)
    save_model_file(tmp_path / "m.pt", spec.for_inference(model), spec)  # saved as its detector
    loaded, got, _ = load_model_file(tmp_path / "m.pt")
    assert got.resize == Resize(64, "stretch") and isinstance(loaded, ResizedDetector)
    assert load_checkpoint(tmp_path / "m.pt")["spec"]["resize"] == {"size": 64, "mode": "stretch"}
    image = torch.rand(3, 40, 100)
    model.eval()
    with torch.no_grad():
        expected = Resize(64, "stretch").prediction_back(
            model([Resize(64, "stretch").image(image)])[0], (40, 100)
        )
        got_boxes = loaded([image])[0]["boxes"]
    torch.testing.assert_close(got_boxes, expected["boxes"])
    assert bool((got_boxes[:, 2] <= 100).all() and (got_boxes[:, 3] <= 40).all())


def test_damaged_model_files_are_named(tmp_path):
    save_model_file(tmp_path / "m.pt", SPEC.build(), SPEC)
    state = load_checkpoint(tmp_path / "m.pt")
    for key in ("spec", "state_dict", "meta"):
        torch.save({k: v for k, v in state.items() if k != key}, tmp_path / "cut.pt")
        with pytest.raises(
            ValueError, match=rf"cut\.pt is a damaged model file: it has no '{key}'"
        ):
            load_model_file(tmp_path / "cut.pt")
    for key, value, message in [
        ("classes", "background,circle", "'classes' must be a list"),
        ("options", None, "'options' must be a dict"),
        ("resize", {"size": -3, "mode": "letterbox"}, "'resize' is not a size and a mode"),
    ]:
        torch.save({**state, "spec": {**state["spec"], key: value}}, tmp_path / "bad.pt")
        with pytest.raises(
            ValueError, match=rf"bad\.pt is a damaged model file: the spec's {message}"
        ):
            load_model_file(tmp_path / "bad.pt")
    torch.save({**state, "spec": {**state["spec"], "options": {"no_such": 3}}}, tmp_path / "o.pt")
    with pytest.raises(ValueError, match=r"o\.pt: ssd has no option 'no_such'; its options are"):
        load_model_file(tmp_path / "o.pt")
    save_model_file(tmp_path / "run" / "model.pt", SPEC.build(), SPEC)
    with pytest.raises(FileNotFoundError, match=r"run is a folder: give the model file in it, "):
        load_model_file(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"is a folder, not a checkpoint file"):
        load_model_file(tmp_path)
