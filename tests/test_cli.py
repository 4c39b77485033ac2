"""The command line: train -> evaluate -> detect end to end, exact resume, the options that map the
fine-tuning helpers, clear errors, and two torchrun processes training like one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_files import write_png16
from PIL import Image
from torch import nn

from tutorial_det.cli import CommandError, build_parser, main, open_data, parse_data, warmup_cosine
from tutorial_det.data import SHAPE_CLASSES, read_image, write_voc_folder
from tutorial_det.metrics import mean_average_precision
from tutorial_det.model_file import ModelSpec, load_model_file, save_model_file
from tutorial_det.models import MODELS, build_model
from tutorial_det.resize import Resize
from tutorial_det.training import CHECKPOINT_NAME, load_checkpoint
from tutorial_det.wpod import rectify

#: The smallest registered model (0.85 M parameters) on 64-pixel images: a step takes ~0.1 s.
TINY = [
    "--model", "ssd", "--data", "shapes", "--image-size", "64", "--train-size", "6",
    "--batch-size", "2", "--log-every", "1", "--no-progress",
]  # fmt: skip


def run(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)`` with its exit status, stdout and stderr."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write_png(path: Path, height: int = 64, width: int = 96, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    return path


# --------------------------------------------------------------------------- end to end


def test_train_evaluate_detect(tmp_path, capsys):
    out = tmp_path / "run"
    status, text, _ = run(capsys, "train", *TINY, "--epochs", "1", "--max-steps", "2", "--out", out)
    assert status == 0, text
    assert "step 2 epoch 0: loss" in text and f"wrote {out / 'model.pt'}" in text
    assert {p.name for p in out.iterdir()} == {"run.json", "last.pt", "history.json", "model.pt"}
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2] and set(history["terms"]) == {
        "classification",
        "bbox_regression",
    }
    # warm-up over 1 step, then a cosine over the epoch's 3 steps: factors 1 and cos(pi/3)
    assert history["lr"] == pytest.approx([1e-3, 1e-3 * 0.75])
    model, spec, meta = load_model_file(out / "model.pt")
    assert spec == ModelSpec("ssd", SHAPE_CLASSES, {}, False)
    assert meta == {
        "data": "shapes",
        "image_size": 64,
        "seed": 0,
        "train_size": 6,
        "steps": 2,
        "epochs": 1,
    }
    assert not model.training
    trained = load_checkpoint(out / CHECKPOINT_NAME)["model"]
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())

    status, text, _ = run(
        capsys, "evaluate", "--checkpoint", out / "model.pt", "--data", "shapes",
        "--eval-size", "4", "--json", out / "eval.json",
    )  # fmt: skip
    assert status == 0
    assert "4 held-out shapes images (seed 1, 64 px)" in text  # the training seed + 1
    report = json.loads((out / "eval.json").read_text())
    assert set(report["per_class"]) == {"circle", "square", "triangle"}
    for key in ("map", "map_50", "map_75", "mar_100", "voc_map_50"):
        assert -1 <= report[key] <= 1 and f"{key:<12}{report[key]:.4f}" in text

    photo = write_png(tmp_path / "photo.png")
    status, text, _ = run(
        capsys, "detect", photo, "--checkpoint", out / "model.pt", "--out", tmp_path / "det",
        "--score-thresh", "0.05",
    )  # fmt: skip
    assert status == 0
    with torch.no_grad():
        expected = int((model([read_image(photo)])[0]["scores"] >= 0.05).sum())
    assert f"photo.png: {expected} detections -> {tmp_path / 'det' / 'photo.png'}" in text
    assert len(re.findall(r"^  (circle|square|triangle) \d\.\d{3} \[", text, re.M)) == expected
    with Image.open(tmp_path / "det" / "photo.png") as drawn:
        assert drawn.width >= 96 and drawn.height >= 64


def test_resume_continues_exactly(tmp_path, capsys):
    """Stopped after 2 of 4 steps (mid-epoch) and resumed: the weights and the history of an
    uninterrupted run."""
    common = [*TINY, "--epochs", "2"]
    assert run(capsys, "train", *common, "--max-steps", "4", "--out", tmp_path / "a")[0] == 0
    assert run(capsys, "train", *common, "--max-steps", "2", "--out", tmp_path / "b")[0] == 0
    status, text, _ = run(
        capsys, "train", *common, "--max-steps", "4", "--out", tmp_path / "b", "--resume"
    )
    assert status == 0 and "resumed from" in text and "at step 2" in text
    a, b = (load_model_file(tmp_path / name / "model.pt")[0].state_dict() for name in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((tmp_path / name / "history.json").read_text()) for name in "ab")
    assert hb["step"] == [1, 2, 3, 4]
    assert (ha["loss"], ha["lr"]) == (hb["loss"], hb["lr"])


def test_warmup_cosine_schedule():
    factor = warmup_cosine(total_steps=10, warmup_steps=4)
    # warm-up 1/4, 2/4, ..., times the cosine 0.5 (1 + cos(pi s / 10))
    assert [factor(s) for s in (0, 1, 3, 5)] == pytest.approx(
        [0.25, 0.5 * 0.5 * (1 + 0.9510565163), 0.5 * (1 + 0.5877852523), 0.5]
    )
    assert factor(10) == 0.0 and factor(12) == 0.0


def test_fine_tuning_options(tmp_path, capsys):
    """--init-from loads every matching tensor, --freeze keeps tensors fixed, --lr-multiplier
    gives biases their own learning rate."""
    first = tmp_path / "first"
    assert run(capsys, "train", *TINY, "--epochs", "1", "--max-steps", "1", "--out", first)[0] == 0
    status, text, _ = run(
        capsys, "train", *TINY, "--epochs", "1", "--max-steps", "1", "--out", tmp_path / "second",
        "--init-from", first / "model.pt", "--freeze", r"^backbone\.", "--lr-multiplier",
        r"\.bias$=2", "--schedule", "constant",
    )  # fmt: skip
    assert status == 0
    before = load_model_file(first / "model.pt")[0]
    after = load_model_file(tmp_path / "second" / "model.pt")[0]
    count = len(before.state_dict())
    assert f"initial weights from {first / 'model.pt'}: loaded {count} tensors; skipped: 0" in text
    frozen = re.search(r"frozen: (\d+) parameter tensors", text)
    params_before = dict(before.named_parameters())
    changed = {n for n, p in after.named_parameters() if not torch.equal(p, params_before[n])}
    backbone = {n for n, _ in after.named_parameters() if n.startswith("backbone.")}
    assert int(frozen.group(1)) == len(backbone) > 0
    assert changed and not changed & backbone
    groups = load_checkpoint(tmp_path / "second" / CHECKPOINT_NAME)["optimizer"]["param_groups"]
    assert sorted(g["lr"] for g in groups) == pytest.approx([1e-3, 2e-3])


# --------------------------------------------------------------------------- evaluation numbers


class Oracle(nn.Module):
    """Returns, for an image it was shown, the ground truth with the boxes of class ``shifted``
    moved right by half their width (IoU 1/3 with their ground truth: never a match)."""

    answers: dict[bytes, dict] = {}
    shifted = 0

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, images, targets=None):
        out = []
        for image in images:
            target = self.answers.get(image.numpy().tobytes())
            if target is None:
                raise LookupError("Oracle was not shown this image")
            boxes = target["boxes"].clone()
            moved = target["labels"] == self.shifted
            boxes[moved, 0::2] += (boxes[moved, 2] - boxes[moved, 0])[:, None] / 2
            n = len(boxes)
            out.append({"boxes": boxes, "labels": target["labels"], "scores": torch.ones(n)})
        return out


@pytest.fixture
def oracle(monkeypatch):
    monkeypatch.setitem(MODELS, "oracle", Oracle)

    def show(data, shifted: int = 0) -> None:
        Oracle.answers = {image.numpy().tobytes(): target for image, target in data}
        Oracle.shifted = shifted

    return show


def test_evaluate_reports_each_class_by_name(tmp_path, capsys, oracle):
    data, classes = open_data(parse_data("shapes"), length=12, seed=3, image_size=64)
    present = {int(label) for _, target in data for label in target["labels"]}
    assert present == {1, 2, 3}
    oracle(data, shifted=SHAPE_CLASSES.index("square"))
    meta = {"data": "shapes", "image_size": 64, "seed": 0, "train_size": 100}
    save_model_file(tmp_path / "m.pt", Oracle(4), ModelSpec("oracle", classes), meta)
    status, text, _ = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", "shapes",
        "--split-seed", "3", "--eval-size", "12", "--json", tmp_path / "e.json",
    )  # fmt: skip
    assert status == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["per_class"] == {
        "circle": {"map": 1.0, "voc_map_50": 1.0},
        "square": {"map": 0.0, "voc_map_50": 0.0},
        "triangle": {"map": 1.0, "voc_map_50": 1.0},
    }
    assert report["map"] == pytest.approx(2 / 3)
    assert re.search(r"^    square\s+0\.0000\s+0\.0000$", text, re.M)
    expected = mean_average_precision(
        [Oracle(4)([image])[0] for image, _ in data], [target for _, target in data]
    )
    assert report["map_75"] == pytest.approx(float(expected["map_75"]))
    assert report["mar_100"] == pytest.approx(float(expected["mar_100"]))


def test_evaluate_a_coco_folder_names_its_categories(tmp_path, capsys, oracle):
    root = Path(__file__).resolve().parents[1] / "images"
    data, classes = open_data(parse_data(f"coco:{root}"), length=None, seed=0, image_size=0)
    assert len(classes) == 17 and classes[0] == "background" and "cat" in classes
    oracle(data)
    save_model_file(tmp_path / "m.pt", Oracle(17), ModelSpec("oracle", classes), {})
    status, text, _ = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", f"coco:{root}"
    )
    assert status == 0 and f"on 6 images of {root}" in text
    assert re.search(r"^    cat\s+1\.0000\s+1\.0000$", text, re.M)


def test_evaluate_a_voc_folder_with_its_own_classes(tmp_path, capsys, oracle):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    write_png(root / "JPEGImages" / "a.png", 40, 60)
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><size><width>60</width><height>40</height>"
        "<depth>3</depth></size><object><name>dog</name><difficult>0</difficult><bndbox>"
        "<xmin>11</xmin><ymin>5</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>"
        "</annotation>"
    )
    data, classes = open_data(
        parse_data(f"voc:{root}"), length=None, seed=0, image_size=0, voc_classes=("cat", "dog")
    )
    assert classes == ("background", "cat", "dog")
    assert data[0][1]["boxes"].tolist() == [[10.0, 4.0, 30.0, 20.0]]
    oracle(data)
    save_model_file(tmp_path / "m.pt", Oracle(3), ModelSpec("oracle", classes), {})
    status, text, _ = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", f"voc:{root}",
        "--classes", "cat,dog",
    )  # fmt: skip
    assert status == 0
    assert re.search(r"^    cat\s+-1\.0000\s+-1\.0000$", text, re.M)  # no cat in the folder
    assert re.search(r"^    dog\s+1\.0000\s+1\.0000$", text, re.M)


# --------------------------------------------------------------------------- plates


class FixedPlates(nn.Module):
    """Two plates with fixed corners in every image, scored 0.9 and 0.2."""

    CORNERS = torch.tensor(
        [
            [[10.0, 12.0], [50.0, 16.0], [48.0, 30.0], [8.0, 26.0]],
            [[60, 40], [90, 40], [90, 55], [60, 55]],
        ]
    )

    def __init__(self, num_classes: int):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, images, targets=None):
        corners = self.CORNERS
        boxes = torch.cat((corners.min(dim=1).values, corners.max(dim=1).values), dim=1)
        labels, scores = torch.ones(2, dtype=torch.int64), torch.tensor([0.9, 0.2])
        return [
            {"boxes": boxes, "labels": labels, "scores": scores, "corners": corners} for _ in images
        ]


def test_detect_draws_plates_and_saves_them_rectified(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "fixed_plates", FixedPlates)
    spec = ModelSpec("fixed_plates", ("background", "plate"))
    save_model_file(tmp_path / "m.pt", FixedPlates(2), spec)
    photo = write_png(tmp_path / "car.png")
    status, text, _ = run(
        capsys, "detect", photo, "--checkpoint", tmp_path / "m.pt", "--out", tmp_path / "det"
    )
    assert status == 0
    assert "car.png: 1 detections" in text and "  plate 0.900 [8.0, 12.0, 50.0, 30.0]" in text
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == ["car.png", "car_plate0.png"]
    saved = read_image(tmp_path / "det" / "car_plate0.png")
    expected = rectify(read_image(photo), FixedPlates.CORNERS[:1])[0]
    assert saved.shape == expected.shape == (3, 32, 96)
    assert (saved - expected).abs().max() <= 0.5 / 255 + 1e-6  # PNG rounding only


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "yolo"], "invalid choice: 'yolo' (choose from"),
        (
            ["train", "--data", "imagenet"],
            "unknown data 'imagenet'; choose shapes, plates, voc:DIR",
        ),
        (["train", "--data", "voc:/no/such/folder"], "no folder /no/such/folder"),
        (["train", "--data", "coco:/no/such.json"], "no file or folder /no/such.json"),
        (["train", "--data", "shapes:x"], "shapes data are generated, they take no path"),
        (["train", "--device", "gpu"], "'gpu' is not a device name; use cpu, cuda, cuda:N or mps"),
        (["train", "--lr-multiplier", "bias"], "expected PATTERN=FACTOR with a positive FACTOR"),
        (["train", "--option", "1x=2"], "expected KEY=VALUE with KEY a Python name"),
        (["train", "--epochs", "0"], "argument --epochs"),
    ],
)
def test_bad_arguments_are_named(tmp_path, capsys, argv, message):
    defaults = {
        "--model": "ssd", "--data": "shapes", "--epochs": "1", "--out": str(tmp_path / "o")
    }  # fmt: skip
    for option, value in defaults.items():
        if option not in argv:
            argv = [*argv, option, value]
    status, _, err = run(capsys, *argv)
    assert status == 2 and message in err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_is_named(capsys):
    status, _, err = run(
        capsys, "evaluate", "--checkpoint", "x", "--data", "shapes", "--device", "cuda"
    )
    assert status == 2 and "CUDA is not available here" in err


def test_run_folder_mistakes(tmp_path, capsys):
    out = tmp_path / "run"
    train = ["train", *TINY, "--epochs", "1", "--max-steps", "1", "--out", out]
    status, _, err = run(capsys, *train, "--resume")
    assert status == 2 and f"no checkpoint {out / CHECKPOINT_NAME} to resume from" in err
    assert run(capsys, *train)[0] == 0
    status, _, err = run(capsys, *train)
    assert status == 2 and "already holds a training run (last.pt): pass --resume" in err
    other_model = [a if a != "ssd" else "torchvision_frcnn" for a in train]
    status, _, err = run(capsys, *other_model, "--resume")
    assert status == 2 and "is of model 'ssd', not 'torchvision_frcnn'" in err
    status, _, err = run(capsys, *train, "--resume", "--lr", "0.5")
    assert status == 2 and "lr 0.001 -> 0.5" in err
    status, _, err = run(
        capsys, "train", *TINY, "--epochs", "1", "--out", out / "x", "--classes", "a"
    )
    assert status == 2 and "--classes names the classes of VOC folders only" in err


def test_model_file_mistakes(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", *TINY, "--epochs", "1", "--max-steps", "1", "--out", out)[0] == 0
    evaluate = ["evaluate", "--data", "shapes", "--eval-size", "2", "--checkpoint"]
    status, _, err = run(capsys, *evaluate, out / CHECKPOINT_NAME)
    assert status == 2 and "is a training checkpoint of fit" in err
    status, _, err = run(capsys, *evaluate, tmp_path / "none.pt")
    assert status == 2 and "no checkpoint at" in err
    status, _, err = run(capsys, *evaluate, out / "model.pt", "--data", "plates")
    assert status == 2 and "detects ['circle', 'square', 'triangle'], but --data plates" in err
    photos = Path(__file__).resolve().parents[1] / "images"
    status, _, err = run(capsys, *evaluate, out / "model.pt", "--data", f"coco:{photos}")
    assert status == 2 and f"but --data coco:{photos} has classes ['person', 'face'," in err
    status, _, err = run(capsys, *evaluate, out / "model.pt", "--split-seed", "0")
    assert status == 0 and "the first 2 of these images are training images" in err
    # the weights of an SSD for 4 classes do not fit one for 3
    state = load_checkpoint(out / "model.pt")
    state["spec"]["classes"] = ["background", "circle", "square"]
    torch.save(state, tmp_path / "edited.pt")
    status, _, err = run(capsys, *evaluate, tmp_path / "edited.pt")
    assert status == 2 and "do not fit the SSD the registry builds" in err
    # 4 priors per cell x 4 classes in the file, x 3 in the model
    assert re.search(r"cls_heads\.0\.weight \[16, (\d+), 3, 3\] vs \[12, \1, 3, 3\]", err)
    photo = write_png(tmp_path / "a.png")
    (tmp_path / "b").mkdir()
    twin = write_png(tmp_path / "b" / "a.png")
    status, _, err = run(
        capsys, "detect", photo, twin, "--checkpoint", out / "model.pt", "--out", tmp_path / "d"
    )
    assert status == 2 and "would both be written as a.png" in err


def test_split_seed_is_for_synthetic_data(tmp_path, capsys, oracle):
    root = Path(__file__).resolve().parents[1] / "images"
    data, classes = open_data(parse_data(f"coco:{root}"), length=None, seed=0, image_size=0)
    save_model_file(tmp_path / "m.pt", Oracle(17), ModelSpec("oracle", classes), {})
    status, _, err = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", f"coco:{root}",
        "--split-seed", "2",
    )  # fmt: skip
    assert status == 2 and "a folder is evaluated whole" in err


# --------------------------------------------------------------------------- own data


def write_mixed_voc(root: Path, count: int = 5) -> Path:
    """A VOC folder of ``count`` images of different sizes, one red "box" each."""
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(count):
        height, width = 40 + 8 * (i % 3), 90 - 12 * (i % 4)
        image = torch.rand(3, height, width, generator=g) * 0.3
        x, y = 4 + 3 * i, 5 + i
        image[0, y : y + 18, x : x + 20] = 1.0
        box = torch.tensor([[x, y, x + 20.0, y + 18.0]])
        items.append((image, {"boxes": box, "labels": torch.tensor([1])}))
    write_voc_folder(root, items, ["box"])
    return root


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_mixed_size_voc_folder_trains_evaluates_and_detects(tmp_path, capsys, model):
    """Every registered model, through --resize: training sees 48 x 48 letterboxed images,
    evaluation and detection answer in each image's own pixels."""
    voc = write_mixed_voc(tmp_path / "voc")
    out = tmp_path / "run"
    # torchvision's model resizes its input again, to 320 px by default: keep it at 48
    options = ["--option", "min_size=48", "--option", "max_size=48"]
    status, text, err = run(
        capsys, "train", "--model", model, "--data", f"voc:{voc}", "--classes", "box",
        "--resize", "48", "--epochs", "1", "--max-steps", "2", "--batch-size", "2",
        "--no-progress", "--log-every", "1", "--out", out,
        *(options if model == "torchvision_frcnn" else []),
    )  # fmt: skip
    assert status == 0, err
    assert f"data voc:{voc}: 5 images checked, 5 sizes from " in text
    model_file, spec, _ = load_model_file(out / "model.pt")
    assert spec.resize == Resize(48) and spec.classes == ("background", "box")
    status, text, err = run(
        capsys, "evaluate", "--checkpoint", out / "model.pt", "--data", f"voc:{voc}"
    )
    assert status == 0, err  # --classes comes from the model file
    assert f"on 5 images of {voc}, each image letterbox to 48x48 and back" in text
    image = voc / "JPEGImages" / "000001.png"
    status, text, err = run(
        capsys, "detect", image, "--checkpoint", out / "model.pt", "--out", tmp_path / "det",
        "--score-thresh", "0",
    )  # fmt: skip
    assert status == 0, err
    boxes = [[float(v) for v in line.split("[")[1].rstrip("]").split(", ")] for line in
             text.splitlines() if line.startswith("  box ")]  # fmt: skip
    height, width = read_image(image).shape[1:]
    assert len(boxes) == int(re.search(r"(\d+) detections", text).group(1))
    # (an untrained WPOD-Net finds nothing above its own score threshold of 0.5)
    assert all(0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height for x1, y1, x2, y2 in boxes)
    with Image.open(tmp_path / "det" / "000001.png") as drawn:
        assert drawn.width / drawn.height == pytest.approx(width / height, rel=0.02)


