"""Data for the lessons: synthetic shapes and plates, VOC / COCO readers and writers,
augmentation, and the threaded sample pool. Every item is ``(image [3, H, W] float32 in [0, 1], target dict)`` with
``target["boxes"]`` ``[N, 4]`` float32 xyxy pixels and ``target["labels"]`` ``[N]`` int64
(0 is background, so object classes start at 1)."""

from tutorial_det.data.collate import detection_collate
from tutorial_det.data.plates import PlatesDataset
from tutorial_det.data.pool import SamplePool, SamplePoolError
from tutorial_det.data.readers import (
    VOC_CLASSES,
    CocoAnnotations,
    CocoDataset,
    VOCDataset,
    read_coco_json,
    read_image,
)
from tutorial_det.data.shapes import CLASSES as SHAPE_CLASSES
from tutorial_det.data.shapes import ShapesDataset
from tutorial_det.data.transforms import (
    DetectionPipeline,
    RandomHorizontalFlip,
    RandomScaleCrop,
    train_transforms,
)
from tutorial_det.data.writers import write_coco_folder, write_voc_folder

__all__ = [
    "VOC_CLASSES",
    "CocoAnnotations",
    "CocoDataset",
    "VOCDataset",
    "read_coco_json",
    "read_image",
    "SHAPE_CLASSES",
    "DetectionPipeline",
    "PlatesDataset",
    "RandomHorizontalFlip",
    "RandomScaleCrop",
    "SamplePool",
    "SamplePoolError",
    "ShapesDataset",
    "detection_collate",
    "train_transforms",
    "write_coco_folder",
    "write_voc_folder",
]
