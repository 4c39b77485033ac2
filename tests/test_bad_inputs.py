"""A zoo of bad inputs, generated here at test time, driven through the command line: every one
must end with exit status 2 and one ``error:`` line on stderr that names the argument or file
(and no traceback).

Categories: ``argument`` (options and their values), ``voc`` and ``coco`` (annotation files and
folder layouts), ``image`` (image files: corrupt, truncated, 16-bit, 32-bit, decompression bombs),
``model-file`` (what evaluate and detect read), ``run-folder`` (what ``--resume`` and
``--init-from`` read) and ``process`` (the real ``python -m tutorial_det`` in a subprocess, which
takes seconds to import torch). Everything else runs ``main(argv)`` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from data_files import coco_doc, voc_xml, write_coco, write_image, write_png16, write_voc
from PIL import Image

from tutorial_det.cli import main
from tutorial_det.data import SHAPE_CLASSES
from tutorial_det.model_file import ModelSpec, save_model_file
from tutorial_det.models import build_model
from tutorial_det.training import CHECKPOINT_NAME, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

#: The smallest registered model on 64-pixel synthetic images.
TINY = [
    "--model", "ssd", "--data", "shapes", "--image-size", "64", "--train-size", "4",
    "--batch-size", "2", "--no-progress", "--log-every", "1",
]  # fmt: skip


@dataclass(frozen=True)
class Given:
    """What the cases start from (built once): a trained run folder and its model file."""

    run: Path
    model_file: Path


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    #: ``make(tmp, given) -> (argv, a fragment of the error line[, environment variables])``
    make: Callable[[Path, Given], tuple]
    in_subprocess: bool = False

    @property
    def id(self) -> str:
        return f"{self.category}:{self.name}"


CASES: list[Case] = []


def case(category: str, in_subprocess: bool = False):
    def register(make):
        CASES.append(Case(category, make.__name__, make, in_subprocess))
        return make

    return register


# --------------------------------------------------------------------------- helpers


def train_shapes(tmp: Path, *extra) -> list:
    return ["train", *TINY, "--epochs", "1", "--out", tmp / "run", *extra]


def good_voc(root: Path) -> Path:
    """Two annotated images of different sizes, classes cat and dog."""
    write_voc(
        root,
        {
            "a": (32, 24, [("cat", (2, 3, 20, 20), 0)]),
            "b": (40, 28, [("dog", (5, 5, 30, 25), 0), ("cat", (1, 1, 8, 8), 1)]),
        },
    )
    return root


def train_voc(tmp: Path, root: Path, *extra) -> list:
    return [
        "train", "--model", "faster_rcnn", "--data", f"voc:{root}", "--classes", "cat,dog",
        "--epochs", "1", "--batch-size", "2", "--no-progress", "--out", tmp / "run", *extra,
    ]  # fmt: skip


def broken_voc(tmp: Path, xml: str, image=("a.jpg", 32, 24)) -> tuple[Path, Path]:
    """A good VOC folder whose ``a.xml`` is replaced by ``xml``; returns root and that file."""
    root = good_voc(tmp / "voc")
    name, width, height = image
    write_image(root / "JPEGImages" / name, width, height)
    path = root / "Annotations" / "a.xml"
    path.write_text(xml)
    return root, path


def voc_with_object(tmp: Path, obj: str) -> tuple[list, Path]:
    xml = voc_xml("a.jpg", 32, 24, []).replace(
        "</annotation>", f"<object>{obj}</object></annotation>"
    )
    root, path = broken_voc(tmp, xml)
    return train_voc(tmp, root), path


def box(name="cat", xmin="2", ymin="3", xmax="20", ymax="20", difficult="0") -> str:
    return (
        f"<name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin>"
        f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
    )


def coco_folder(tmp: Path, **changes) -> tuple[list, Path]:
    root = tmp / "coco"
    path = write_coco(root, coco_doc(**changes))
    argv = [
        "train", "--model", "faster_rcnn", "--data", f"coco:{root}", "--epochs", "1",
        "--no-progress", "--out", tmp / "run",
    ]  # fmt: skip
    return argv, path


def voc_with_image(tmp: Path, write: Callable[[Path], None], size=(32, 24)) -> tuple[list, str]:
    """A good VOC folder whose image ``a`` is whatever ``write(path)`` writes (as a.png)."""
    root = good_voc(tmp / "voc")
    (root / "JPEGImages" / "a.jpg").unlink()
    write(root / "JPEGImages" / "a.png")
    (root / "Annotations" / "a.xml").write_text(
        voc_xml("a.png", *size, [("cat", (2, 3, 20, 20), 0)])
    )
    return train_voc(tmp, root), "a.png"


def copy_run(given: Given, tmp: Path) -> Path:
    return Path(shutil.copytree(given.run, tmp / "run"))


def resume(tmp: Path, *extra) -> list:
    return [
        "train",
        *TINY,
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--out",
        tmp / "run",
        "--resume",
        *extra,
    ]


def evaluate(model_file: Path, *extra) -> list:
    return ["evaluate", "--checkpoint", model_file, "--data", "shapes", "--eval-size", "2", *extra]


def edited_model_file(given: Given, tmp: Path, edit: Callable[[dict], object]) -> Path:
    state = load_checkpoint(given.model_file)
    edit(state)
    torch.save(state, tmp / "edited.pt")
    return tmp / "edited.pt"


# --------------------------------------------------------------------------- arguments


@case("argument")
def no_command(tmp, given):
    return [], "the following arguments are required: COMMAND"


@case("argument")
def unknown_command(tmp, given):
    return ["fly"], "invalid choice: 'fly'"


@case("argument")
def unknown_option(tmp, given):
    return train_shapes(tmp, "--colour", "red"), "unrecognized arguments: --colour red"


@case("argument")
def unknown_model(tmp, given):
    argv = train_shapes(tmp)
    argv[argv.index("ssd")] = "yolo"
    return argv, "argument --model: invalid choice: 'yolo'"


@case("argument")
def missing_required_options(tmp, given):
    return [
        "train",
        "--model",
        "ssd",
    ], "the following arguments are required: --data, --epochs, --out"


@case("argument")
def unknown_data(tmp, given):
    return ["train", "--model", "ssd", "--data", "imagenet", "--epochs", "1", "--out", tmp], (
        "argument --data: unknown data 'imagenet'; choose shapes, plates, voc:DIR"
    )


@case("argument")
def data_folder_missing(tmp, given):
    return train_voc(tmp, tmp / "nowhere"), f"no folder {tmp / 'nowhere'}"


@case("argument")
def data_without_path(tmp, given):
    return train_voc(tmp, ""), "voc data need a path: voc:DIR"


@case("argument")
def synthetic_data_with_path(tmp, given):
    return ["train", "--model", "ssd", "--data", "shapes:x", "--epochs", "1", "--out", tmp], (
        "shapes data are generated, they take no path"
    )


@case("argument")
def unknown_device(tmp, given):
    return train_shapes(tmp, "--device", "gpu"), "'gpu' is not a device name"


@case("argument")
def epochs_zero(tmp, given):
    argv = train_shapes(tmp)
    argv[argv.index("--epochs") + 1] = "0"
    return argv, "argument --epochs: must be > 0, got 0"


@case("argument")
def epochs_not_a_number(tmp, given):
    argv = train_shapes(tmp)
    argv[argv.index("--epochs") + 1] = "ten"
    return argv, "argument --epochs: expected an integer, got 'ten'"


@case("argument")
def learning_rate_negative(tmp, given):
    return train_shapes(tmp, "--lr", "-0.1"), "argument --lr: must be > 0, got -0.1"


@case("argument")
def learning_rate_not_finite(tmp, given):
    return train_shapes(tmp, "--lr", "nan"), "argument --lr: must be > 0"


@case("argument")
def seed_negative(tmp, given):
    return train_shapes(tmp, "--seed", "-1"), "argument --seed: must be >= 0 and <= 4294967295"


@case("argument")
def workers_negative(tmp, given):
    return train_shapes(tmp, "--workers", "-2"), "argument --workers: must be >= 0, got -2"


@case("argument")
def freeze_not_a_regex(tmp, given):
    return train_shapes(tmp, "--freeze", "backbone.["), "'backbone.[' is not a regular expression"


@case("argument")
def multiplier_without_factor(tmp, given):
    return train_shapes(tmp, "--lr-multiplier", "bias"), "expected PATTERN=FACTOR"


@case("argument")
def option_not_key_value(tmp, given):
    return train_shapes(tmp, "--option", "1x=2"), "expected KEY=VALUE with KEY a Python name"


@case("argument")
def option_unknown(tmp, given):
    return train_shapes(
        tmp, "--option", "no_such=3"
    ), "ssd has no option 'no_such'; its options are"


@case("argument")
def option_of_the_wrong_type(tmp, given):
    return train_shapes(tmp, "--option", "widths=3"), "cannot build ssd with options {'widths': 3}"


@case("argument")
def option_a_model_file_cannot_hold(tmp, given):
    return train_shapes(
        tmp, "--option", "scales={1, 2}"
    ), "--option: options['scales'] is a builtins.set"


@case("argument")
def classes_empty_name(tmp, given):
    return train_voc(tmp, good_voc(tmp / "voc"), "--classes", "cat,,dog"), (
        "argument --classes: expected class names separated by commas"
    )


@case("argument")
def classes_repeated(tmp, given):
    return train_voc(tmp, good_voc(tmp / "voc"), "--classes", "cat,dog,cat"), "cat repeats"


@case("argument")
def classes_for_synthetic_data(tmp, given):
    return train_shapes(tmp, "--classes", "a,b"), "--classes names the classes of VOC folders only"


@case("argument")
def image_size_for_a_folder(tmp, given):
    return train_voc(tmp, good_voc(tmp / "voc"), "--image-size", "64"), "with --resize N"


@case("argument")
def resize_mode_without_resize(tmp, given):
    return train_shapes(tmp, "--resize-mode", "stretch"), "--resize-mode stretch needs --resize N"


@case("argument")
def resize_zero(tmp, given):
    return train_shapes(tmp, "--resize", "0"), "argument --resize: must be > 0"


@case("argument")
def train_size_beyond_the_folder(tmp, given):
    return train_voc(tmp, good_voc(tmp / "voc"), "--train-size", "5"), (
        f"--train-size 5, but {tmp / 'voc'} holds 2 images"
    )


@case("argument")
def out_is_a_file(tmp, given):
    (tmp / "file").write_text("x")
    argv = train_shapes(tmp)
    argv[argv.index("--out") + 1] = tmp / "file"
    return argv, f"--out {tmp / 'file'} is a file: give a folder"


@case("argument")
def wpod_for_several_classes(tmp, given):
    argv = train_shapes(tmp)
    argv[argv.index("ssd")] = "wpod"
    return argv, "--model wpod with the classes of --data shapes ['circle', 'square', 'triangle']"


@case("argument")
def split_seed_for_a_folder(tmp, given):
    return evaluate(given.model_file, "--split-seed", "3") + [
        "--data",
        f"voc:{good_voc(tmp / 'v')}",
    ], ("--split-seed draws held-out synthetic images")


@case("argument")
def json_is_a_folder(tmp, given):
    return evaluate(given.model_file, "--json", tmp), f"--json {tmp} is a folder: give a file name"


@case("argument")
def score_thresh_above_one(tmp, given):
    write_image(tmp / "x.png", 8, 8)
    argv = ["detect", tmp / "x.png", "--checkpoint", given.model_file, "--out", tmp / "d"]
    return [*argv, "--score-thresh", "1.5"], "argument --score-thresh: must be >= 0 and <= 1"


@case("argument")
def distributed_variables_incomplete(tmp, given):
    return (
        train_shapes(tmp),
        "WORLD_SIZE=2 is set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not",
        {"WORLD_SIZE": "2"},
    )


# --------------------------------------------------------------------------- VOC folders


@case("voc")
def no_annotations_folder(tmp, given):
    root = good_voc(tmp / "voc")
    shutil.rmtree(root / "Annotations")
    return train_voc(tmp, root), "has no Annotations/ folder (a VOC folder holds Annotations/*.xml"


@case("voc")
def no_images_folder(tmp, given):
    root = good_voc(tmp / "voc")
    shutil.rmtree(root / "JPEGImages")
    return train_voc(tmp, root), "has no JPEGImages/ folder"


@case("voc")
def no_annotation_files(tmp, given):
    root = good_voc(tmp / "voc")
    for path in (root / "Annotations").iterdir():
        path.rename(path.with_suffix(".txt"))
    return train_voc(tmp, root), f"{root} holds no images"


@case("voc")
def truncated_xml(tmp, given):
    root, path = broken_voc(tmp, voc_xml("a.jpg", 32, 24, [])[:60])
    return train_voc(tmp, root), f"{path}: malformed XML at line"


@case("voc")
def empty_xml(tmp, given):
    root, path = broken_voc(tmp, "")
    return train_voc(tmp, root), f"{path}: malformed XML at line 1, column 0"


@case("voc")
def binary_xml(tmp, given):
    root, path = broken_voc(tmp, "")
    path.write_bytes(bytes(range(256)))
    return train_voc(tmp, root), f"{path}: malformed XML"


@case("voc")
def entity_expansion_bomb(tmp, given):
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    xml = f'<?xml version="1.0"?><!DOCTYPE a [{entities}]><annotation><filename>&e9;</filename></annotation>'
    root, path = broken_voc(tmp, xml)
    return train_voc(tmp, root), f"{path}: malformed XML at line 1"


@case("voc")
def wrong_root_element(tmp, given):
    root, path = broken_voc(tmp, "<image><filename>a.jpg</filename></image>")
    return train_voc(tmp, root), f"{path}: the root element is <image>, expected <annotation>"


@case("voc")
def no_filename(tmp, given):
    root, path = broken_voc(
        tmp, voc_xml("a.jpg", 32, 24, []).replace("<filename>a.jpg</filename>", "")
    )
    return train_voc(tmp, root), f"{path}: the annotation has no <filename> element"


@case("voc")
def no_size(tmp, given):
    xml = voc_xml("a.jpg", 32, 24, []).replace("<width>32</width>", "")
    root, path = broken_voc(tmp, xml)
    return train_voc(tmp, root), f"{path}: the annotation has no <size/width> element"


@case("voc")
def width_not_an_integer(tmp, given):
    xml = voc_xml("a.jpg", 32, 24, []).replace("<width>32</width>", "<width>32.5</width>")
    root, path = broken_voc(tmp, xml)
    return train_voc(
        tmp, root
    ), f"{path}: the annotation has <size/width> = '32.5', expected an integer"


@case("voc")
def size_zero(tmp, given):
    xml = voc_xml("a.jpg", 32, 24, []).replace("<height>24</height>", "<height>0</height>")
    root, path = broken_voc(tmp, xml)
    return train_voc(tmp, root), f"{path}: <size> gives a 32x0 image; both must be positive"


@case("voc")
def unknown_class(tmp, given):
    argv, path = voc_with_object(tmp, box(name="horse"))
    return argv, f"{path}: object 0 has class name 'horse', which is not one of the 2 classes"


@case("voc")
def classes_not_given(tmp, given):
    root = good_voc(tmp / "voc")  # cat and dog are Pascal VOC classes, a kangaroo is not
    xml = root / "Annotations" / "b.xml"
    xml.write_text(xml.read_text().replace("<name>dog</name>", "<name>kangaroo</name>"))
    argv = train_voc(tmp, root)
    del argv[argv.index("--classes") : argv.index("--classes") + 2]
    return (
        argv,
        "class name 'kangaroo', which is not one of the 20 classes ['aeroplane', 'bicycle',",
    )


@case("voc")
def difficult_two(tmp, given):
    argv, path = voc_with_object(tmp, box(difficult="2"))
    return argv, f"{path}: object 0 ('cat') has <difficult>2</difficult>, expected 0 or 1"


@case("voc")
def box_outside_the_image(tmp, given):
    argv, path = voc_with_object(tmp, box(xmax="40"))
    return argv, f"{path}: object 0 ('cat'): box xmin=2 ymin=3 xmax=40 ymax=20"


@case("voc")
def box_upside_down(tmp, given):
    argv, path = voc_with_object(tmp, box(xmin="25"))
    return argv, "has x2 < x1 or y2 < y1"


@case("voc")
def coordinate_not_a_number(tmp, given):
    argv, path = voc_with_object(tmp, box(ymin="three"))
    return argv, f"{path}: object 0 ('cat') has <bndbox/ymin> = 'three', expected a number"


@case("voc")
def coordinate_nan(tmp, given):
    argv, path = voc_with_object(tmp, box(ymax="nan"))
    return argv, "is not finite"


@case("voc")
def object_without_a_box(tmp, given):
    argv, path = voc_with_object(tmp, "<name>cat</name>")
    return argv, f"{path}: object 0 ('cat') has no <bndbox/xmin> element"


@case("voc")
def image_file_missing(tmp, given):
    root = good_voc(tmp / "voc")
    (root / "JPEGImages" / "b.jpg").unlink()
    return train_voc(tmp, root), f"image file {root / 'JPEGImages' / 'b.jpg'} does not exist"


@case("voc")
def image_of_another_size(tmp, given):
    root = good_voc(tmp / "voc")
    write_image(root / "JPEGImages" / "b.jpg", 41, 28)
    return train_voc(tmp, root), "b.jpg is 41x28 pixels but"


@case("voc")
def uppercase_xml_with_a_fault(tmp, given):
    root = good_voc(tmp / "voc")
    (root / "Annotations" / "b.xml").rename(root / "Annotations" / "b.XML")
    text = (
        (root / "Annotations" / "b.XML").read_text().replace("<name>dog</name>", "<name>d0g</name>")
    )
    (root / "Annotations" / "b.XML").write_text(text)
    return train_voc(tmp, root), "b.XML: object 0 has class name 'd0g'"


@case("voc")
def evaluated_with_classes_the_model_lacks(tmp, given):
    root = good_voc(tmp / "voc")
    return evaluate(
        given.model_file, "--data", f"voc:{root}"
    ), "a.xml: object 0 has class name 'cat'"


# --------------------------------------------------------------------------- COCO files


@case("coco")
def coco_folder_without_annotations(tmp, given):
    (tmp / "coco").mkdir()
    return [
        "train",
        "--model",
        "ssd",
        "--data",
        f"coco:{tmp / 'coco'}",
        "--epochs",
        "1",
        "--out",
        tmp / "r",
    ], ("has no annotations.json: give the annotation file")


@case("coco")
def coco_file_missing(tmp, given):
    return [
        "train",
        "--model",
        "ssd",
        "--data",
        f"coco:{tmp / 'a.json'}",
        "--epochs",
        "1",
        "--out",
        tmp / "r",
    ], (f"no file or folder {tmp / 'a.json'}")


@case("coco")
def coco_truncated(tmp, given):
    argv, path = coco_folder(tmp)
    path.write_text(path.read_text()[:100])
    return argv, f"{path}: malformed JSON at line 1"


@case("coco")
def coco_empty(tmp, given):
    argv, path = coco_folder(tmp)
    path.write_text("")
    return argv, f"{path}: malformed JSON at line 1, column 1"


@case("coco")
def coco_not_utf8(tmp, given):
    argv, path = coco_folder(tmp)
    path.write_bytes(b'{"images": "\xff\xfe"}')
    return argv, f"{path}: not UTF-8 text"


@case("coco")
def coco_top_level_list(tmp, given):
    argv, path = coco_folder(tmp)
    path.write_text("[]")
    return argv, f"{path}: the top level must be a JSON object, got list"


@case("coco")
def coco_without_annotations_list(tmp, given):
    argv, path = coco_folder(tmp)
    doc = json.loads(path.read_text())
    del doc["annotations"]
    path.write_text(json.dumps(doc))
    return argv, f"{path}: missing the top-level list 'annotations'"


@case("coco")
def coco_annotation_of_a_missing_image(tmp, given):
    doc = coco_doc()
    doc["annotations"][0]["image_id"] = 99
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "annotation id 1 (annotations[0]) refers to image id 99"


@case("coco")
def coco_unknown_category(tmp, given):
    doc = coco_doc()
    doc["annotations"][2]["category_id"] = 5
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "annotation id 3 (annotations[2]) has category_id 5, which is not in 'categories'"


@case("coco")
def coco_bbox_of_three_numbers(tmp, given):
    doc = coco_doc()
    doc["annotations"][0]["bbox"] = [1, 2, 3]
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "has bbox = [1, 2, 3], expected [x, y, width, height]"


@case("coco")
def coco_negative_width(tmp, given):
    doc = coco_doc()
    doc["annotations"][0]["bbox"] = [10, 2, -3, 4]
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "bbox [10, 2, -3, 4] has x2 < x1"


@case("coco")
def coco_box_outside_the_image(tmp, given):
    doc = coco_doc()
    doc["annotations"][2]["bbox"] = [45, 1, 10, 2]
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "lies outside the 50x20 image"


@case("coco")
def coco_iscrowd_two(tmp, given):
    doc = coco_doc()
    doc["annotations"][0]["iscrowd"] = 2
    argv, path = coco_folder(tmp, annotations=doc["annotations"])
    return argv, "has iscrowd = 2, expected 0 or 1"


@case("coco")
def coco_repeated_image_id(tmp, given):
    doc = coco_doc()
    doc["images"][1]["id"] = 10
    argv, path = coco_folder(tmp, images=doc["images"], annotations=[])
    return argv, "images[1] repeats image id 10"


@case("coco")
def coco_width_zero(tmp, given):
    argv, path = coco_folder(tmp)
    doc = json.loads(path.read_text())
    doc["images"][0]["width"] = 0
    path.write_text(json.dumps(doc))
    return argv, "image id 10 ('a.png') has size 0x30; both must be > 0"


@case("coco")
def coco_image_file_missing(tmp, given):
    argv, path = coco_folder(tmp)
    (path.parent / "b.png").unlink()
    return argv, f"image file {path.parent / 'b.png'} does not exist"


@case("coco")
def coco_classes_differ_from_the_model(tmp, given):
    argv, path = coco_folder(tmp)
    return evaluate(
        given.model_file, "--data", f"coco:{path}"
    ), "detects ['circle', 'square', 'triangle'], but --data coco:"


# --------------------------------------------------------------------------- images


@case("image")
def image_not_an_image(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: p.write_text("a text file, not a PNG"))
    return argv, f"cannot read image {tmp / 'voc' / 'JPEGImages' / name}"


@case("image")
def image_empty_file(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: p.write_bytes(b""))
    return argv, f"cannot read image {tmp / 'voc' / 'JPEGImages' / name}"


@case("image")
def image_jpeg_cut_short(tmp, given):
    def write(path):
        Image.new("RGB", (32, 24), (200, 10, 10)).save(tmp / "full.jpg", quality=95)
        data = (tmp / "full.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the header survives: found when decoded

    argv, name = voc_with_image(tmp, write)
    return argv, f"cannot read image {tmp / 'voc' / 'JPEGImages' / name}"


@case("image")
def image_decompression_bomb(tmp, given):
    argv, name = voc_with_image(
        tmp, lambda p: write_png16(p, np.zeros((1, 1)), size=(20000, 20000)), size=(20000, 20000)
    )
    return (
        argv,
        f"image {tmp / 'voc' / 'JPEGImages' / name} is refused as a possible decompression bomb",
    )


@case("image")
def image_sixteen_bit_of_another_size(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: write_png16(p, np.full((20, 30), 40000)))
    return argv, "a.png is 30x20 pixels but"


@case("image")
def image_thirty_two_bit_float(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: Image.new("F", (32, 24)).save(p.with_suffix(".tif")))
    xml = tmp / "voc" / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("a.png", "a.tif"))
    return argv, "a.tif has 32-bit float pixels (Pillow mode 'F')"


@case("image")
def image_thirty_two_bit_integer(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: Image.new("I", (32, 24)).save(p.with_suffix(".tif")))
    xml = tmp / "voc" / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("a.png", "a.tif"))
    return argv, "a.tif has 32-bit integer pixels"


@case("image")
def image_is_a_folder(tmp, given):
    argv, name = voc_with_image(tmp, lambda p: p.mkdir())
    return argv, f"image file {tmp / 'voc' / 'JPEGImages' / name} does not exist"


@case("image")
def detect_image_missing(tmp, given):
    return ["detect", tmp / "none.jpg", "--checkpoint", given.model_file, "--out", tmp / "d"], (
        f"image file {tmp / 'none.jpg'} does not exist"
    )


@case("image")
def detect_image_corrupt(tmp, given):
    (tmp / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return ["detect", tmp / "x.jpg", "--checkpoint", given.model_file, "--out", tmp / "d"], (
        f"cannot read image {tmp / 'x.jpg'}"
    )


@case("image")
def detect_two_images_of_one_name(tmp, given):
    write_image(tmp / "a.png", 8, 8)
    write_image(tmp / "b" / "a.png", 8, 8)
    return [
        "detect",
        tmp / "a.png",
        tmp / "b" / "a.png",
        "--checkpoint",
        given.model_file,
        "--out",
        tmp / "d",
    ], ("would both be written as a.png")


@case("image")
def detect_out_is_a_file(tmp, given):
    write_image(tmp / "a.png", 8, 8)
    (tmp / "d").write_text("x")
    return ["detect", tmp / "a.png", "--checkpoint", given.model_file, "--out", tmp / "d"], (
        f"--out {tmp / 'd'} is a file"
    )


# --------------------------------------------------------------------------- model files


@case("model-file")
def model_file_missing(tmp, given):
    return evaluate(tmp / "none.pt"), f"no checkpoint at {tmp / 'none.pt'}"


@case("model-file")
def model_file_is_a_run_folder(tmp, given):
    return evaluate(given.run), f"{given.run} is a folder: give the model file in it"


@case("model-file")
def model_file_is_an_empty_folder(tmp, given):
    return evaluate(tmp), f"{tmp} is a folder, not a checkpoint file"


@case("model-file")
def model_file_garbage(tmp, given):
    (tmp / "m.pt").write_bytes(b"not a torch file at all")
    return evaluate(tmp / "m.pt"), f"cannot read checkpoint {tmp / 'm.pt'}"


@case("model-file")
def model_file_cut_in_half(tmp, given):
    data = given.model_file.read_bytes()
    (tmp / "m.pt").write_bytes(data[: len(data) // 2])
    return evaluate(tmp / "m.pt"), f"cannot read checkpoint {tmp / 'm.pt'}"


class Exploit:
    """Pickles as a call of ``print``: what a planted file would run on a plain ``torch.load``."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


