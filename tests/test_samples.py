"""The sample photos in images/: they load, and their boxes agree with annotations.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from tutorial_det import samples
from tutorial_det.samples import (
    images_dir,
    load_sample,
    sample_categories,
    sample_dataset,
    sample_names,
)

IMAGES = Path(__file__).resolve().parent.parent / "images"
DOC = json.loads((IMAGES / "annotations.json").read_text())
NAMES = ["grace_hopper", "astronaut", "coffee", "chelsea", "rocket", "motorcycle"]


def test_images_dir_is_the_repository_folder():
    assert images_dir() == IMAGES


def test_names_follow_the_annotation_file():
    assert sample_names() == NAMES
    assert [Path(image["file_name"]).stem for image in DOC["images"]] == NAMES


def test_categories_are_contiguous_and_named_as_in_the_file():
    categories = sample_categories()
    assert list(categories) == list(range(1, 17))
    assert categories == {c["id"]: c["name"] for c in DOC["categories"]}
    assert categories[1] == "person" and categories[8] == "cup"


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_loads_with_the_boxes_of_the_file(name):
    image, target = load_sample(name)
    entry = next(i for i in DOC["images"] if i["file_name"] == f"{name}.jpg")
    anns = [a for a in DOC["annotations"] if a["image_id"] == entry["id"]]
    height, width = entry["height"], entry["width"]
    assert image.shape == (3, height, width) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert float(image.std()) > 0.05  # a photo, not a blank page
    boxes, labels = target["boxes"], target["labels"]
    assert boxes.shape == (len(anns), 4) and boxes.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == [a["category_id"] for a in anns]
    assert target["image_id"] == entry["id"]
    expected = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
    assert boxes.tolist() == expected
    # inside the image and not degenerate
    assert bool((boxes[:, :2] >= 0).all()) and bool((boxes[:, 2] <= width).all())
    assert bool((boxes[:, 3] <= height).all())
    assert bool((boxes[:, 2:] - boxes[:, :2] >= 10).all())


def test_counts_and_a_known_box():
    assert len(DOC["images"]) == 6 and len(DOC["annotations"]) == 29
    assert sum(len(load_sample(n)[1]["boxes"]) for n in NAMES) == 29
    _, coffee = load_sample("coffee")
    names = [sample_categories()[int(v)] for v in coffee["labels"]]
    assert names == ["cup", "saucer", "spoon"]
    assert coffee["boxes"][0].tolist() == [172, 17, 408, 306]


def test_annotation_file_is_consistent_coco():
    for a in DOC["annotations"]:
        x, y, w, h = a["bbox"]
        assert a["area"] == w * h and a["iscrowd"] == 0
    assert len({a["id"] for a in DOC["annotations"]}) == len(DOC["annotations"])
    licences = {lic["id"] for lic in DOC["licenses"]}
    assert all(image["license"] in licences for image in DOC["images"])


def test_photos_are_small_and_documented():
    readme = (IMAGES / "README.md").read_text()
    for name in NAMES:
        path = IMAGES / f"{name}.jpg"
        assert path.stat().st_size < 300_000, f"{path} is larger than 300 kB"
        assert f"`{name}.jpg`" in readme
    assert (IMAGES / "samples_annotated.jpg").is_file()


def test_loaded_samples_are_independent_copies():
    _, first = load_sample("chelsea")
    first["boxes"] += 100
    _, second = load_sample("chelsea")
    assert second["boxes"][0].tolist() == [0, 0, 400, 300]


def test_sample_dataset_takes_transforms():
    ds = sample_dataset(transforms=lambda image, target: (image[:, :10, :10], target))
    image, _ = ds[0]
    assert image.shape == (3, 10, 10)


def test_unknown_sample_name_lists_the_names():
    with pytest.raises(ValueError, match=r"no sample photo named 'dog'; the samples are \['grace"):
        load_sample("dog")


def test_missing_images_folder_says_a_checkout_is_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "__file__", str(tmp_path / "tutorial_det" / "samples.py"))
    with pytest.raises(FileNotFoundError, match="images/ folder of the tutorial_det repository"):
        images_dir()


def test_load_sample_resized_scales_the_boxes_with_the_photo():
    photo, target = load_sample("astronaut")
    photo800, target800 = load_sample("astronaut", size=800)
    expected = F.interpolate(photo[None], size=(800, 800), mode="bilinear", antialias=True)[0]
    assert torch.equal(photo800.as_subclass(torch.Tensor), expected)
    assert target800["boxes"].canvas_size == (800, 800)
    boxes = target["boxes"].as_subclass(torch.Tensor)
    assert torch.equal(target800["boxes"].as_subclass(torch.Tensor), boxes * 800 / 512)
    assert torch.equal(target800["labels"], target["labels"])
    _, wide = load_sample("coffee", size=100)  # 400 x 600: x and y scale differently
    _, coffee = load_sample("coffee")
    scale = torch.tensor([100 / 600, 100 / 400, 100 / 600, 100 / 400])
    assert torch.allclose(wide["boxes"].as_subclass(torch.Tensor), coffee["boxes"] * scale)
    for size in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="size must be a positive int"):
            load_sample("coffee", size=size)
