"""Drawing plates: quadrilaterals on matplotlib axes, with the reading order visible.

Lesson 08 (WPOD-Net) draws its plates with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.patches import Polygon
from matplotlib.patheffects import withStroke

from tutorial_det.wpod.geometry import check_quads


def draw_quads(
    ax: Axes,
    corners: torch.Tensor,
    colour="lime",
    scores: Sequence[float] | torch.Tensor | None = None,
    linewidth: float = 2.0,
    linestyle: str = "-",
    mark_first: bool = True,
) -> list[Polygon]:
    """Draw ``[N, 4, 2]`` plate corners (pixels) on ``ax`` as closed outlines.

    ``mark_first`` puts a dot on each plate's first corner (its top-left as it reads), so a
    plate whose corners come in the wrong order shows it; ``scores`` are written next to it.
    Returns the ``Polygon`` patches, one per plate.
    """
    corners = check_quads(torch.as_tensor(corners), "corners").detach().cpu()
    scores = None if scores is None else [float(v) for v in torch.as_tensor(scores).flatten()]
    if scores is not None and len(scores) != len(corners):
        raise ValueError(f"scores has {len(scores)} entries for {len(corners)} plates")
    patches = []
    for i, quad in enumerate(corners.tolist()):
        patch = Polygon(
            quad,
            closed=True,
            fill=False,
            edgecolor=colour,
            linewidth=linewidth,
            linestyle=linestyle,
        )
        ax.add_patch(patch)
        patches.append(patch)
        x, y = quad[0]
        if mark_first:
            ax.plot([x], [y], "o", color=colour, markersize=3 + linewidth)
        if scores is not None:
            outline = [withStroke(linewidth=2, foreground="black")]
            ax.text(x, y - 2, f"{scores[i]:.2f}", color=colour, fontsize=8, path_effects=outline)
    return patches