def test_sixteen_bit_images_train(tmp_path, capsys):
    voc = write_mixed_voc(tmp_path / "voc", count=2)
    grey = (read_image(voc / "JPEGImages" / "000000.png")[0] * 65535).round().numpy()
    write_png16(voc / "JPEGImages" / "000000.png", grey)
    status, text, err = run(
        capsys, "train", "--model", "faster_rcnn", "--data", f"voc:{voc}", "--classes", "box",
        "--epochs", "1", "--batch-size", "2", "--no-progress", "--out", tmp_path / "run",
    )  # fmt: skip
    assert status == 0, err
    assert "2 images checked, 2 sizes" in text


def test_resume_finds_the_same_folder_named_another_way(tmp_path, capsys, monkeypatch):
    write_mixed_voc(tmp_path / "voc", count=4)
    monkeypatch.chdir(tmp_path)
    train = [
        "train", "--model", "faster_rcnn", "--classes", "box", "--epochs", "1",
        "--batch-size", "2", "--no-progress", "--out", "run",
    ]  # fmt: skip
    assert run(capsys, *train, "--data", "voc:voc", "--max-steps", "1")[0] == 0
    assert (
        json.loads((tmp_path / "run" / "run.json").read_text())["data"] == f"voc:{tmp_path / 'voc'}"
    )
    status, text, err = run(capsys, *train, "--data", f"voc:{tmp_path}/./voc/", "--resume")
    assert status == 0, err
    assert "resumed from run/last.pt at step 1" in text and "trained faster_rcnn to step 2" in text
    status, text, _ = run(capsys, *train, "--data", "voc:voc", "--resume")
    assert status == 0
    assert "the run in run has already trained 2 steps, all that --epochs 1 ask for" in text
    assert "Raise --epochs (or --max-steps) to train further" in text


