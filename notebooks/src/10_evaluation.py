# %% [markdown]
# # 10 · Evaluation
#
# A detector outputs boxes with classes and scores. How good is it? Not "how low is its loss":
# the loss is a training device. What users care about is whether the boxes it reports are on
# objects (**precision**) and whether it finds the objects there are (**recall**), at every
# confidence level. **Average precision** (AP) sums both up in one number per class, and **mean
# average precision** (mAP) averages it over classes, and, COCO-style, over how tight a box must
# be. This lesson builds the metric from its pieces on a small worked example, checks it against
# the official COCO evaluation code, and then measures a detector trained here.
#
# **You will learn**
# - how detections are matched to ground truths: by IoU, greedily in order of score, each object
#   at most once; true and false positives, drawn;
# - the precision-recall curve of a ranking, and average precision three ways (VOC's all-point
#   and 11-point rules, COCO's 101 points), by hand and with the package, drawn on the curve;
# - COCO's mAP averaged over IoU thresholds 0.50:0.95, and `map_50`, `map_75`; checked against
#   pycocotools;
# - to train an SSD briefly, draw its precision-recall curves on held-out images, read its
#   per-class AP and see its true and false positives;
# - a ranking bug: AP computed in storage order instead of by score (`mean_average_precision`
#   ranks the detections itself).
#
# **You need** lesson 00 (IoU) and lesson 07 (the SSD trained here). Most of its running time is
# training; the README's lesson table gives it on a quiet 2-core CPU.

# %%
import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D

from tutorial_det.boxes import box_iou
from tutorial_det.data import SHAPE_CLASSES, ShapesDataset
from tutorial_det.exercises import check_average_precision
from tutorial_det.metrics import (
    COCO_IOU_THRESHOLDS,
    average_precision,
    match_detections,
    mean_average_precision,
    pycocotools_eval,
    to_coco,
)
from tutorial_det.models import build_model
from tutorial_det.prose import say
from tutorial_det.runtime import pick_device, seed_everything
from tutorial_det.training import evaluate, fit
from tutorial_det.viz import draw_boxes, draw_legend, show_image

seed_everything(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # the same numbers whatever the number of cores: see section 6

# %% [markdown]
# ## 1. Matching detections to ground truths
#
# One image, one class, three objects (ground truths `g0`, `g1`, `g2`) and five detections
# `d1` to `d5`, already sorted by score, as a detector returns them:

# %%
ground_truth = torch.tensor([[20.0, 35, 70, 85], [90, 45, 130, 125], [150, 65, 200, 115]])
detections = torch.tensor(
    [
        [22.0, 35, 72, 85],
        [20, 50, 70, 100],
        [90, 55, 130, 135],
        [175, 65, 210, 115],
        [150, 70, 200, 120],
    ]
)
scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
ious = box_iou(detections, ground_truth)  # [5 detections, 3 ground truths]
print("IoU of each detection (rows) with each ground truth (columns):")
for k, row in enumerate(ious.tolist(), start=1):
    print(f"  d{k} (score {scores[k - 1]:.1f}):", "  ".join(f"{v:.4f}" for v in row))

# %% [markdown]
# `d1` lies on `g0` (IoU 2400 / 2600 = 0.9231), `d2` overlaps `g0` too (1750 / 3250 = 0.5385), `d3`
# lies on `g1` (0.7778), `d4` is shifted off `g2` (0.4167) and `d5` is on `g2` (0.8182). At the
# usual threshold IoU >= 0.5, the detections are matched **greedily in order of score**: each takes,
# among the ground truths it overlaps by at least 0.5 and that no better-scored detection took, the
# one of highest IoU. A detection that gets one is a **true positive** (TP), any other a **false
# positive** (FP); a ground truth nobody took is a **false negative** (a miss).

# %%
tp, fp = match_detections(ious, 0.5)
flags = ["TP" if t else "FP" for t in tp.tolist()]
print("d1..d5:", flags)

fig, ax = plt.subplots(figsize=(9, 5.6))
show_image(torch.ones(3, 150, 230), ax=ax, title="one image: three objects, five detections")
draw_boxes(
    ax, ground_truth, labels=[0, 1, 2], class_names=["g0", "g1", "g2"], colour="tab:blue",
    linewidth=3,
)  # fmt: skip
for k, (box, flag) in enumerate(zip(detections, flags, strict=True), start=1):
    colour = "tab:green" if flag == "TP" else "tab:red"
    draw_boxes(
        ax,
        box[None],
        labels=[k],
        scores=scores[k - 1 : k],
        class_names={k: f"d{k} {flag}"},
        colour=colour,
        linestyle="--",
    )
draw_legend(
    ax,
    [
        ("ground truth", "tab:blue", {"linewidth": 3}),
        ("true positive (TP)", "tab:green", {"linestyle": "--"}),
        ("false positive (FP)", "tab:red", {"linestyle": "--"}),
    ],
    loc="upper right",
)
plt.show()

# %% [markdown]
# TP, FP, TP, FP, TP. `d2` is a false positive although its IoU with `g0` is 0.5385: `g0` was
# already taken by `d1`, and an object counts once (a **duplicate**). `d4` is a false positive
# because it is **poorly localised** (0.4167 < 0.5), and the better box `d5`, scored lower, still
# finds `g2`. Nothing is missed here; a missed object would lower recall.
#
# ## 2. Precision and recall down the ranking
#
# Going down the ranked list, after each detection: **precision** = TPs so far / detections so far
# and **recall** = TPs so far / number of ground truths (3):

# %%
true_positives = tp.double().cumsum(0)
ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)
precision, recall = true_positives / ranks, true_positives / len(ground_truth)
for k in range(len(tp)):
    print(
        f"after d{k + 1} ({flags[k]}): precision {int(true_positives[k])}/{k + 1} = {precision[k]:.4f}, recall {int(true_positives[k])}/3 = {recall[k]:.4f}"
    )

