"""Readers for detection data on disk: a Pascal VOC folder and a COCO annotation file.

Both give items in the form every torchvision.transforms.v2 transform understands::

    image:  tv_tensors.Image, float32 in [0, 1], shape [3, H, W]
    target: {"boxes":    tv_tensors.BoundingBoxes [N, 4] float32, format XYXY, canvas_size (H, W),
             "labels":   [N] int64, classes numbered 1..C (0 is the background),
             "image_id": int,
             "difficult" (VOC) or "iscrowd" (COCO): [N] bool}

so ``transforms(image, target)`` (for example ``v2.RandomHorizontalFlip()``) moves the boxes with
the pixels. Boxes are xyxy in pixels with no "+1": COCO's ``[x, y, w, h]`` becomes
``[x, y, x + w, y + h]``; VOC stores 1-based, inclusive pixel indices, so ``xmin=1 ... xmax=W``
spans the whole width and becomes ``[xmin - 1, ymin - 1, xmax, ymax]``.

Every annotation is parsed and checked when the data set is built, and every image file must
exist; images are decoded when an item is read. :meth:`DetectionFiles.check_images` reads every
image's header up front (format, pixel count, size against the annotation) in a fraction of the
time a decode takes, so that a bad file stops a run before its first step rather than at step
4000. Nothing is skipped: a malformed file, an unknown class, a box outside its image or with
x2 < x1, a missing or unreadable image raises an error that names the file and the object.
Annotation files are found whatever the case of their suffix (``a.xml``, ``b.XML``).

Lesson 11 (your own data) builds a VOC and a COCO folder and reads them with these classes.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from tutorial_det.boxes import xywh_to_xyxy

#: The 20 Pascal VOC classes in the devkit's order (labels 1..20 when passed to VOCDataset).
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

Transforms = Callable[[tv_tensors.Image, dict], tuple[tv_tensors.Image, dict]]


#: Pillow modes of 16-bit grey images (PNG, TIFF): their values span 0..65535.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
#: Pillow modes whose value range the file does not say (32-bit integer or float pixels).
_UNSCALED = ("I", "F")


@contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` (which reads the header only) with its failures as a ValueError naming
    ``path``: not an image, a truncated header, a decompression bomb, pixels of unknown range."""
    try:
        with Image.open(path) as pil:
            if pil.mode in _UNSCALED:
                kind = "32-bit integer" if pil.mode == "I" else "32-bit float"
                raise ValueError(
                    f"image {path} has {kind} pixels (Pillow mode {pil.mode!r}), whose range the "
                    "file does not say: save it with 8 or 16 bits per channel"
                )
            yield pil
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"image {path} is refused as a possible decompression bomb ({error}): shrink the "
            "image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from None
    except Image.UnidentifiedImageError:
        raise ValueError(
            f"cannot read image {path}: not an image format Pillow knows, or its header is damaged"
        ) from None
    except (OSError, SyntaxError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error


def read_image(path) -> tv_tensors.Image:
    """Decode an image file as ``[3, H, W]`` float32 RGB in [0, 1] (grey, palette and RGBA images
    are converted to RGB; 16-bit grey images are scaled by 65535, 16-bit colour PNGs arrive as
    8-bit from Pillow; EXIF orientation is not applied, as annotations refer to stored pixels).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable image (corrupt, truncated, another format, a
            decompression bomb, 32-bit pixels); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    with _open_image(path) as pil:
        try:
            if pil.mode in _SIXTEEN_BIT:
                grey = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 65535)  # [H, W]
                return tv_tensors.Image(grey.expand(3, *grey.shape).clone())
            rgb = pil.convert("RGB")  # decodes every pixel, so a truncated file fails here
        except (OSError, ValueError, SyntaxError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error
    return tv_tensors.Image(F.to_dtype(F.pil_to_tensor(rgb), torch.float32, scale=True))


def image_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding the pixels.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_image`, for the faults a header shows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    with _open_image(path) as pil:
        return pil.size


@dataclass(frozen=True)
class ImagesChecked:
    """What :meth:`DetectionFiles.check_images` found: the number of images and how many have
    each ``(width, height)``."""

    count: int
    sizes: Counter

    def __str__(self) -> str:
        if not self.count:
            return "0 images"
        areas = sorted(self.sizes, key=lambda wh: (wh[0] * wh[1], wh))
        (w0, h0), (w1, h1) = areas[0], areas[-1]
        if len(self.sizes) == 1:
            return f"{self.count} images checked, all {w0}x{h0}"
        return f"{self.count} images checked, {len(self.sizes)} sizes from {w0}x{h0} to {w1}x{h1}"


@dataclass(frozen=True)
class ImageRecord:
    """One image's checked annotation.

    ``boxes`` is ``[N, 4]`` float32 xyxy pixels, ``labels`` ``[N]`` int64 (1..C), ``flags`` holds
    the per-object bool tensors (``difficult`` or ``iscrowd``); ``source`` is the annotation file.
    """

    image_path: Path
    image_id: int
    width: int
    height: int
    boxes: torch.Tensor
    labels: torch.Tensor
    source: Path
    flags: dict[str, torch.Tensor] = field(default_factory=dict)


def check_box(xyxy: Sequence[float], width: int, height: int, where: str, written: str) -> None:
    """Raise ValueError unless the pixel box ``xyxy`` is finite, has ``x1 <= x2`` and ``y1 <= y2``
    and lies inside a ``width x height`` image. ``where`` names the file and object, ``written``
    shows the box as the file writes it."""
    x1, y1, x2, y2 = xyxy
    if not all(math.isfinite(v) for v in xyxy):
        raise ValueError(f"{where}: {written} is not finite")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{where}: {written} has x2 < x1 or y2 < y1 (xyxy {[x1, y1, x2, y2]})")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(
            f"{where}: {written} (xyxy {[x1, y1, x2, y2]}) lies outside the {width}x{height} image"
        )


class DetectionFiles(Dataset):
    """Items ``(image, target)`` from checked :class:`ImageRecord` s (see the module docstring).

    Subclasses parse their annotation format into ``records``; this class reads the images,
    checks their size against the annotation, builds the target and applies ``transforms``.
    """

    def __init__(self, records: list[ImageRecord], transforms: Transforms | None = None):
        if transforms is not None and not callable(transforms):
            raise TypeError(
                f"transforms must be callable as transforms(image, target), got "
                f"{type(transforms).__name__}"
            )
        for record in records:
            if not record.image_path.is_file():
                raise FileNotFoundError(
                    f"{record.source}: image file {record.image_path} does not exist"
                )
        self.records = records
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.records)

    def check_images(self) -> ImagesChecked:
        """Read every image's header (not its pixels): each must be an image Pillow can open,
        not a decompression bomb, of the size its annotation gives. A fast pass (a few files per
        millisecond) that stops a bad file before training starts; pixels damaged after the
        header still fail only when the item is read.

        Raises:
            ValueError: the first bad image, naming it and its annotation file.
        """
        sizes: Counter = Counter()
        for record in self.records:
            width, height = image_size(record.image_path)
            if (width, height) != (record.width, record.height):
                raise _size_mismatch(record, width, height)
            sizes[width, height] += 1
        return ImagesChecked(len(self.records), sizes)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict]:
        record = self.records[index]
        image = read_image(record.image_path)
        height, width = image.shape[-2:]
        if (width, height) != (record.width, record.height):
            raise _size_mismatch(record, width, height)
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                record.boxes.clone(), format="XYXY", canvas_size=(height, width)
            ),
            "labels": record.labels.clone(),
            "image_id": record.image_id,
        }
        target.update({key: value.clone() for key, value in record.flags.items()})
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    @property
    def image_paths(self) -> list[Path]:
        """The image files, in item order."""
        return [record.image_path for record in self.records]


def _size_mismatch(record: ImageRecord, width: int, height: int) -> ValueError:
    return ValueError(
        f"{record.image_path} is {width}x{height} pixels but {record.source} gives its size as "
        f"{record.width}x{record.height}: correct the annotation (or the image)"
    )


# --------------------------------------------------------------------------- Pascal VOC


class VOCDataset(DetectionFiles):
    """A Pascal VOC folder: ``root/JPEGImages/<filename>`` and ``root/Annotations/<id>.xml``.

    Args:
        root: the folder holding ``JPEGImages/`` and ``Annotations/`` (e.g. ``VOCdevkit/VOC2012``).
        classes: the object class names; class ``classes[i]`` gets label ``i + 1`` (0 is the
            background). For real VOC data pass :data:`VOC_CLASSES`.
        image_set: read only the ids listed in ``root/ImageSets/Main/<image_set>.txt``; by default
            every ``Annotations/*.xml``, sorted by name.
        transforms: called as ``transforms(image, target)``, e.g. a torchvision.transforms.v2
            pipeline.

    Each target also holds ``"difficult"`` ``[N]`` bool (VOC's flag for objects that evaluation
    ignores: :func:`~tutorial_det.metrics.mean_average_precision` neither counts them nor
    penalises a detection on them); ``image_id`` is the item's index. ``ids[i]`` is the annotation
    file's stem. Annotation files are ``*.xml`` in any case (``a.XML`` too); ``other_files`` lists
    the files of ``Annotations/`` that are not, which are not read.

    Raises:
        FileNotFoundError: a folder, list, annotation or image file is missing.
        ValueError: ``classes`` is empty or repeats a name; an XML file is malformed or lacks a
            required element; an object has an unknown class name, a ``difficult`` other than 0 or
            1, or a box outside the image or with xmax < xmin. Messages name the file and object.
    """

    def __init__(
        self,
        root,
        classes: Sequence[str],
        image_set: str | None = None,
        transforms: Transforms | None = None,
    ):
        self.root = Path(root)
        self.classes = _check_classes(classes)
        self.class_to_label = {name: i + 1 for i, name in enumerate(self.classes)}
        self.label_names = {label: name for name, label in self.class_to_label.items()}
        annotations = self.root / "Annotations"
        for folder in (annotations, self.root / "JPEGImages"):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"VOC folder {self.root} has no {folder.name}/ folder (a VOC folder holds "
                    "Annotations/*.xml and JPEGImages/)"
                )
        files = sorted(p for p in annotations.iterdir() if p.is_file())
        self.other_files = [p for p in files if p.suffix.lower() != ".xml"]
        if image_set is None:
            xml_files = [p for p in files if p.suffix.lower() == ".xml"]
        else:
            by_stem = {p.stem: p for p in files if p.suffix.lower() == ".xml"}
            xml_files = [
                by_stem.get(i, annotations / f"{i}.xml")
                for i in _read_image_set(self.root, image_set)
            ]
        self.ids = [path.stem for path in xml_files]
        records = [
            parse_voc_xml(path, self.class_to_label, self.root / "JPEGImages", image_id=i)
            for i, path in enumerate(xml_files)
        ]
        super().__init__(records, transforms)


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = () if isinstance(classes, str) else tuple(classes)
    if isinstance(classes, str) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"classes must be a sequence of class-name strings, got {classes!r}")
    classes = names
    if not classes:
        raise ValueError("classes is empty: give the object class names (labels 1..C)")
    seen = set()
    for i, name in enumerate(classes):
        if name in seen:
            raise ValueError(f"classes[{i}] = {name!r} repeats an earlier class name")
        seen.add(name)
    return classes


def _read_image_set(root: Path, image_set: str) -> list[str]:
    path = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"image set list {path} does not exist")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def parse_voc_xml(
    path, class_to_label: dict[str, int], images_dir, image_id: int = 0
) -> ImageRecord:
    """Parse and check one VOC annotation file.

    Args:
        path: the ``.xml`` file.
        class_to_label: class name -> label (1..C).
        images_dir: where the ``<filename>`` image lives.
        image_id: stored as the record's ``image_id``.

    Returns:
        An :class:`ImageRecord` with xyxy pixel boxes (``[xmin - 1, ymin - 1, xmax, ymax]``) and
        ``flags["difficult"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise ValueError(
            f"{path}: malformed XML at line {line}, column {column}: {error}"
        ) from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: the root element is <{root.tag}>, expected <annotation>")
    filename = _text(root, "filename", path, "the annotation")
    width = _number(root, "size/width", path, "the annotation", integer=True)
    height = _number(root, "size/height", path, "the annotation", integer=True)
    if width <= 0 or height <= 0:
        raise ValueError(f"{path}: <size> gives a {width}x{height} image; both must be positive")
    boxes, labels, difficult = [], [], []
    for i, obj in enumerate(root.findall("object")):
        where = f"object {i}"
        name = _text(obj, "name", path, where)
        if name not in class_to_label:
            raise ValueError(
                f"{path}: {where} has class name {name!r}, which is not one of the "
                f"{len(class_to_label)} classes {sorted(class_to_label)}"
            )
        flag = obj.findtext("difficult", default="0").strip()
        if flag not in ("0", "1"):
            raise ValueError(
                f"{path}: {where} ({name!r}) has <difficult>{flag}</difficult>, expected 0 or 1"
            )
        corners = [
            _number(obj, f"bndbox/{k}", path, f"{where} ({name!r})")
            for k in ("xmin", "ymin", "xmax", "ymax")
        ]
        xmin, ymin, xmax, ymax = corners
        xyxy = [xmin - 1, ymin - 1, xmax, ymax]
        written = f"box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}"
        check_box(xyxy, width, height, f"{path}: {where} ({name!r})", written)
        boxes.append(xyxy)
        labels.append(class_to_label[name])
        difficult.append(flag == "1")
    return ImageRecord(
        image_path=Path(images_dir) / filename,
        image_id=image_id,
        width=width,
        height=height,
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        source=path,
        flags={"difficult": torch.tensor(difficult, dtype=torch.bool)},
    )


def _text(element: ET.Element, tag: str, path: Path, where: str) -> str:
    text = element.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{path}: {where} has no <{tag}> element (or it is empty)")
    return text.strip()


def _number(element: ET.Element, tag: str, path: Path, where: str, integer: bool = False):
    text = _text(element, tag, path, where)
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{path}: {where} has <{tag}> = {text!r}, expected {kind}") from None


# --------------------------------------------------------------------------- COCO


@dataclass(frozen=True)
class CocoAnnotations:
    """A checked COCO annotation file.

    ``images`` lists ``{"id", "file_name", "width", "height"}`` in file order; ``categories`` maps
    category id -> name in file order; ``annotations`` maps image id -> that image's annotation
    dicts (``id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, ``iscrowd``) in file order, with an
    entry (possibly empty) for every image.
    """

    path: Path
    images: list[dict]
    categories: dict[int, str]
    annotations: dict[int, list[dict]]


def read_coco_json(path) -> CocoAnnotations:
    """Read and check a COCO detection annotation file (``images``, ``annotations``,
    ``categories``; segmentation and keypoint fields are ignored).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: malformed JSON (with line and column), a missing list or field, a repeated
            id, an annotation whose image or category does not exist, an ``iscrowd`` other than
            0 or 1, or a box that is negative in size or outside its image; the message names the
            file and the annotation id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        what = error.msg.removesuffix(" at")  # "Unterminated string starting at": the place follows
        raise ValueError(
            f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {what}"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the top level must be a JSON object, got {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise ValueError(f"{path}: missing the top-level list {key!r}")

    images, sizes = [], {}
    for k, entry in enumerate(doc["images"]):
        where = f"{path}: images[{k}]"
        image_id = _field(entry, "id", int, where)
        if image_id in sizes:
            raise ValueError(f"{where} repeats image id {image_id}")
        where = f"{path}: image id {image_id}"
        file_name = _field(entry, "file_name", str, where)
        width = _field(entry, "width", int, where)
        height = _field(entry, "height", int, where)
        if width <= 0 or height <= 0:
            raise ValueError(f"{where} ({file_name!r}) has size {width}x{height}; both must be > 0")
        sizes[image_id] = (width, height, file_name)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})

    categories = {}
    for k, entry in enumerate(doc["categories"]):
        where = f"{path}: categories[{k}]"
        category_id = _field(entry, "id", int, where)
        if category_id in categories:
            raise ValueError(f"{where} repeats category id {category_id}")
        categories[category_id] = _field(entry, "name", str, where)

    annotations: dict[int, list[dict]] = {image_id: [] for image_id in sizes}
    seen = set()
    for k, entry in enumerate(doc["annotations"]):
        annotation_id = _field(entry, "id", int, f"{path}: annotations[{k}]")
        where = f"{path}: annotation id {annotation_id} (annotations[{k}])"
        if annotation_id in seen:
            raise ValueError(f"{where} repeats an earlier annotation id")
        seen.add(annotation_id)
        image_id = _field(entry, "image_id", int, where)
        if image_id not in sizes:
            raise ValueError(f"{where} refers to image id {image_id}, which is not in 'images'")
        category_id = _field(entry, "category_id", int, where)
        if category_id not in categories:
            raise ValueError(
                f"{where} has category_id {category_id}, which is not in 'categories' "
                f"(ids {sorted(categories)})"
            )
        iscrowd = entry.get("iscrowd", 0)
        if iscrowd not in (0, 1) or isinstance(iscrowd, bool | float):
            raise ValueError(f"{where} has iscrowd = {iscrowd!r}, expected 0 or 1")
        bbox = entry.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            raise ValueError(f"{where} has bbox = {bbox!r}, expected [x, y, width, height]")
        width, height, file_name = sizes[image_id]
        x, y, w, h = bbox
        object_index = len(annotations[image_id])
        check_box(
            [x, y, x + w, y + h],
            width,
            height,
            f"{where}, object {object_index} of image {file_name!r}",
            f"bbox {bbox}",
        )
        annotations[image_id].append(
            {"id": annotation_id, "category_id": category_id, "bbox": bbox, "iscrowd": iscrowd}
        )
    return CocoAnnotations(path, images, categories, annotations)


def _field(entry, key: str, kind: type, where: str):
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(entry).__name__}")
    if key not in entry:
        raise ValueError(f"{where} has no {key!r} field")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where} has {key} = {value!r}, expected {kind.__name__}")
    return value


class CocoDataset(DetectionFiles):
    """Images in a folder plus a COCO annotation file.

    Args:
        root: the folder the ``file_name`` entries are relative to.
        annotation_file: the COCO JSON (``images``, ``annotations``, ``categories``).
        transforms: called as ``transforms(image, target)``, e.g. a torchvision.transforms.v2
            pipeline.

    Category ids (which may be sparse, like COCO's 1..90) map to contiguous labels 1..C in
    ascending id order: ``category_to_label`` and ``label_to_category`` keep the mapping both
    ways, ``label_names`` maps label -> category name. Items follow the file's image order; each
    target holds ``"image_id"`` (the file's image id) and ``"iscrowd"`` ``[N]`` bool. Images with
    no annotation are kept, with zero boxes. ``coco`` is the parsed :class:`CocoAnnotations`.
    """

    def __init__(self, root, annotation_file, transforms: Transforms | None = None):
        self.root = Path(root)
        self.coco = read_coco_json(annotation_file)
        ids = sorted(self.coco.categories)
        self.category_to_label = {category_id: i + 1 for i, category_id in enumerate(ids)}
        self.label_to_category = {label: c for c, label in self.category_to_label.items()}
        self.label_names = {
            label: self.coco.categories[c] for label, c in self.label_to_category.items()
        }
        records = []
        for image in self.coco.images:
            objects = self.coco.annotations[image["id"]]
            boxes = torch.tensor([a["bbox"] for a in objects], dtype=torch.float32).reshape(-1, 4)
            records.append(
                ImageRecord(
                    image_path=self.root / image["file_name"],
                    image_id=image["id"],
                    width=image["width"],
                    height=image["height"],
                    boxes=xywh_to_xyxy(boxes),
                    labels=torch.tensor(
                        [self.category_to_label[a["category_id"]] for a in objects],
                        dtype=torch.int64,
                    ),
                    source=self.coco.path,
                    flags={
                        "iscrowd": torch.tensor(
                            [a["iscrowd"] == 1 for a in objects], dtype=torch.bool
                        )
                    },
                )
            )
        super().__init__(records, transforms)