@case("model-file")
def model_file_with_pickled_code(tmp, given):
    torch.save({"format": "tutorial_det.model/1", "spec": Exploit()}, tmp / "m.pt")
    return evaluate(tmp / "m.pt"), "weights-only loading refuses"


@case("model-file")
def training_checkpoint_instead(tmp, given):
    return evaluate(given.run / CHECKPOINT_NAME), "is a training checkpoint of fit"


@case("model-file")
def some_other_torch_file(tmp, given):
    torch.save({"weights": torch.zeros(3)}, tmp / "m.pt")
    return evaluate(tmp / "m.pt"), f"{tmp / 'm.pt'} is not a tutorial_det model file"


@case("model-file")
def model_file_without_spec(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s.pop("spec"))
    return evaluate(path), f"{path} is a damaged model file: it has no 'spec' dict"


@case("model-file")
def model_file_without_weights(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s.pop("state_dict"))
    return evaluate(path), f"{path} is a damaged model file: it has no 'state_dict' dict"


@case("model-file")
def model_file_classes_not_a_list(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s["spec"].update(classes="circle"))
    return evaluate(path), "the spec's 'classes' must be a list"


@case("model-file")
def model_file_of_an_unregistered_model(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s["spec"].update(name="yolo"))
    return evaluate(path), "holds a 'yolo' model, which is not registered here"