# %% [markdown]
# Precision zig-zags (down at every FP, up at every TP), recall only grows. Keeping only the
# detections above a score threshold picks one point of this list: above 0.85, only `d1`
# (precision 1, recall 1/3); above 0.45, all five (precision 0.6, recall 1). **Average precision**
# summarises the whole list. Every rule first replaces precision by its **envelope**: at each
# recall, the best precision reachable at that recall *or higher* (a running maximum from the
# end), because a user would rather lower the threshold a little to get both more recall and more
# precision. The envelope here: 1 up to recall 1/3, 2/3 up to recall 2/3, 0.6 up to recall 1.
#
# ## 3. Average precision, three ways
#
# **All points** (Pascal VOC since 2010): the exact area under the envelope. Recall grows in three
# steps of 1/3, at precisions 1, 2/3 and 0.6:
#
# AP = 1/3 x 1 + 1/3 x 2/3 + 1/3 x 0.6 = 0.3333 + 0.2222 + 0.2 = **0.755556**
#
# **11 points** (Pascal VOC 2007): the mean of the envelope at recall 0, 0.1, ..., 1. Levels 0 to
# 0.3 (four of them) are reached at recall 1/3 with envelope 1; 0.4 to 0.6 (three) at recall 2/3
# with 2/3; 0.7 to 1 (four) at recall 1 with 0.6:
#
# AP = (4 x 1 + 3 x 2/3 + 4 x 0.6) / 11 = (4 + 2 + 2.4) / 11 = 8.4 / 11 = **0.763636**
#
# **101 points** (COCO): the same with recall 0, 0.01, ..., 1. Levels 0 to 0.33 (34) give 1, 0.34
# to 0.66 (33) give 2/3, 0.67 to 1 (34) give 0.6:
#
# AP = (34 x 1 + 33 x 2/3 + 34 x 0.6) / 101 = (34 + 22 + 20.4) / 101 = 76.4 / 101 = **0.756436**
#
# The package's `average_precision` gives the same three numbers:

# %%
for method in ("all_points", "11_points", "coco_101"):
    print(f"{method:>10}: {average_precision(recall, precision, method).item():.6f}")

# %% [markdown]
# The three rules agree to within 0.01 here; they differ most for short curves, where a level
# or two of the 11 decide a lot. The drawing: the zig-zag of the raw points, the envelope (its
# area shaded: the all-point AP), and the levels the 11-point and 101-point rules read off it:

