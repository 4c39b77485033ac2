"""The explorers, driven the way a notebook user drives them: by setting ``.value`` on their
controls. No kernel or browser: the numbers come from ``view`` / ``summary``, the drawing from the
matplotlib artists on ``ax`` and the image bytes in ``picture``."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
import torchvision
from conftest import SEED_GT, label_counts
from matplotlib.figure import Figure
from PIL import Image

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.boxes import box_iou
from tutorial_det.labelling import label_anchors, sample_labels
from tutorial_det.naive import anchors_loop
from tutorial_det.samples import load_sample
from tutorial_det.viz import LABEL_COLOURS
from tutorial_det.widgets import AnchorExplorer, IoUExplorer, LabellingExplorer
from tutorial_det.widgets.base import parse_numbers, picture_bytes

BLANK = torch.ones(3, 800, 800)


def inside_count(height: int, width: int, stride: int, ratios, scales) -> int:
    """Independent count: the seed-style loop's anchors, tested against the image edges."""
    anchors = anchors_loop((height // stride, width // stride), stride, ratios, scales)
    x1, y1, x2, y2 = anchors.unbind(1)
    return int(((x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height)).sum())


# --------------------------------------------------------------------------- shared pieces


def test_parse_numbers_accepts_commas_and_spaces_and_names_the_field():
    assert parse_numbers("0.5, 1,2  4", "ratios") == (0.5, 1.0, 2.0, 4.0)
    with pytest.raises(ValueError, match="scales: 'x' is not a number"):
        parse_numbers("8, x", "scales")
    with pytest.raises(ValueError, match="ratios: '-1' is not positive"):
        parse_numbers("1 -1", "ratios")
    with pytest.raises(ValueError, match="ratios: enter at least one number"):
        parse_numbers(" , ", "ratios")


def _encoded(name: str, image: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=name, **({"quality": 90} if name == "JPEG" else {}))
    return len(buffer.getvalue())


def test_a_picture_over_a_photo_is_stored_as_jpeg_and_a_drawing_as_png():
    photo, _ = load_sample("astronaut")
    for backdrop, expected in ((photo.permute(1, 2, 0).numpy(), "jpeg"), (None, "png")):
        figure = Figure(figsize=(4, 4), dpi=80)
        ax = figure.subplots()
        if backdrop is not None:
            ax.imshow(backdrop)
        ax.plot([0, 300], [0, 500], color="tab:green")
        name, data = picture_bytes(figure)
        assert name == expected
        assert data[:4] == (b"\x89PNG" if name == "png" else b"\xff\xd8\xff\xe0")
        shown = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert shown.shape == (320, 320, 3)
        # the other format would have been larger
        other = "JPEG" if name == "png" else "PNG"
        assert len(data) < _encoded(other, shown)


# --------------------------------------------------------------------------- AnchorExplorer


@pytest.fixture
def anchor_explorer() -> AnchorExplorer:
    return AnchorExplorer(BLANK)


def test_anchor_explorer_800_by_800_stride_16(anchor_explorer):
    view = anchor_explorer.view
    assert (view.total, view.inside) == (22500, 8940)
    assert view.feature_size == (50, 50) and view.anchors_per_cell == 9
    assert view.cell == (25, 25)
    assert anchor_explorer.sentence.startswith(
        "22500 anchors (50 x 50 cells x 9 per cell), 8940 inside the image. "
        "Cell (row 25, column 25) is centred at (408, 408): 9 of its 9 anchors lie inside."
    )
    # the cell's anchors are rows (25 * 50 + 25) * 9 ... + 9 of the grid
    grid = grid_anchors(anchor_base(), (50, 50), 16)
    first = (25 * 50 + 25) * 9
    torch.testing.assert_close(view.cell_anchors, grid[first : first + 9])
    # drawing: the cell's shaded square and its nine anchors
    assert len(anchor_explorer.ax.patches) == 1 + 9
    bundle = anchor_explorer._repr_mimebundle_()
    assert bundle["text/plain"].startswith("AnchorExplorer: 22500 anchors")
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_anchor_explorer_stride_moves_the_grid_and_keeps_the_point(anchor_explorer):
    png = anchor_explorer.picture.value
    anchor_explorer.stride.value = 32
    view = anchor_explorer.view
    assert (view.total, view.inside) == (
        25 * 25 * 9,
        inside_count(800, 800, 32, (0.5, 1, 2), (8, 16, 32)),
    )
    assert anchor_explorer.sentence.startswith(
        f"5625 anchors (25 x 25 cells x 9 per cell), {view.inside} inside"
    )
    # the cell centred at (408, 408) lies in cell (12, 12) of the stride-32 grid
    assert (anchor_explorer.row.value, anchor_explorer.column.value) == (12, 12)
    assert anchor_explorer.row.max == anchor_explorer.column.max == 24
    assert anchor_explorer.picture.value != png
    anchor_explorer.stride.value = 8
    assert anchor_explorer.row.max == 99 and anchor_explorer.row.value == 50  # (12.5 * 32) // 8


def test_anchor_explorer_ratios_scales_and_corner_cell(anchor_explorer):
    anchor_explorer.ratios.value = "1"
    anchor_explorer.scales.value = "2, 4"
    view = anchor_explorer.view
    assert view.anchors_per_cell == 2 and view.total == 2500 * 2
    assert view.inside == inside_count(800, 800, 16, (1.0,), (2, 4))
    assert len(anchor_explorer.ax.patches) == 1 + 2
    anchor_explorer.row.value, anchor_explorer.column.value = 0, 0
    # 32 x 32 and 64 x 64 squares centred on (8, 8): both cross the top-left border, dashed
    assert view is not anchor_explorer.view and anchor_explorer.view.cell == (0, 0)
    assert anchor_explorer.view.cell_inside.tolist() == [False, False]
    assert [p.get_linestyle() for p in anchor_explorer.ax.patches[1:]] == ["--", "--"]
    assert "0 of its 2 anchors lie inside" in anchor_explorer.sentence


def test_anchor_explorer_reports_bad_text_and_recovers(anchor_explorer):
    anchor_explorer.scales.value = "8, big"
    assert anchor_explorer.view is None
    assert anchor_explorer.sentence == "Nothing to show: scales: 'big' is not a number"
    assert not anchor_explorer.ax.patches
    anchor_explorer.scales.value = "8"
    assert anchor_explorer.view.anchors_per_cell == 3


def test_anchor_explorer_non_square_photo_sized_image():
    explorer = AnchorExplorer(torch.zeros(3, 400, 600), scales=(4, 8))
    rows, columns = 400 // 16, 600 // 16
    assert explorer.view.feature_size == (rows, columns) == (25, 37)
    assert explorer.view.total == rows * columns * 6
    assert explorer.view.inside == inside_count(400, 600, 16, (0.5, 1, 2), (4, 8))
    assert (explorer.row.max, explorer.column.max) == (24, 36)
    with pytest.raises(ValueError, match="stride"):
        AnchorExplorer(torch.zeros(3, 40, 60), stride=48)


# --------------------------------------------------------------------------- IoUExplorer


def test_iou_explorer_default_boxes():
    explorer = IoUExplorer()
    view = explorer.view
    assert view.box_a.tolist() == [20, 20, 120, 120] and view.box_b.tolist() == [70, 70, 170, 170]
    assert (view.intersection, view.union) == (2500, 17500)
    assert view.iou == pytest.approx(1 / 7)
    assert explorer.sentence == (
        "IoU = 2500 / 17500 = 0.143. Intersection 50 x 50 = 2500; "
        "union 10000 + 10000 - 2500 = 17500."
    )
    # 4 union pieces + the intersection + 2 outlines
    assert len(explorer.ax.patches) == 7


def test_iou_explorer_moving_box_b():
    explorer = IoUExplorer()
    explorer.b_left.value = 120  # B now touches A's right edge: no overlap
    assert explorer.view.iou == 0 and explorer.view.intersection == 0
    assert "IoU = 0 / 20000 = 0.000" in explorer.sentence
    assert len(explorer.ax.patches) == 2 + 0 + 2  # both boxes whole, no intersection
    png = explorer.picture.value
    with explorer.hold():
        for key, value in (("left", 20), ("top", 20), ("width", 100), ("height", 100)):
            getattr(explorer, f"b_{key}").value = value
        assert explorer.picture.value == png  # nothing redrawn inside the block
    assert explorer.view.iou == 1 and len(explorer.ax.patches) == 0 + 1 + 2
    explorer.b_width.value = 50  # B is the left half of A
    assert explorer.view.iou == pytest.approx(0.5)
    assert "IoU = 5000 / 10000 = 0.500" in explorer.sentence


def test_iou_explorer_agrees_with_torchvision():
    explorer = IoUExplorer()
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        with explorer.hold():  # eight sliders, one redraw
            for slider in explorer.controls:
                slider.value = int(torch.randint(slider.min, slider.max + 1, (1,), generator=g))
        want = torchvision.ops.box_iou(explorer.view.box_a[None], explorer.view.box_b[None])
        assert explorer.view.iou == pytest.approx(float(want), abs=1e-12)


def test_iou_explorer_shows_zero_area_boxes():
    """Lesson 00's edge case: widths and heights go down to 0; two empty boxes have IoU 0."""
    explorer = IoUExplorer(box_a=(50, 50, 50, 50), box_b=(50, 50, 50, 50))
    assert explorer.a_width.min == 0 and explorer.view.union == 0 and explorer.view.iou == 0
    assert explorer.sentence.startswith(
        "IoU = 0: both boxes have zero area, so 0 / 0 would be NaN; box_iou defines the IoU of "
        "an empty union as 0. Intersection 0 x 0 = 0; union 0 + 0 - 0 = 0."
    )
    assert len(explorer.ax.lines) == 2  # each point drawn, as no outline shows it
    explorer.b_height.value = 40  # B is now a vertical line: still zero area
    assert explorer.view.union == 0 and len(explorer.ax.lines) == 2
    explorer.a_width.value = 10  # A a horizontal line, B a vertical one: the union is still 0
    assert explorer.view.union == 0 and explorer.sentence.startswith("IoU = 0: both boxes")
    explorer.a_height.value = 10  # A has an area now: IoU is 0 / 100, a number again
    assert explorer.sentence.startswith("IoU = 0 / 100 = 0.000.")
    assert len(explorer.ax.lines) == 1  # only B, the line, needs drawing as one


def test_iou_explorer_rejects_bad_boxes():
    with pytest.raises(ValueError, match="box_a"):
        IoUExplorer(box_a=(50, 50, 40, 60))
    with pytest.raises(ValueError, match="box_b"):
        IoUExplorer(box_a=(0, 0, 4, 4), box_b=(1, 1, 20, 20), canvas=5)


# --------------------------------------------------------------------------- LabellingExplorer


@pytest.fixture
def labelling() -> LabellingExplorer:
    return LabellingExplorer(BLANK, SEED_GT)


def drawn_counts(explorer: LabellingExplorer) -> dict[int, int]:
    colours = {v: k for k, v in LABEL_COLOURS.items()}
    result = {}
    for collection in explorer.ax.collections:
        rgb = matplotlib.colors.to_hex(collection.get_edgecolor()[0][:3])
        result[colours[rgb]] = len(collection.get_paths())
    return result


def test_labelling_explorer_seed_example(labelling, inside_800):
    view = labelling.view
    assert view.counts == (18, 7690, 1232)
    assert view.sampled_counts == (18, 238, 8940 - 256)
    assert labelling.sentence == (
        "8940 of 22500 anchors lie inside the image (the other 13560 are ignored). "
        "Labelled: 18 positive, 7690 negative, 1232 ignored. "
        "Sampled (batch 256): 18 positive, 238 negative, 8684 ignored."
    )
    want, _ = label_anchors(inside_800, SEED_GT)
    assert torch.equal(view.labels, want)
    assert torch.equal(
        view.sampled, sample_labels(want, 256, 0.5, torch.Generator().manual_seed(0))
    )
    assert drawn_counts(labelling) == {0: 238, 1: 18}  # ignored not drawn by default


def test_labelling_explorer_without_sampling_and_what_is_drawn(labelling):
    labelling.sample.value = False
    assert labelling.view.sampled is None and labelling.view.sampled_counts is None
    assert labelling.sentence.endswith("No sampling: every labelled anchor counts in the loss.")
    assert drawn_counts(labelling) == {0: 7690, 1: 18}
    labelling.show_ignored.value = True
    labelling.show_negative.value = False
    assert drawn_counts(labelling) == {-1: 1232, 1: 18}


def test_labelling_explorer_thresholds(labelling, inside_800):
    labelling.pos_thresh.value = 0.6
    best = box_iou(inside_800, SEED_GT).max(dim=1).values
    # 0.6 is reached by anchors of both ground truths (best IoUs 0.68 and 0.61)
    assert labelling.view.counts[0] == int((best >= 0.6).sum()) > 18
    labelling.pos_thresh.value = 0.7
    labelling.neg_thresh.value = 0.1
    assert labelling.view.counts[1] == int((best < 0.1).sum())
    labelling.neg_thresh.value = 0.8  # above the positive threshold
    assert labelling.view is None
    assert labelling.sentence.startswith("Nothing to show: the negative threshold (0.8) is above")
    assert not labelling.ax.collections
    labelling.neg_thresh.value = 0.3
    assert labelling.view.counts == (18, 7690, 1232)


def test_labelling_explorer_names_the_ground_truths_from_0_as_lesson_03(labelling):
    assert [t.get_text() for t in labelling.ax.texts] == ["gt 0", "gt 1"]


def test_labelling_explorer_batch_size_per_image_fraction_and_seed(labelling):
    labelling.batch_size_per_image.value = 64
    assert labelling.view.sampled_counts == (18, 46, 8940 - 64)
    labelling.batch_size_per_image.value = 256
    labelling.positive_fraction.value = 0.05  # int(256 * 0.05) = 12 positives at most
    assert labelling.view.sampled_counts == (12, 244, 8940 - 256)
    first = labelling.view.sampled
    labelling.seed.value = 1
    assert labelling.view.sampled_counts == (12, 244, 8940 - 256)
    assert not torch.equal(first, labelling.view.sampled)  # another random mini-batch


def test_labelling_explorer_on_a_photo_sized_image():
    gt = torch.tensor([[172.0, 17, 408, 306], [78, 71, 481, 385]])
    explorer = LabellingExplorer(
        torch.zeros(3, 400, 600), gt, gt_labels=[8, 9], class_names={8: "cup", 9: "saucer"}
    )
    anchors = grid_anchors(anchor_base(), (25, 37), 16)
    inside = anchors[inside_anchors(anchors, (400, 600))]
    assert explorer.sentence.startswith(f"{len(inside)} of {len(anchors)} anchors")
    assert explorer.view.counts == label_counts(label_anchors(inside, gt)[0])
    assert [t.get_text() for t in explorer.ax.texts] == ["gt 0 (cup)", "gt 1 (saucer)"]
    with pytest.raises(ValueError, match="gt_labels has 1 entries for 2 boxes"):
        LabellingExplorer(torch.zeros(3, 400, 600), gt, gt_labels=[1])
