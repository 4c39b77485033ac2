"""The real sample photos in the repository's ``images/`` folder, with their hand-drawn boxes.

Six photos that ship with matplotlib and scikit-image (people, a cat, a coffee cup, a rocket launch,
a motorcycle; see ``images/README.md`` for their sources and licences), annotated in COCO format in
``images/annotations.json``. They are read with :class:`tutorial_det.data.readers.CocoDataset`,
so a sample comes out exactly like an item of any COCO data set::

    image, target = load_sample("coffee")
    image            # tv_tensors.Image [3, H, W] float32 in [0, 1]
    target["boxes"]  # tv_tensors.BoundingBoxes [N, 4] float32 xyxy pixels
    target["labels"] # [N] int64, names in sample_categories()

    photo, target = load_sample("astronaut", size=800)  # resized to 800 x 800, boxes scaled
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from tutorial_det.data.readers import CocoDataset, Transforms

ANNOTATION_FILE = "annotations.json"


def images_dir() -> Path:
    """The repository's ``images/`` folder (next to the ``tutorial_det`` package).

    Raises:
        FileNotFoundError: the folder or its ``annotations.json`` is missing, which happens when
            the package is installed without the repository checkout.
    """
    folder = Path(__file__).resolve().parent.parent / "images"
    if not (folder / ANNOTATION_FILE).is_file():
        raise FileNotFoundError(
            f"the sample photos are not at {folder}: they live in the images/ folder of the "
            "tutorial_det repository, so use a checkout of the repository (installed with "
            "`pip install -e .`) rather than an installed copy of the package alone"
        )
    return folder


def sample_dataset(transforms: Transforms | None = None) -> CocoDataset:
    """All sample photos as a :class:`CocoDataset` (items in ``sample_names()`` order)."""
    folder = images_dir()
    return CocoDataset(folder, folder / ANNOTATION_FILE, transforms=transforms)


@lru_cache(maxsize=1)
def _samples() -> CocoDataset:
    return sample_dataset()


def sample_names() -> list[str]:
    """The photos' names (file names without extension), in annotation-file order."""
    return [path.stem for path in _samples().image_paths]


def sample_categories() -> dict[int, str]:
    """Label (1..C) -> category name for the sample annotations."""
    return dict(_samples().label_names)


def load_sample(name: str, size: int | None = None) -> tuple[tv_tensors.Image, dict]:
    """One sample photo and its boxes.

    Args:
        name: one of :func:`sample_names`.
        size: when given, the photo is resized to ``size x size`` (bilinear, antialiased, the
            aspect ratio not kept) and its boxes are scaled with it: x by ``size / W``, y by
            ``size / H``. The lessons on Faster R-CNN use the astronaut at 800 x 800.

    Returns:
        ``(image, target)``: ``image`` ``[3, H, W]`` float32 in [0, 1]; ``target`` with
        ``"boxes"`` ``[N, 4]`` float32 xyxy pixels, ``"labels"`` ``[N]`` int64 (see
        :func:`sample_categories`), ``"image_id"`` int and ``"iscrowd"`` ``[N]`` bool.

    Raises:
        ValueError: ``name`` is not one of :func:`sample_names`, or ``size`` is not a positive
            int.
    """
    names = sample_names()
    if name not in names:
        raise ValueError(f"no sample photo named {name!r}; the samples are {names}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int (pixels per side), got {size!r}")
    image, target = _samples()[names.index(name)]
    if size is None:
        return image, target
    resized = {**target, "boxes": TF.resize(target["boxes"], [size, size])}
    return TF.resize(image, [size, size], antialias=True), resized