# %%
envelope = torch.cat((precision, torch.zeros(1))).flip(0).cummax(0).values.flip(0)[:-1]
fig, ax = plt.subplots(figsize=(7.5, 4.5))
ax.plot(
    recall,
    precision,
    "o-",
    color="grey",
    label="precision after each detection",
)
ax.fill_between(
    [0, *recall.tolist()],
    [envelope[0].item(), *envelope.tolist()],
    step="pre",
    alpha=0.2,
    color="tab:blue",
)
ax.step(
    [0, *recall.tolist()],
    [envelope[0].item(), *envelope.tolist()],
    where="pre",
    color="tab:blue",
    linewidth=2,
    label="envelope (area = all-point AP 0.7556)",
)
for levels, style, name in (
    (torch.linspace(0, 1, 101), ".", "101 points (COCO) 0.7564"),
    (torch.linspace(0, 1, 11), "s", "11 points (VOC07) 0.7636"),
):
    reached = torch.searchsorted(recall, levels.double(), side="left")
    values = torch.cat((envelope, torch.zeros(1)))[reached]
    ax.plot(
        levels,
        values,
        style,
        markersize=4 if style == "." else 7,
        fillstyle="none" if style == "s" else "full",
        label=name,
    )
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_xlim(-0.02, 1.05)
ax.set_ylim(0, 1.08)
ax.legend(loc="lower left", fontsize=9)
plt.show()

# %% [markdown]
# ## 4. COCO's mAP: many IoU thresholds
#
# IoU 0.5 accepts a box that covers its object rather loosely. COCO's main number, `map`, averages
# AP over ten thresholds 0.50, 0.55, ..., 0.95, so that tight boxes score higher than loose ones.
# The matching is redone at each threshold; `match_detections` does all ten at once:

# %%
tp_all, fp_all = match_detections(ious, COCO_IOU_THRESHOLDS)  # [10 thresholds, 5 detections]
per_threshold = []
for t, row in zip(COCO_IOU_THRESHOLDS.tolist(), tp_all, strict=True):
    hits = row.double().cumsum(0)
    ap = average_precision(hits / 3, hits / ranks, "coco_101").item()
    per_threshold.append(ap)
    print(f"IoU >= {t:.2f}: {''.join('T' if v else 'F' for v in row.tolist())}  AP {ap:.6f}")
print(f"mean over the 10 thresholds: {sum(per_threshold) / 10:.6f}")

# %% [markdown]
# Up to 0.75 the ranking stays TFTFT (AP 0.756436, six thresholds). At 0.80, `d3` (IoU 0.7778)
# no longer counts: TFFFT, recall 2/3 at best, AP (34 x 1 + 33 x 0.4) / 101 = 0.467327. At 0.85
# `d5` (0.8182) drops as well: only `d1` is left, AP 34 / 101 = 0.336634, also at 0.90 (`d1` has
# 0.9231); at 0.95 nothing is left. The mean:
# (6 x 0.756436 + 0.467327 + 2 x 0.336634 + 0) / 10 = **0.567921**.
#
# `mean_average_precision` computes all of this for a whole data set (every image and class) and
# returns torchmetrics' key names, plus `voc_map_50` and `voc11_map_50` of its own; for our one
# image:

# %%
example_preds = [
    {"boxes": detections, "scores": scores, "labels": torch.ones(5, dtype=torch.int64)}
]
example_targets = [{"boxes": ground_truth, "labels": torch.ones(3, dtype=torch.int64)}]
metrics = mean_average_precision(example_preds, example_targets)
for key in ("map", "map_50", "map_75", "voc_map_50", "voc11_map_50", "mar_100"):
    print(f"{key:>12}: {metrics[key].item():.6f}")

# %% [markdown]
# `map` 0.567921 and `map_50` 0.756436 are section 4's mean and the 101-point AP at 0.5; `map_75` is
# the AP at 0.75 (still TFTFT); `voc_map_50` and `voc11_map_50` are the all-point and 11-point APs
# at 0.5. `mar_100`, the mean average **recall** (the final recall at each threshold, with up to 100
# detections per image and class, averaged over the thresholds): (6 x 1 + 2/3 + 1/3 + 1/3 + 0) / 10
# = 0.733333.
#
# Over a data set, each class is scored separately: its detections from *all* images are ranked
# together by score, each image's matched on its own, and one precision-recall curve per class
# and threshold results. `map` is the mean over classes and thresholds; classes without ground
# truth are left out (-1). COCO also reports AP for small (area below 32²), medium and large
# objects. Some objects are marked as not to be counted, and `mean_average_precision` reads the
# marks from the targets: COCO's crowd regions (`"iscrowd"`) and VOC's "difficult" objects
# (`"difficult"`) are not among the objects to find, and a detection matched to one is neither a
# true nor a false positive.
#
# ## 5. Checked against pycocotools
#
# pycocotools' `COCOeval` is the reference implementation every paper quotes. `to_coco` writes
# predictions and targets in COCO's json layout, and `pycocotools_eval` hands them to it (a
# `COCO` object holding the ground truth, `loadRes` for the detections, then `evaluate`,
# `accumulate` and `summarize`, its printing silenced). The first three summary numbers are
# AP, AP at 0.5 and AP at 0.75:


