"""SSD's pieces against torchvision's: prior matching, the multibox loss, decoding with NMS, and
one training step of the small SSD against torchvision's ssdlite320_mobilenet_v3_large (random
weights; it resizes the 128-pixel images to 320 internally) on the same batch of 16 synthetic
shapes. The mAP of both after three minutes of training is ``benchmarks/train_ssd.py``'s job."""

from __future__ import annotations

import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.ssd import SSD as TorchvisionSSD

from benchmarks.common import Row, time_ms
from tutorial_det.boxes import box_iou
from tutorial_det.data import ShapesDataset
from tutorial_det.labelling import match_priors
from tutorial_det.ssd import SSD_WEIGHTS, build_ssd, decode_detections, multibox_loss, prior_targets

BATCH = 16


def _torchvision_ssd_parts() -> TorchvisionSSD:
    """A torchvision SSD with only what compute_loss and postprocess_detections read."""
    model = TorchvisionSSD.__new__(TorchvisionSSD)
    torch.nn.Module.__init__(model)
    model.box_coder = det_utils.BoxCoder(weights=SSD_WEIGHTS)
    model.neg_to_pos_ratio = 3.0
    model.score_thresh, model.nms_thresh = 0.01, 0.45
    model.topk_candidates, model.detections_per_img = 200, 100
    return model


def _train_step_ms(model, images, targets) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    return time_ms(step, min_run_time=3.0)


def run() -> list[Row]:
    torch.manual_seed(0)
    data = ShapesDataset(BATCH, seed=0)
    images = [image for image, _ in data]
    targets = [target for _, target in data]
    model = build_ssd(4)
    with torch.no_grad():
        cls_logits, box_deltas, priors = model.head_outputs(images)
    tv = _torchvision_ssd_parts()
    gt = targets[0]["boxes"]
    rows = [
        Row(
            f"SSD matching ({len(priors)} priors x {len(gt)} objects)",
            time_ms(lambda: match_priors(priors, gt)),
            time_ms(lambda: det_utils.SSDMatcher(0.5)(box_iou(gt, priors))),
            note="greedy bipartite best-prior step vs torchvision's argmax per object",
        )
    ]
    matched = [match_priors(priors, t["boxes"]) for t in targets]
    labels, deltas = (
        torch.stack(v)
        for v in zip(
            *(prior_targets(priors, t["boxes"], t["labels"]) for t in targets), strict=True
        )
    )
    head = {"cls_logits": cls_logits, "bbox_regression": box_deltas}
    rows.append(
        Row(
            f"multibox loss ({BATCH} x {len(priors)} priors, targets given)",
            time_ms(lambda: multibox_loss(cls_logits, box_deltas, labels, deltas)),
            time_ms(lambda: tv.compute_loss(targets, head, [priors] * BATCH, matched)),
            note="per-image hard negative mining, / N; torchvision encodes its targets inside",
        )
    )
    rows.append(
        Row(
            "SSD decode + per-class NMS (1 image, untrained head)",
            time_ms(lambda: decode_detections(cls_logits[0], box_deltas[0], priors, (128, 128))),
            time_ms(
                lambda: tv.postprocess_detections(
                    {"cls_logits": cls_logits[:1], "bbox_regression": box_deltas[:1]},
                    [priors],
                    [(128, 128)],
                )
            ),
            note="pure-torch batched_nms vs torchvision's C++ NMS",
        )
    )
    ssdlite = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4
    )
    rows.append(
        Row(
            f"training step, batch {BATCH}: small SSD (128 px) vs ssdlite320 (320 px)",
            _train_step_ms(model, images, targets),
            _train_step_ms(ssdlite, images, targets),
            note="forward + loss + backward + SGD step; see benchmarks/train_ssd.py for mAP",
        )
    )
    return rows