@case("model-file")
def model_file_with_an_unknown_option(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s["spec"].update(options={"no_such": 1}))
    return evaluate(path), "ssd has no option 'no_such'"


@case("model-file")
def model_file_weights_of_other_shapes(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s["spec"].update(classes=["background", "a"]))
    return evaluate(path), "do not fit the SSD the registry builds"


@case("model-file")
def model_file_with_a_bad_resize(tmp, given):
    path = edited_model_file(given, tmp, lambda s: s["spec"].update(resize={"size": 0}))
    return evaluate(path), "the spec's 'resize' is not a size and a mode"


@case("model-file")
def model_classes_differ_from_the_data(tmp, given):
    return evaluate(given.model_file, "--data", "plates"), (
        "detects ['circle', 'square', 'triangle'], but --data plates has classes ['plate']"
    )


# --------------------------------------------------------------------------- run folders


@case("run-folder")
def resume_without_a_checkpoint(tmp, given):
    return resume(tmp), f"--resume: no checkpoint {tmp / 'run' / CHECKPOINT_NAME} to resume from"


@case("run-folder")
def train_again_into_a_run_folder(tmp, given):
    copy_run(given, tmp)
    return resume(tmp)[:-1], "already holds a training run (last.pt): pass --resume"


@case("run-folder")
def resume_without_run_json(tmp, given):
    (copy_run(given, tmp) / "run.json").unlink()
    return resume(tmp), "has a checkpoint but no run.json"