# %%
def pycocotools_stats(preds, targets):
    """COCOeval's 12 summary numbers for predictions and targets."""
    return pycocotools_eval(*to_coco(preds, targets)).stats


stats = pycocotools_stats(example_preds, example_targets)
print(f"pycocotools: AP {stats[0]:.6f}, AP50 {stats[1]:.6f}, AP75 {stats[2]:.6f}")
ours = [metrics[k].item() for k in ("map", "map_50", "map_75")]
print("the same as ours:", all(abs(a - b) < 1e-6 for a, b in zip(stats[:3], ours, strict=True)))

# %% [markdown]
# ## 6. A trained detector
#
# Now a real detector: lesson 07's small SSD, trained here for 100 steps of 16 synthetic shapes
# images (128 x 128) with AdamW and a one-cycle schedule. The seeds and the number of steps are
# fixed, and on the CPU torch runs on one thread (set in the first cell: with more threads the
# sums are added in another order), so on a CPU every number below comes out the same at each
# run, whatever the number of cores (a GPU adds in another order and ends slightly elsewhere).

# %%
seed_everything(0)
model = build_model("ssd", len(SHAPE_CLASSES))
steps = 100
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1
)
train_data = ShapesDataset(100_000, image_size=128, seed=0)
history = fit(
    model, train_data, optimizer=optimizer, scheduler=scheduler, max_steps=steps, batch_size=16,
    grad_clip_norm=10.0, log_every=None, progress=False, device=device,
)  # fmt: skip
for step in (1, 25, 50, 75, 100):
    print(f"step {step:>3}: loss {history.loss[step - 1]:.3f}")

# %% [markdown]
# Its detections on 100 held-out images (another seed of the data set, never seen in training),
# and their metrics:

# %%
held_out = ShapesDataset(100, image_size=128, seed=1)
predictions, targets = evaluate(model, held_out, batch_size=25)
trained = mean_average_precision(predictions, targets)
keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100", "voc_map_50")
for key in keys:
    print(f"{key:>10}: {trained[key].item():.4f}")
print("per class (COCO AP / VOC AP at 0.5):")
for label, ap, voc in zip(
    trained["classes"].tolist(),
    trained["map_per_class"].tolist(),
    trained["voc_map_50_per_class"].tolist(),
    strict=True,
):
    print(f"  {SHAPE_CLASSES[label]:>8}: {ap:.4f} / {voc:.4f}")
detections_per_image = sum(len(p["boxes"]) for p in predictions) / len(predictions)
objects_per_image = sum(len(t["boxes"]) for t in targets) / len(targets)
print(f"detections per image: {detections_per_image} | objects per image: {objects_per_image}")
all_truths = torch.cat([t["boxes"] for t in targets])
largest = (all_truths[:, 2:] - all_truths[:, :2]).max(dim=0).values  # [2]: widest, tallest

# %% jupyter={"source_hidden": true}
say(f"""
    After {steps} steps, `map_50` is {trained["map_50"]:.4f} and `map` well below it,
    {trained["map"]:.4f}: the boxes are in the right places sooner than they are tight. No
    object of the held-out set is large in COCO's sense (the widest is {largest[0]:.0f} pixels
    wide, the tallest {largest[1]:.0f} tall, below 96 x 96), so `map_large` is
    {trained["map_large"]:.0f}, undefined. The model returns up to {model.detections_per_img}
    detections per image ({detections_per_image:g} on average here), far more than the
    {objects_per_image:g} objects an image holds: most have low scores and sit at the end of the
    ranking, where they can only add recall, never lower the precision of the detections ranked
    above them. That is why a detector is evaluated with *all* its detections and not after a
    score threshold. pycocotools agrees on these numbers too:
""")

# %%
stats = pycocotools_stats(predictions, targets)
print(
    "the same as pycocotools:",
    all(
        abs(stats[i] - trained[k].item()) < 1e-6 for i, k in enumerate(("map", "map_50", "map_75"))
    ),
)

# %% [markdown]
# ### Precision-recall curves
#
# One curve per class at IoU 0.5, built from the pieces of sections 1 and 2: in each image, match
# the class's detections (sorted by score) to its ground truths; then rank the class's detections
# from all images together and accumulate.


