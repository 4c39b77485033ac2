"""Detections and ground truth in COCO's json layout, and pycocotools' ``COCOeval`` run on them.

- :func:`to_coco`: predictions and targets as COCO json objects;
- :func:`pycocotools_eval`: ``COCOeval`` on those objects, its printing silenced: the reference
  the tests and lesson 10 compare :func:`~tutorial_det.metrics.mean_average_precision` with.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

from torch import Tensor

from tutorial_det.boxes import box_convert
from tutorial_det.metrics.evaluation import flatten_preds_targets


def to_coco(
    preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
) -> tuple[dict, list[dict]]:
    """The inputs of :func:`mean_average_precision` as COCO json objects.

    Image ``i`` becomes image id ``i + 1``; boxes become ``[x, y, w, h]``; a ground truth's
    ``"area"`` is ``w * h`` (COCO's own files give the segmentation's area there, which is why
    their ``bbox`` results can differ slightly by size range); ``"iscrowd"`` defaults to 0.

    Returns:
        ``(dataset, detections)``: the ground-truth dataset (``images``, ``categories``: every
        label seen, ``annotations``), ready for ``pycocotools.coco.COCO``'s ``dataset``
        attribute, and the detection list for ``COCO.loadRes``. pycocotools writes into both,
        so build them again for a second evaluation.
    """
    dets, gts = flatten_preds_targets(preds, targets)
    labels = sorted(set(dets["labels"].tolist()) | set(gts["labels"].tolist()))
    annotations = [
        {
            "id": n + 1,
            "image_id": image + 1,
            "category_id": label,
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": int(crowd),
        }
        for n, (image, label, (x, y, w, h), crowd) in enumerate(
            zip(
                gts["image"].tolist(),
                gts["labels"].tolist(),
                box_convert(gts["boxes"], "xyxy", "xywh").tolist(),
                gts["crowd"].tolist(),
                strict=True,
            )
        )
    ]
    detections = [
        {"image_id": image + 1, "category_id": label, "bbox": box, "score": score}
        for image, label, box, score in zip(
            dets["image"].tolist(),
            dets["labels"].tolist(),
            box_convert(dets["boxes"], "xyxy", "xywh").tolist(),
            dets["scores"].tolist(),
            strict=True,
        )
    ]
    dataset = {
        "images": [{"id": i + 1} for i in range(len(targets))],
        "categories": [{"id": label} for label in labels],
        "annotations": annotations,
    }
    return dataset, detections


def pycocotools_eval(dataset: dict, detections: list[dict], **params):
    """pycocotools' ``COCOeval`` ("bbox") on :func:`to_coco`'s ``(dataset, detections)``.

    Args:
        dataset, detections: as :func:`to_coco` returns them (pycocotools writes into both: make
            them again for a second evaluation).
        params: attributes of ``COCOeval.params`` to set first (``iouThrs``, ``maxDets``, ...).
            With none, ``summarize()`` runs too and ``.stats`` holds the 12 summary numbers (AP,
            AP50, AP75, AP small / medium / large, AR 1 / 10 / 100, AR small / medium / large).

    Returns:
        The ``COCOeval`` object after ``evaluate()`` and ``accumulate()``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(detections), "bbox")
        for key, value in params.items():
            setattr(evaluation.params, key, value)
        evaluation.evaluate()
        evaluation.accumulate()
        if not params:
            evaluation.summarize()
    return evaluation