@case("run-folder")
def resume_with_an_empty_run_json(tmp, given):
    (copy_run(given, tmp) / "run.json").write_text("{}")
    return resume(tmp), "run.json lacks model, data, epochs, seed, batch_size, train_size"


@case("run-folder")
def resume_with_a_truncated_run_json(tmp, given):
    path = copy_run(given, tmp) / "run.json"
    path.write_text(path.read_text()[:40])
    return resume(tmp), f"--resume: {path} is not readable JSON at line"


@case("run-folder")
def resume_with_run_json_not_utf8(tmp, given):
    path = copy_run(given, tmp) / "run.json"
    path.write_bytes(b"\xff\xfe\x00")
    return resume(tmp), f"--resume: {path} is not readable JSON"


@case("run-folder")
def resume_with_run_json_a_list(tmp, given):
    path = copy_run(given, tmp) / "run.json"
    path.write_text("[1, 2]")
    return resume(tmp), f"{path} lacks model"


@case("run-folder")
def resume_another_model(tmp, given):
    copy_run(given, tmp)
    argv = resume(tmp)
    argv[argv.index("ssd")] = "faster_rcnn"
    return argv, "is of model 'ssd', not 'faster_rcnn'"


@case("run-folder")
def resume_with_other_settings(tmp, given):
    copy_run(given, tmp)
    return resume(tmp, "--lr", "0.5"), "started with other settings (lr 0.001 -> 0.5)"