# %%
def pr_curve(predictions, targets, label, iou_threshold=0.5):
    """(recall [D], precision [D], scores [D]) of class ``label`` over all images, at one IoU."""
    hits, all_scores, num_truths = [], [], 0
    for pred, target in zip(predictions, targets, strict=True):
        mine = pred["labels"] == label
        order = pred["scores"][mine].argsort(descending=True, stable=True)
        boxes, det_scores = pred["boxes"][mine][order], pred["scores"][mine][order]
        truths = target["boxes"][target["labels"] == label]
        tp, _ = match_detections(box_iou(boxes, truths), iou_threshold)
        hits.append(tp)
        all_scores.append(det_scores)
        num_truths += len(truths)
    hits, all_scores = torch.cat(hits), torch.cat(all_scores)
    order = all_scores.argsort(descending=True, stable=True)
    found = hits[order].double().cumsum(0)
    ranks = torch.arange(1, len(found) + 1, dtype=torch.float64)
    return found / num_truths, found / ranks, all_scores[order]


curves = {label: pr_curve(predictions, targets, label) for label in (1, 2, 3)}
DRAW_THRESHOLD = 0.3  # the score threshold marked on the curves and used for the drawings below
same = all(
    abs(average_precision(r, p).item() - trained["voc_map_50_per_class"][label - 1].item()) < 1e-6
    for label, (r, p, _) in curves.items()
)
print("all-point AP of each curve == voc_map_50_per_class:", same)
# the scores of the true positives: where a class's recall grows along its curve
hit_scores = torch.cat([s[r.diff(prepend=r.new_zeros(1)) > 0] for r, _, s in curves.values()])

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for label, (r, p, s) in curves.items():
    ap = average_precision(r, p).item()
    (line,) = ax.plot(r, p, label=f"{SHAPE_CLASSES[label]} (AP@0.5 {ap:.3f})")
    k = int((s >= DRAW_THRESHOLD).sum()) - 1  # the last detection scoring at least the threshold
    if k >= 0:
        ax.plot(r[k], p[k], "o", color=line.get_color(), markersize=8)
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_ylim(0, 1.03)
ax.set_title(f"held-out shapes, IoU 0.5; dots: score threshold {DRAW_THRESHOLD}")
ax.legend(loc="lower left")
plt.show()

# %% [markdown]
# Each curve starts at precision 1 (the most confident detections are right), stays high while
# recall grows, and falls off at the end where the low-scoring detections are mostly duplicates
# and background. The area under each curve is its class's AP at 0.5, the class's entry in
# `voc_map_50_per_class` (checked above). The dots mark a score threshold of 0.3, an operating
# point a user of the detector might pick: keeping only the detections above it gives that point's
# precision and recall. To its right along the curve lie the objects found only with lower
# scores, at the price of more false positives.

# %% jupyter={"source_hidden": true}
say(
    f"A briefly trained detector is timid: {int((hit_scores < 0.5).sum())} of its "
    f"{len(hit_scores)} true positives at IoU 0.5 score below 0.5."
)

# %% [markdown]
# ### True and false positives on held-out images
#
# The detections scoring at least 0.3 on eight held-out images, coloured by their match at IoU 0.5
# (the threshold applies to what is drawn; the metric used all detections): true positives green,
# false positives red, ground truths that no drawn detection found dashed in blue (the legend
# below the images).

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 7.2), layout="constrained")
for ax, (pred, target, (image, _)) in zip(
    axes.flat, zip(predictions, targets, held_out, strict=False), strict=False
):
    show_image(image, ax=ax)
    keep = pred["scores"] >= DRAW_THRESHOLD
    boxes, labels, confidences = pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep]
    order = confidences.argsort(descending=True)
    boxes, labels, confidences = boxes[order], labels[order], confidences[order]
    same_class = labels[:, None] == target["labels"][None, :]
    hit, _ = match_detections(torch.where(same_class, box_iou(boxes, target["boxes"]), -1.0), 0.5)
    found = torch.zeros(len(target["boxes"]), dtype=torch.bool)
    for box, label in zip(boxes[hit], labels[hit], strict=True):
        candidates = (target["labels"] == label) & ~found
        found[(box_iou(box[None], target["boxes"])[0] * candidates).argmax()] = True
    draw_boxes(ax, target["boxes"][~found], colour="tab:blue", linestyle="--")
    draw_boxes(
        ax, boxes[hit], labels[hit], confidences[hit], class_names=SHAPE_CLASSES, colour="tab:green"
    )
    draw_boxes(
        ax,
        boxes[~hit],
        labels[~hit],
        confidences[~hit],
        class_names=SHAPE_CLASSES,
        colour="tab:red",
    )
    ax.set_title(f"{int(hit.sum())} TP, {int((~hit).sum())} FP, {int((~found).sum())} missed")
