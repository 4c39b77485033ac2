"""Screenshots of two explorers in JupyterLab, for the README: images/explorer_anchors.png (lesson
02's anchor explorer after its stride is set to 32 in the browser) and images/explorer_iou.png
(lesson 03's IoU explorer after box B is moved to the left).

They are taken by tests/test_browser.py, which drives the explorers in headless Chromium; this
script runs that test with ``EXPLORER_SCREENSHOTS`` set to a temporary folder and keeps a compact
copy (empty right margin trimmed, 256-colour palette) of two of its shots.

Run from the repository root: ``python images/make_explorer_shots.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
#: Shot taken by the test -> file kept in images/.
SHOTS = {
    "explorer_anchors_after1.png": "explorer_anchors.png",
    "explorer_iou_after1.png": "explorer_iou.png",
}
MARGIN = 12


def compact(source: Path, target: Path) -> None:
    image = Image.open(source).convert("RGB")
    blank = Image.new("RGB", image.size, image.getpixel((image.width - 1, 0)))
    box = ImageChops.difference(image, blank).getbbox()
    if box is not None:
        image = image.crop((0, 0, min(image.width, box[2] + MARGIN), image.height))
    image.quantize(256).save(target, optimize=True)
    print(
        f"{target.relative_to(ROOT)}: {image.width} x {image.height}, {target.stat().st_size} bytes"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, EXPLORER_SCREENSHOTS=folder)
        test = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        subprocess.run([*test, "tests/test_browser.py"], cwd=ROOT, env=env, check=True)
        for shot, name in SHOTS.items():
            path = Path(folder) / shot
            if not path.exists():
                sys.exit(f"{shot} was not taken: was the browser test skipped?")
            compact(path, ROOT / "images" / name)


if __name__ == "__main__":
    main()
