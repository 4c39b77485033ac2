"""Draw every sample photo with its annotated boxes in one grid: images/samples_annotated.jpg.

Run from the repository root: ``python images/make_overview.py``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tutorial_det.samples import images_dir, load_sample, sample_categories, sample_names  # noqa: E402
from tutorial_det.viz import draw_boxes, show_image  # noqa: E402


def main() -> None:
    names = sample_names()
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.9 * rows))
    for ax, name in zip(axes.flat, names, strict=False):
        image, target = load_sample(name)
        show_image(image, ax=ax, title=f"{name} ({len(target['boxes'])} boxes)")
        draw_boxes(ax, target["boxes"], target["labels"], class_names=sample_categories())
        # a margin, so that boxes on the border and captions above the top edge stay visible
        height, width = image.shape[-2:]
        ax.set_xlim(-0.02 * width, 1.02 * width)
        ax.set_ylim(1.02 * height, -0.08 * height)
        ax.axis("off")
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    out = images_dir() / "samples_annotated.jpg"
    fig.savefig(out, dpi=100, pil_kwargs={"quality": 85})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