fig.legend(
    handles=[
        Line2D([], [], color="tab:green", linewidth=2, label="true positive"),
        Line2D([], [], color="tab:red", linewidth=2, label="false positive"),
        Line2D([], [], color="tab:blue", linewidth=2, linestyle="--", label="missed object"),
    ],
    loc="outside lower center",
    ncol=3,
)
plt.show()

# %% [markdown]
# (Matching across classes at once works by setting the IoU of a detection with a ground truth of
# another class to -1, which never matches.) What to look for: small or low-contrast shapes
# missed, a shape found twice or with the wrong class, a box so loose that its IoU falls below
# 0.5 (a red box on a blue dashed one).
#
# ## 7. Spot the bug
#
# Average precision is defined on the detections **ranked by score**. A hand-written evaluation
# that accumulates the TPs of section 1's detections in the order they happen to be stored (in a
# real evaluation: image by image, as a loop over images collects them), not by score:

# %%
stored_order = torch.tensor([2, 0, 4, 1, 3])  # d3, d1, d5, d2, d4
unsorted = tp[stored_order].double().cumsum(0)
print("flags in storage order:", ["TP" if v else "FP" for v in tp[stored_order].tolist()])
print("recall:", [round(v, 4) for v in (unsorted / 3).tolist()])
print("AP of that curve:", round(average_precision(unsorted / 3, unsorted / ranks).item(), 6))

# %% [markdown]
# TP, TP, TP, FP, FP: all three objects found first, AP 1.0 for a ranking that is really TFTFT
# (0.755556). The detector's scores never entered the computation; the number measures the storage
# order. `average_precision` cannot see the scores either, which is why its inputs are the
# recall and precision *after ranking* and why `mean_average_precision` takes the scores and
# ranks itself. The matching must follow the same order: `match_detections` expects each image's
# detections sorted by descending score, so that a duplicate with a lower score, not the better
# box, is the one that counts as a false positive.
#
# ## 8. Exercises
#
# **a) Average precision yourself.** Write `my_average_precision(recall, precision)` for each of
# the three rules (start with all points; then change it for 11 and 101 points). Inputs are float
# tensors `[N]`, recall non-decreasing. The checks include the worked example (0.755556,
# 0.763636, 0.756436), a curve whose precision dips and recovers, curves that never reach full
# recall and an empty one.


# %%
def my_average_precision(recall, precision):
    """Area under the precision envelope (all points): a float or a 0-d tensor."""
    raise NotImplementedError  # your code here


check_average_precision(my_average_precision, "all_points")

# %% [markdown]
# For the other two rules, write a function each and check it with `"11_points"` and
# `"coco_101"` as the second argument.
#
# ## Summary
#
# - Detections are matched to ground truths greedily by score: each takes the free ground truth of
#   highest IoU above the threshold; a duplicate or a poorly localised box is a false positive.
# - Precision and recall after each ranked detection give the precision-recall curve; AP is the
#   area under its envelope: all points (VOC 2010+), the mean at 11 recall levels (VOC 2007) or
#   at 101 (COCO). The worked example: 0.755556, 0.763636, 0.756436.
# - COCO's `map` averages the 101-point AP over IoU 0.50:0.95 and over classes (0.567921 for the
#   example); `map_50` and `map_75` fix one threshold. The package agrees with pycocotools.
# - A detector is evaluated with all its detections; a score threshold picks one point on the
#   curve for users.
# - The SSD trained here for 100 steps reaches a `map_50` well above its `map` on held-out
#   shapes: the boxes are found before they are tight.
#
# **More exercises**
# 1. Change `d4` so that it becomes a true positive without changing any score. What are the
#    three APs now? Check with `average_precision`.
# 2. Evaluate the trained SSD with `iou_thresholds=[0.3]`. How much does AP grow, and what does
#    that say about its boxes?
# 3. Train the SSD with `tutorial-det train --model ssd --data shapes --epochs 1 --out runs/ssd`
#    and evaluate it with `tutorial-det evaluate --checkpoint runs/ssd/model.pt --data shapes`.
#    Compare its per-class AP with section 6's.
# 4. VOC's devkit counts a detection as a TP only if IoU > 0.5 (not >= 0.5), and a detection whose
#    best ground truth is taken is an FP even if another ground truth would match. Construct an
#    example where this gives a different AP from the COCO rules.