def test_evaluate_a_voc_folder_takes_the_model_files_classes(tmp_path, capsys, oracle):
    voc = write_mixed_voc(tmp_path / "voc", count=3)
    data, classes = open_data(
        parse_data(f"voc:{voc}"), length=None, seed=0, image_size=0, voc_classes=("box",)
    )
    oracle(data)
    save_model_file(tmp_path / "m.pt", Oracle(2), ModelSpec("oracle", classes), {})
    status, text, err = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", f"voc:{voc}"
    )
    assert status == 0, err
    assert re.search(r"^    box\s+1\.0000\s+1\.0000$", text, re.M)
    status, _, err = run(
        capsys, "evaluate", "--checkpoint", tmp_path / "m.pt", "--data", f"voc:{voc}",
        "--classes", "cat",
    )  # fmt: skip
    assert status == 2 and "000000.xml: object 0 has class name 'box', which is not one of" in err


def test_detect_with_nothing_above_the_threshold_says_how_to_see_more(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(MODELS, "fixed_plates", FixedPlates)
    save_model_file(
        tmp_path / "m.pt", FixedPlates(2), ModelSpec("fixed_plates", ("background", "plate"))
    )
    photo = write_png(tmp_path / "car.png")
    status, text, _ = run(
        capsys, "detect", photo, "--checkpoint", tmp_path / "m.pt", "--out", tmp_path / "det",
        "--score-thresh", "0.95",
    )  # fmt: skip
    assert status == 0
    assert "car.png: 0 detections" in text
    assert (
        "none scored >= --score-thresh 0.95; the best scored 0.900: lower --score-thresh (e.g. --score-thresh 0.9) to see it"
        in text
    )


def test_help_gives_every_option_a_text_and_describes_layouts_and_the_run_folder(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help text"
                if action.default not in (None, False, []):
                    assert "default" in action.help, f"{name} {action.option_strings[0]}"
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "DIR/Annotations/NAME.xml", "DIR/JPEGImages/FILE", '"annotations" (id, image_id, category_id, bbox',
        "coco:DIR the same with DIR/annotations.json", "run.json the run's settings",
        "last.pt the checkpoint to resume from", "history.json every step's loss terms",
        "model.pt the model file that evaluate and detect read",
        "--option KEY=VALUE passes KEY to the model's class", "An unknown KEY is refused",
        "--resize N brings every image to N x N pixels", "--schedule {cosine,constant}",
        "(default: cosine)", "(default: 10)", "(default: 500)", "(default: 50)",
    ):  # fmt: skip
        assert words in text, words
    assert main(["detect", "--help"]) == 0
    assert "(default: 0.5)" in " ".join(capsys.readouterr().out.split())


class FailingSSD(nn.Module):
    """An SSD whose third training step fails with ``failure`` (Ctrl-C, a NaN loss)."""

    failure: BaseException = KeyboardInterrupt()

    def __init__(self, num_classes: int):
        super().__init__()
        self.ssd, self.calls = build_model("ssd", num_classes), 0

    def forward(self, images, targets=None):
        self.calls += self.training
        if self.training and self.calls == 3:
            if isinstance(self.failure, KeyboardInterrupt):
                raise self.failure
            losses = self.ssd(images, targets)
            return {**losses, "classification": losses["classification"] * float("nan")}
        return self.ssd(images, targets)


@pytest.mark.parametrize("failure", ["ctrl-c", "nan"])
def test_a_run_that_stops_keeps_its_steps_and_says_how_to_go_on(
    tmp_path, capsys, monkeypatch, failure
):
    monkeypatch.setitem(MODELS, "failing", FailingSSD)
    monkeypatch.setattr(FailingSSD, "failure", KeyboardInterrupt() if failure == "ctrl-c" else None)
    argv = ["train", *TINY, "--epochs", "2", "--out", tmp_path / "run"]
    argv[argv.index("ssd")] = "failing"
    status, _, err = run(capsys, *argv)
    checkpoint = tmp_path / "run" / CHECKPOINT_NAME
    assert load_checkpoint(checkpoint)["step"] == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    held = f"{checkpoint} holds step 2, the last one completed"
    if failure == "ctrl-c":
        assert status == 130
        assert err.startswith(f"tutorial-det train: interrupted. {held} add --resume to continue")
    else:
        assert status == 2
        assert err.startswith("tutorial-det train: error: the loss is not finite at step 3")
        assert f"{held} Fix the cause, then add --resume to continue from the checkpoint." in err


def test_debug_shows_the_traceback_instead(tmp_path):
    with pytest.raises(CommandError, match="ssd has no option .no_such."):
        main(
            [
                "train",
                *TINY,
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "o"),
                "--option",
                "no_such=3",
                "--debug",
            ]
        )


