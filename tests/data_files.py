"""Files for the data tests, written at test time: images (including 16-bit PNGs and headers
that lie), Pascal VOC folders and COCO documents."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_image(path: Path, width: int, height: int, seed: int = 0) -> torch.Tensor:
    """Save a random RGB image (PNG content whatever the suffix says, so pixels survive exactly)
    and return it as [3, H, W] uint8."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.numpy()).save(path, format="PNG")
    return pixels.permute(2, 0, 1)


def voc_xml(filename: str, width: int, height: int, objects) -> str:
    """A VOC annotation; ``objects`` holds (name, (xmin, ymin, xmax, ymax), difficult)."""
    parts = [
        f"<annotation><folder>VOC</folder><filename>{filename}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for name, (xmin, ymin, xmax, ymax), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def write_voc(root: Path, items: dict[str, tuple[int, int, list]]) -> dict[str, torch.Tensor]:
    """A VOC folder with one image + XML per entry ``id -> (width, height, objects)``."""
    pixels = {}
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for seed, (image_id, (width, height, objects)) in enumerate(items.items()):
        pixels[image_id] = write_image(root / "JPEGImages" / f"{image_id}.jpg", width, height, seed)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            voc_xml(f"{image_id}.jpg", width, height, objects)
        )
    return pixels


def coco_doc(**changes) -> dict:
    """A small valid COCO document (two images, sparse category ids 3 and 7); ``changes``
    replaces top-level entries."""
    doc = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 20, "file_name": "b.png", "width": 50, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
            {"id": 3, "image_id": 20, "category_id": 7, "bbox": [5.5, 1.5, 4, 2]},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    doc.update(changes)
    return doc


def write_coco(root: Path, doc: dict, images: bool = True) -> Path:
    if images:
        for entry in doc["images"]:
            write_image(root / entry["file_name"], entry["width"], entry["height"])
    path = root / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def write_png16(
    path: Path, values: np.ndarray, colour: str = "grey", size: tuple[int, int] | None = None
) -> Path:
    """A PNG with 16 bits per channel (Pillow writes only 16-bit grey): ``values`` ``[H, W]``
    (grey) or ``[H, W, 3]`` (``colour="rgb"``) of 0..65535. ``size = (width, height)`` writes
    another size into the header than the pixels have (a lying header, e.g. a decompression
    bomb's: the pixel data are then not valid, but a header check never reads them)."""
    values = np.asarray(values, dtype=np.uint16)
    height, width = values.shape[:2]
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    width, height = size or (width, height)
    header = struct.pack(">IIBBBBB", width, height, 16, {"grey": 0, "rgb": 2}[colour], 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path