@case("run-folder")
def resume_with_other_data(tmp, given):
    copy_run(given, tmp)
    argv = resume(tmp)
    argv[argv.index("shapes")] = "plates"
    return argv, "data 'shapes' -> 'plates'"


@case("run-folder")
def last_pt_of_another_model(tmp, given):
    run = copy_run(given, tmp)
    state = load_checkpoint(run / CHECKPOINT_NAME)
    state["model"] = build_model("faster_rcnn", 4).state_dict()
    torch.save(state, run / CHECKPOINT_NAME)
    return resume(tmp), f"the weights in {run / CHECKPOINT_NAME} do not fit the SSD"


@case("run-folder")
def last_pt_truncated(tmp, given):
    path = copy_run(given, tmp) / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:1000])
    return resume(tmp), f"cannot read checkpoint {path}"


@case("run-folder")
def last_pt_not_a_checkpoint(tmp, given):
    path = copy_run(given, tmp) / CHECKPOINT_NAME
    torch.save({"weights": torch.zeros(2)}, path)
    return resume(tmp), f"--resume: {path} is not a checkpoint written by `tutorial-det train`"


@case("run-folder")
def init_from_missing(tmp, given):
    return train_shapes(
        tmp, "--init-from", tmp / "none.pt"
    ), f"--init-from {tmp / 'none.pt'}: no checkpoint at"


