"""Draw the first items of the synthetic data sets with their targets:
images/shapes_samples.png (boxes and class names) and images/plates_samples.png (boxes, corner
quadrilaterals with the top-left corner marked, plate text); and save one held-out shapes image
as it is, images/shapes_example.png, for the README's `tutorial-det detect` example.

Run from the repository root: ``python images/make_data_samples.py``.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from tutorial_det.data import PlatesDataset, ShapesDataset  # noqa: E402
from tutorial_det.viz import draw_boxes, show_image  # noqa: E402

ROWS, COLUMNS = 3, 6


def grid(dataset, path: Path) -> None:
    fig, axes = plt.subplots(ROWS, COLUMNS, figsize=(1.9 * COLUMNS, 2.0 * ROWS))
    for i, ax in enumerate(axes.flat):
        image, target = dataset[i]
        show_image(image, ax=ax)
        draw_boxes(ax, target["boxes"], target["labels"], linewidth=1, class_names=dataset.classes)
        for quad in target.get("corners", []):
            closed = quad[[0, 1, 2, 3, 0]]
            ax.plot(closed[:, 0], closed[:, 1], color="yellow", linewidth=0.8)
            ax.plot(closed[0, 0], closed[0, 1], "o", color="red", markersize=2.5)
        if "text" in target:
            ax.set_title(" / ".join(target["text"]), fontsize=7)
    fig.tight_layout(pad=0.4)
    # A 256-colour palette keeps the file small (the pixel noise defeats PNG's compression).
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, format="png")
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    here = Path(__file__).parent
    grid(ShapesDataset(ROWS * COLUMNS, seed=0), here / "shapes_samples.png")
    grid(PlatesDataset(ROWS * COLUMNS, seed=0, max_plates=2), here / "plates_samples.png")
    # seed 5, item 30: a circle, a square and a triangle; `tutorial-det train` draws seed 0
    example = ShapesDataset(31, seed=5)[30][0]
    save_image(example, here / "shapes_example.png")
    print(f"wrote {here / 'shapes_example.png'}")


if __name__ == "__main__":
    main()
