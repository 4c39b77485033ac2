"""Pascal VOC and COCO readers: round trips, agreement with pycocotools, v2 transforms, and a clear
error (naming file and object) for every kind of bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from data_files import coco_doc, voc_xml, write_coco, write_image, write_png16, write_voc
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pycocotools.coco import COCO
from torchvision import tv_tensors
from torchvision.transforms import v2

from tutorial_det.data.readers import (
    VOC_CLASSES,
    CocoDataset,
    VOCDataset,
    check_box,
    image_size,
    read_coco_json,
    read_image,
)

IMAGES = Path(__file__).resolve().parent.parent / "images"
CLASSES = ("cat", "dog", "person")


# --------------------------------------------------------------------------- helpers


def bad_annotation(**fields) -> list[dict]:
    """The valid annotations plus a fourth (id 9, on image 10) with ``fields`` changed."""
    extra = {"id": 9, "image_id": 10, "category_id": 3, "bbox": [1, 1, 2, 2]}
    extra.update(fields)
    return coco_doc()["annotations"] + [extra]


# --------------------------------------------------------------------------- COCO


def test_coco_reader_agrees_with_pycocotools_on_the_sample_photos():
    ds = CocoDataset(IMAGES, IMAGES / "annotations.json")
    coco = COCO(str(IMAGES / "annotations.json"))
    cat_ids = sorted(coco.getCatIds())
    assert ds.category_to_label == {c: i + 1 for i, c in enumerate(cat_ids)}
    assert ds.label_to_category == {i + 1: c for i, c in enumerate(cat_ids)}
    assert ds.label_names == {i + 1: coco.loadCats(c)[0]["name"] for i, c in enumerate(cat_ids)}
    assert len(ds) == len(coco.getImgIds())
    for image, target in ds:
        info = coco.loadImgs(target["image_id"])[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        assert image.shape == (3, info["height"], info["width"])
        expected = torch.tensor(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        ).reshape(-1, 4)
        torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), expected.float())
        assert target["labels"].tolist() == [ds.category_to_label[a["category_id"]] for a in anns]
        assert target["iscrowd"].tolist() == [bool(a["iscrowd"]) for a in anns]
        assert target["boxes"].canvas_size == (info["height"], info["width"])


def test_coco_sparse_ids_map_to_contiguous_labels(tmp_path):
    ds = CocoDataset(tmp_path, write_coco(tmp_path, coco_doc()))
    assert ds.category_to_label == {3: 1, 7: 2}
    assert ds.label_to_category == {1: 3, 2: 7}
    assert ds.label_names == {1: "cat", 2: "dog"}
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert target["boxes"].tolist() == [[2, 3, 12, 8], [0, 0, 40, 30]]
    assert target["labels"].tolist() == [2, 1] and target["labels"].dtype == torch.int64
    assert target["iscrowd"].tolist() == [False, True]
    assert target["image_id"] == 10
    _, second = ds[1]
    assert second["boxes"].tolist() == [[5.5, 1.5, 9.5, 3.5]]
    assert second["iscrowd"].tolist() == [False]  # iscrowd defaults to 0


def test_coco_image_without_annotations_has_zero_boxes(tmp_path):
    doc = coco_doc(annotations=[])
    ds = CocoDataset(tmp_path, write_coco(tmp_path, doc))
    _, target = ds[1]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["iscrowd"].shape == (0,)


def test_image_pixels_are_read_exactly(tmp_path):
    pixels = write_image(tmp_path / "x.png", 7, 5, seed=3)
    image = read_image(tmp_path / "x.png")
    assert image.shape == (3, 5, 7)
    torch.testing.assert_close(image.as_subclass(torch.Tensor), pixels.float() / 255)


def test_grey_and_rgba_images_become_rgb(tmp_path):
    Image.new("L", (4, 3), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (4, 3), (255, 0, 0, 10)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "grey.png").shape == (3, 3, 4)
    assert read_image(tmp_path / "rgba.png")[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


SIXTEEN_BIT = np.array([0, 256, 4096, 32768, 65535])


def test_sixteen_bit_grey_png_keeps_its_range(tmp_path):
    write_png16(tmp_path / "g16.png", SIXTEEN_BIT[None])
    image = read_image(tmp_path / "g16.png")
    assert image.shape == (3, 1, 5) and image.dtype == torch.float32
    expected = torch.tensor(SIXTEEN_BIT / 65535, dtype=torch.float32)
    for channel in image:  # grey: the same in R, G and B
        torch.testing.assert_close(channel[0], expected, rtol=0, atol=0)


def test_sixteen_bit_colour_png_arrives_as_its_high_byte(tmp_path):
    write_png16(tmp_path / "rgb16.png", np.stack([SIXTEEN_BIT] * 3, -1)[None], colour="rgb")
    image = read_image(tmp_path / "rgb16.png")
    # Pillow keeps the high byte: 0, 256, 4096, 32768, 65535 -> 0, 1, 16, 128, 255
    assert (image[0, 0] * 255).round().tolist() == [0, 1, 16, 128, 255]


@pytest.mark.parametrize(("mode", "kind"), [("I", "32-bit integer"), ("F", "32-bit float")])
def test_images_of_unstated_range_are_refused(tmp_path, mode, kind):
    Image.new(mode, (4, 3)).save(tmp_path / "deep.tif")
    with pytest.raises(ValueError, match=rf"deep\.tif has {kind} pixels .*8 or 16 bits"):
        read_image(tmp_path / "deep.tif")


def test_a_decompression_bomb_is_named_from_its_header(tmp_path):
    write_png16(tmp_path / "bomb.png", SIXTEEN_BIT[None], size=(20000, 20000))
    for read in (read_image, image_size):
        with pytest.raises(ValueError, match=r"bomb\.png is refused as a possible decompression"):
            read(tmp_path / "bomb.png")


def test_image_size_reads_the_header_only(tmp_path):
    write_image(tmp_path / "x.png", 7, 5)
    assert image_size(tmp_path / "x.png") == (7, 5)
    write_png16(tmp_path / "lying.png", SIXTEEN_BIT[None], size=(300, 200))
    assert image_size(tmp_path / "lying.png") == (300, 200)  # pixels never decoded
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_size(tmp_path / "none.png")


def test_check_images_counts_sizes_and_names_a_bad_header(tmp_path):
    write_voc(tmp_path, {"a": (8, 6, []), "b": (8, 6, []), "c": (5, 9, [])})
    ds = VOCDataset(tmp_path, CLASSES)
    checked = ds.check_images()
    assert checked.count == 3 and dict(checked.sizes) == {(8, 6): 2, (5, 9): 1}
    assert str(checked) == "3 images checked, 2 sizes from 5x9 to 8x6"  # by area
    write_image(tmp_path / "JPEGImages" / "b.jpg", 9, 6)
    with pytest.raises(
        ValueError, match=r"b\.jpg is 9x6 pixels but .*b\.xml gives its size as 8x6"
    ):
        ds.check_images()
    (tmp_path / "JPEGImages" / "b.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*b\.jpg"):
        ds.check_images()


# --------------------------------------------------------------------------- VOC


def test_voc_folder_round_trips(tmp_path):
    items = {
        "0001": (64, 48, [("dog", (1, 1, 64, 48), 0), ("cat", (10, 5, 20, 25), 1)]),
        "0002": (32, 40, [("person", (3, 4, 3, 4), 0)]),
        "0003": (16, 16, []),
    }
    pixels = write_voc(tmp_path, items)
    ds = VOCDataset(tmp_path, CLASSES)
    assert len(ds) == 3 and ds.ids == ["0001", "0002", "0003"]
    assert ds.class_to_label == {"cat": 1, "dog": 2, "person": 3}
    assert ds.label_names == {1: "cat", 2: "dog", 3: "person"}
    image, target = ds[0]
    torch.testing.assert_close(image.as_subclass(torch.Tensor), pixels["0001"].float() / 255)
    # 1-based inclusive VOC indices -> xyxy pixels: [xmin - 1, ymin - 1, xmax, ymax]
    assert target["boxes"].tolist() == [[0, 0, 64, 48], [9, 4, 20, 25]]
    assert target["boxes"].canvas_size == (48, 64)
    assert target["labels"].tolist() == [2, 1]
    assert target["difficult"].tolist() == [False, True]
    assert target["image_id"] == 0
    _, one_pixel = ds[1]
    assert one_pixel["boxes"].tolist() == [[2, 3, 3, 4]]  # xmin == xmax: one pixel wide
    _, empty = ds[2]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64
    assert empty["difficult"].shape == (0,)


def test_voc_image_set_selects_and_orders_ids(tmp_path):
    write_voc(tmp_path, {"a": (8, 8, []), "b": (9, 9, []), "c": (10, 10, [])})
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("c\na\n\n")
    ds = VOCDataset(tmp_path, CLASSES, image_set="val")
    assert ds.ids == ["c", "a"]
    assert [p.name for p in ds.image_paths] == ["c.jpg", "a.jpg"]


def test_voc_annotations_are_read_whatever_the_case_of_their_suffix(tmp_path):
    write_voc(tmp_path, {"a": (8, 8, []), "b": (9, 9, [CAT]), "c": (10, 10, [])})
    (tmp_path / "Annotations" / "b.xml").rename(tmp_path / "Annotations" / "b.XML")
    (tmp_path / "Annotations" / "notes.txt").write_text("not an annotation")
    ds = VOCDataset(tmp_path, CLASSES)
    assert ds.ids == ["a", "b", "c"]
    assert ds[1][1]["labels"].tolist() == [1]
    assert [p.name for p in ds.other_files] == ["notes.txt"]
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    assert VOCDataset(tmp_path, CLASSES, image_set="val").ids == ["b"]


def test_voc_classes_constant_has_the_twenty_devkit_classes():
    assert len(VOC_CLASSES) == 20 and len(set(VOC_CLASSES)) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"


# --------------------------------------------------------------------------- v2 transforms


def test_horizontal_flip_moves_boxes(tmp_path):
    write_voc(
        tmp_path, {"0001": (64, 48, [("dog", (1, 1, 10, 20), 0), ("cat", (31, 5, 64, 6), 0)])}
    )
    plain = VOCDataset(tmp_path, CLASSES)
    flipped = VOCDataset(tmp_path, CLASSES, transforms=v2.RandomHorizontalFlip(p=1.0))
    image, target = plain[0]
    image_f, target_f = flipped[0]
    torch.testing.assert_close(image_f, image.flip(-1))
    # x -> W - x, with x1 and x2 swapping roles
    assert target_f["boxes"].tolist() == [[54, 0, 64, 20], [0, 4, 34, 6]]
    assert target_f["labels"].tolist() == target["labels"].tolist()
    assert target_f["difficult"].tolist() == target["difficult"].tolist()


def test_resize_scales_boxes_of_the_sample_photos():
    ds = CocoDataset(IMAGES, IMAGES / "annotations.json")
    resized = CocoDataset(
        IMAGES, IMAGES / "annotations.json", transforms=v2.Resize((200, 300), antialias=True)
    )
    image, target = ds[2]  # coffee: 600 x 400
    image_r, target_r = resized[2]
    assert image_r.shape == (3, 200, 300)
    assert target_r["boxes"].canvas_size == (200, 300)
    scale = torch.tensor([300 / 600, 200 / 400, 300 / 600, 200 / 400])
    torch.testing.assert_close(
        target_r["boxes"].as_subclass(torch.Tensor),
        target["boxes"].as_subclass(torch.Tensor) * scale,
    )


# --------------------------------------------------------------------------- bad input: images


def test_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg at all")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.jpg"):
        read_image(tmp_path / "bad.jpg")


def test_truncated_image_names_the_file(tmp_path):
    Image.new("RGB", (200, 150), (10, 200, 30)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"(?i)cannot read image .*cut\.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")


def test_missing_image_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.png does not exist"):
        read_image(tmp_path / "nothing.png")


def test_corrupt_image_in_a_data_set_fails_when_read(tmp_path):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    (tmp_path / "JPEGImages" / "0001.jpg").write_bytes(b"\xff\xd8garbage")
    ds = VOCDataset(tmp_path, CLASSES)
    with pytest.raises(ValueError, match=r"cannot read image .*0001\.jpg"):
        ds[0]


def test_image_size_differing_from_the_annotation(tmp_path):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    write_image(tmp_path / "JPEGImages" / "0001.jpg", 9, 8)
    ds = VOCDataset(tmp_path, CLASSES)
    with pytest.raises(
        ValueError, match=r"0001\.jpg is 9x8 pixels but .*0001\.xml gives its size as 8x8"
    ):
        ds[0]


# --------------------------------------------------------------------------- bad input: VOC


CAT = ("cat", (1, 1, 5, 5), 0)


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (
            [CAT, ("dog", (30, 10, 65, 20), 0)],
            r"0001\.xml: object 1 \('dog'\): box xmin=30 ymin=10 xmax=65 ymax=20 .* lies outside "
            r"the 64x48 image",
        ),
        ([("cat", (0, 1, 5, 5), 0)], r"object 0 \('cat'\): box xmin=0 .* lies outside"),
        (
            [("cat", (20, 1, 10, 5), 0)],
            r"0001\.xml: object 0 \('cat'\): box xmin=20 ymin=1 xmax=10 ymax=5 has x2 < x1",
        ),
        ([CAT, ("zebra", (1, 1, 5, 5), 0)], r"0001\.xml: object 1 has class name 'zebra'"),
        ([("cat", (1, 1, 5, 5), 2)], r"object 0 \('cat'\) has <difficult>2</difficult>"),
    ],
    ids=["outside", "zero-based", "xmax-before-xmin", "unknown-class", "difficult-2"],
)
def test_voc_bad_object_names_file_and_object(tmp_path, objects, message):
    write_voc(tmp_path, {"0001": (64, 48, objects)})
    with pytest.raises(ValueError, match=message):
        VOCDataset(tmp_path, CLASSES)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (
            "<annotation><filename>0001.jpg</annotation>",
            r"0001\.xml: malformed XML at line 1, column \d+",
        ),
        (
            voc_xml("0001.jpg", 8, 8, [("cat", (1, 1, 5, 5), 0)]).replace("<ymax>5</ymax>", ""),
            r"0001\.xml: object 0 \('cat'\) has no <bndbox/ymax>",
        ),
        (
            voc_xml("0001.jpg", 8, 8, [("cat", ("one", 1, 5, 5), 0)]),
            r"0001\.xml: object 0 \('cat'\) has <bndbox/xmin> = 'one', expected a number",
        ),
        (
            "<annotation><filename>0001.jpg</filename></annotation>",
            r"0001\.xml: the annotation has no <size/width> element",
        ),
        ("<notes/>", r"0001\.xml: the root element is <notes>"),
    ],
    ids=["malformed", "missing-element", "not-a-number", "no-size", "wrong-root"],
)
def test_voc_bad_xml_names_file_and_element(tmp_path, xml, message):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    (tmp_path / "Annotations" / "0001.xml").write_text(xml)
    with pytest.raises(ValueError, match=message):
        VOCDataset(tmp_path, CLASSES)


def test_voc_missing_image_file(tmp_path):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    (tmp_path / "JPEGImages" / "0001.jpg").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"0001\.xml: image file .*0001\.jpg does not exist"
    ):
        VOCDataset(tmp_path, CLASSES)


def test_voc_missing_folders_and_lists(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no Annotations/ folder"):
        VOCDataset(tmp_path, CLASSES)
    write_voc(tmp_path, {"0001": (8, 8, [])})
    with pytest.raises(FileNotFoundError, match=r"image set list .*train\.txt does not exist"):
        VOCDataset(tmp_path, CLASSES, image_set="train")
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("0001\n0002\n")
    with pytest.raises(FileNotFoundError, match=r"annotation file .*0002\.xml does not exist"):
        VOCDataset(tmp_path, CLASSES, image_set="train")


def test_voc_bad_class_lists(tmp_path):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    with pytest.raises(ValueError, match="classes is empty"):
        VOCDataset(tmp_path, [])
    with pytest.raises(ValueError, match=r"classes\[2\] = 'cat' repeats"):
        VOCDataset(tmp_path, ["cat", "dog", "cat"])
    with pytest.raises(TypeError, match="sequence of class-name strings"):
        VOCDataset(tmp_path, "cat")


def test_transforms_must_be_callable(tmp_path):
    write_voc(tmp_path, {"0001": (8, 8, [])})
    with pytest.raises(TypeError, match="transforms must be callable"):
        VOCDataset(tmp_path, CLASSES, transforms="flip")


# --------------------------------------------------------------------------- bad input: COCO


def coco_error(tmp_path, doc):
    """Build a data set from ``doc`` (the annotation file is checked before any image is)."""
    return CocoDataset(tmp_path, write_coco(tmp_path, doc, images=False))


def test_coco_malformed_json(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [\n  {"id": 1,\n  "file_name": }\n]}')
    with pytest.raises(ValueError, match=r"annotations\.json: malformed JSON at line 3, column 16"):
        read_coco_json(path)


def test_coco_malformed_json_message_ends_with_what_is_wrong(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [{"file_name": "a.png')
    with pytest.raises(ValueError) as raised:
        read_coco_json(path)
    assert str(raised.value).endswith(
        "malformed JSON at line 1, column 27: Unterminated string starting"
    )


def test_coco_missing_file_and_lists(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"COCO annotation file .*none\.json does not exist"
    ):
        read_coco_json(tmp_path / "none.json")
    doc = coco_doc()
    del doc["annotations"]
    with pytest.raises(
        ValueError, match=r"annotations\.json: missing the top-level list 'annotations'"
    ):
        coco_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"category_id": 99},
            r"annotations\.json: annotation id 9 \(annotations\[3\]\) has category_id 99, which is "
            r"not in 'categories'",
        ),
        ({"image_id": 30}, r"annotation id 9 .* refers to image id 30"),
        (
            {"bbox": [10, 1, -4, 2]},
            re.escape("annotation id 9 (annotations[3]), object 2 of image 'a.png': bbox ")
            + r"\[10, 1, -4, 2\] has x2 < x1",
        ),
        (
            {"bbox": [35, 1, 6, 2]},
            r"annotation id 9 .*object 2 of image 'a\.png': bbox \[35, 1, 6, 2\] .*lies "
            r"outside the 40x30 image",
        ),
        ({"bbox": [1, 2, 3]}, r"annotation id 9 .* has bbox = \[1, 2, 3\]"),
        ({"iscrowd": 2}, r"annotation id 9 .* has iscrowd = 2, expected 0 or 1"),
        ({"id": 1}, r"annotation id 1 \(annotations\[3\]\) repeats"),
    ],
    ids=[
        "unknown-category",
        "unknown-image",
        "negative-width",
        "outside",
        "short-bbox",
        "iscrowd-2",
        "repeated-id",
    ],
)
def test_coco_bad_annotation_names_file_and_annotation(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        coco_error(tmp_path, coco_doc(annotations=bad_annotation(**fields)))


def test_coco_bad_images_and_categories(tmp_path):
    images = coco_doc()["images"] + [{"id": 30, "file_name": "c.png", "width": "wide", "height": 5}]
    with pytest.raises(ValueError, match=r"image id 30 has width = 'wide', expected int"):
        coco_error(tmp_path, coco_doc(images=images))
    categories = [{"id": 7, "name": "dog"}, {"id": 7, "name": "cat"}]
    with pytest.raises(ValueError, match=r"categories\[1\] repeats category id 7"):
        coco_error(tmp_path, coco_doc(categories=categories))
    with pytest.raises(ValueError, match=r"annotations\[0\] has no 'id' field"):
        coco_error(tmp_path, coco_doc(annotations=[{"image_id": 10}]))


def test_coco_missing_image_file(tmp_path):
    path = write_coco(tmp_path, coco_doc())
    (tmp_path / "b.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"annotations\.json: image file .*b\.png does not exist"
    ):
        CocoDataset(tmp_path, path)


# --------------------------------------------------------------------------- the box check


coord = st.floats(-20, 120, allow_nan=False)


@given(coord, coord, coord, coord)
def test_check_box_accepts_exactly_ordered_boxes_inside_the_image(x1, y1, x2, y2):
    width, height = 100, 80
    valid = 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    if valid:
        check_box([x1, y1, x2, y2], width, height, "f.xml: object 0", "box")
    else:
        with pytest.raises(ValueError, match=r"f\.xml: object 0: box "):
            check_box([x1, y1, x2, y2], width, height, "f.xml: object 0", "box")


def test_check_box_rejects_non_finite_values():
    with pytest.raises(ValueError, match="is not finite"):
        check_box([0, 0, float("nan"), 5], 10, 10, "x", "box")