@case("run-folder")
def init_from_garbage(tmp, given):
    (tmp / "w.pt").write_text("weights")
    return train_shapes(
        tmp, "--init-from", tmp / "w.pt"
    ), f"--init-from {tmp / 'w.pt'}: cannot read checkpoint"


@case("run-folder")
def init_from_not_tensors(tmp, given):
    torch.save({"a": 1}, tmp / "w.pt")
    return train_shapes(tmp, "--init-from", tmp / "w.pt"), "--init-from"


# --------------------------------------------------------------------------- real processes


@case("process", in_subprocess=True)
def process_with_an_unknown_option(tmp, given):
    return train_shapes(tmp, "--option", "no_such=3"), "ssd has no option 'no_such'"


@case("process", in_subprocess=True)
def process_reading_a_truncated_run_json(tmp, given):
    path = copy_run(given, tmp) / "run.json"
    path.write_text(path.read_text()[:10])
    return resume(tmp), "is not readable JSON"


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def given(tmp_path_factory) -> Given:
    root = tmp_path_factory.mktemp("given")
    assert (
        main(
            [
                str(a)
                for a in [
                    "train",
                    *TINY,
                    "--epochs",
                    "1",
                    "--max-steps",
                    "1",
                    "--out",
                    root / "run",
                ]
            ]
        )
        == 0
    )
    model_file = root / "ssd.pt"
    save_model_file(
        model_file, ModelSpec("ssd", SHAPE_CLASSES).build(), ModelSpec("ssd", SHAPE_CLASSES)
    )
    return Given(root / "run", model_file)


def test_the_zoo_is_large_and_covers_every_category():
    counts = Counter(c.category for c in CASES)
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert set(counts) == {
        "argument",
        "voc",
        "coco",
        "image",
        "model-file",
        "run-folder",
        "process",
    }
    assert min(n for category, n in counts.items() if category != "process") >= 10, counts


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_ends_with_one_error_line(bad, tmp_path, capsys, given, monkeypatch):
    argv, fragment, *env = bad.make(tmp_path, given)
    for name, value in (env[0] if env else {}).items():
        monkeypatch.setenv(name, value)
    argv = [str(a) for a in argv]
    if bad.in_subprocess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "tutorial_det", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        status, err = done.returncode, done.stderr
    else:
        status = main(argv)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and "error: " in lines[0], err
    assert lines[0].startswith("tutorial-det"), lines[0]
    assert fragment in lines[0], lines[0]
    if "not one of the 20 classes" in lines[0]:
        assert "--classes a,b,c names the folder's classes" in lines[0]
