"""Write detection items to disk as a Pascal VOC folder or a COCO folder: the layouts that
:class:`~tutorial_det.data.VOCDataset` and :class:`~tutorial_det.data.CocoDataset` read and
``tutorial-det --data voc:DIR / coco:DIR`` takes. Lesson 11 (your own data) builds its folders
with them; they also convert any data set of ``(image, target)`` items.

Items are ``(image [3, H, W] float in [0, 1], {"boxes": [N, 4] xyxy pixels, "labels": [N] int64
1..C, optionally "difficult": [N] bool})``; images are written as PNG (lossless, whatever VOC's
folder name says). The layouts::

    VOC                                   COCO
    root/Annotations/000000.xml           root/annotations.json
    root/JPEGImages/000000.png            root/images/000000.png

VOC stores 1-based, inclusive pixel indices, so a box ``[x1, y1, x2, y2]`` is written as
``xmin = round(x1) + 1, ymin = round(y1) + 1, xmax = round(x2), ymax = round(y2)`` (whole pixels);
COCO stores ``bbox = [x1, y1, x2 - x1, y2 - y1]`` as floats.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import save_image


def _items(items: Iterable[tuple[Tensor, dict]], classes: Sequence[str]):
    """``(index, image, boxes [N, 4], labels [N], difficult [N])`` for each item, checked."""
    for i, (image, target) in enumerate(items):
        if not (isinstance(image, Tensor) and image.ndim == 3 and image.shape[0] == 3):
            raise ValueError(f"item {i}: the image must be a [3, H, W] tensor")
        boxes = target["boxes"].as_subclass(Tensor).detach().cpu().reshape(-1, 4)
        labels = target["labels"].as_subclass(Tensor).detach().cpu().reshape(-1)
        if len(labels) and not 1 <= int(labels.min()) <= int(labels.max()) <= len(classes):
            raise ValueError(
                f"item {i}: labels {labels.tolist()} are not all in 1..{len(classes)} "
                f"(the classes {list(classes)})"
            )
        difficult = target.get("difficult", torch.zeros(len(labels), dtype=torch.bool))
        yield i, image.detach().cpu().as_subclass(Tensor), boxes, labels, difficult


def write_voc_folder(
    root: str | os.PathLike, items: Iterable[tuple[Tensor, dict]], classes: Sequence[str]
) -> list[Path]:
    """Write ``items`` as a Pascal VOC folder under ``root`` (see the module docstring): image
    ``i`` becomes ``JPEGImages/{i:06d}.png`` and ``Annotations/{i:06d}.xml``; ``classes[k - 1]``
    names label ``k``. Returns the annotation files written."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    written = []
    for i, image, boxes, labels, difficult in _items(items, classes):
        name = f"{i:06d}"
        save_image(image, root / "JPEGImages" / f"{name}.png")
        annotation = ET.Element("annotation")
        ET.SubElement(annotation, "filename").text = f"{name}.png"
        size = ET.SubElement(annotation, "size")
        for tag, value in zip(
            ("width", "height", "depth"), (image.shape[2], image.shape[1], 3), strict=True
        ):
            ET.SubElement(size, tag).text = str(value)
        for box, label, hard in zip(
            boxes.tolist(), labels.tolist(), difficult.tolist(), strict=True
        ):
            obj = ET.SubElement(annotation, "object")
            ET.SubElement(obj, "name").text = classes[label - 1]
            ET.SubElement(obj, "difficult").text = str(int(hard))
            bndbox = ET.SubElement(obj, "bndbox")
            x1, y1, x2, y2 = (round(v) for v in box)
            for tag, value in zip(
                ("xmin", "ymin", "xmax", "ymax"), (x1 + 1, y1 + 1, x2, y2), strict=True
            ):
                ET.SubElement(bndbox, tag).text = str(value)
        ET.indent(annotation)
        path = root / "Annotations" / f"{name}.xml"
        ET.ElementTree(annotation).write(path, encoding="unicode")
        written.append(path)
    return written


def write_coco_folder(
    root: str | os.PathLike, items: Iterable[tuple[Tensor, dict]], classes: Sequence[str]
) -> Path:
    """Write ``items`` as a COCO folder under ``root`` (see the module docstring): image ``i``
    becomes ``images/{i:06d}.png`` with image id ``i + 1``; ``classes[k - 1]`` names category
    ``k``. Returns the path of ``annotations.json``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, image, boxes, labels, _ in _items(items, classes):
        file_name = f"images/{i:06d}.png"
        save_image(image, root / file_name)
        images.append(
            {"id": i + 1, "file_name": file_name, "width": image.shape[2], "height": image.shape[1]}
        )
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k, "name": name} for k, name in enumerate(classes, start=1)]
    path = root / "annotations.json"
    document = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