# --------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_two_processes_under_torchrun_train_like_one(tmp_path, capsys):
    """WPOD-Net's loss is a mean over images; with frozen batch norm nothing else couples the
    images of a batch, so 2 processes x 2 images end with the weights of 1 process x 4 images."""
    common = [
        "--model", "wpod", "--data", "plates", "--frozen-batch-norm", "--image-size", "64",
        "--train-size", "8", "--epochs", "1", "--max-steps", "2", "--log-every", "1",
        "--no-progress",
    ]  # fmt: skip
    # Each worker's stdout goes to its own file: on one shared pipe the two processes' lines can
    # interleave mid-line.
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--log-dir", str(tmp_path / "logs"), "--redirects", "1",
        "-m", "tutorial_det", "train", *common, "--batch-size", "2", "--out", str(tmp_path / "two"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = {p.parent.name: p.read_text() for p in (tmp_path / "logs").rglob("stdout.log")}
    assert sorted(logs) == ["0", "1"], logs
    assert "training on cpu (2 processes)" in logs["0"]
    assert [logs[rank].count("checkpoint written") for rank in "01"] == [1, 0]  # rank 0 writes
    fingerprints = [
        re.findall(rf"rank {rank} of 2: step 2, weights fingerprint (\S+)", logs[rank])
        for rank in "01"
    ]
    assert len(fingerprints[0]) == len(fingerprints[1]) == 1, logs
    assert fingerprints[0] == fingerprints[1]  # the replicas are identical
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2

    status, text, _ = run(capsys, "train", *common, "--batch-size", "4", "--out", tmp_path / "one")
    assert status == 0
    two = dict(load_model_file(tmp_path / "two" / "model.pt")[0].named_parameters())
    one = dict(load_model_file(tmp_path / "one" / "model.pt")[0].named_parameters())
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, rtol=1e-4, atol=1e-5)
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5)
