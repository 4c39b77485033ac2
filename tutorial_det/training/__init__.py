"""Training and evaluating detectors: the loop every lesson uses.

* :func:`fit` trains a torchvision-style detection model: mixed precision on CUDA, gradient
  clipping, learning-rate schedules stepped per step or per epoch, a progress bar, a stop with the
  step and loss terms named when a loss turns NaN, atomic checkpoints and exact resume, and
  DistributedDataParallel under ``torchrun``; it returns a :class:`History`.
* :func:`evaluate` collects a model's predictions and the ground truth over a data set;
  :func:`evaluate_map` turns them into mean average precision (a ready ``eval_fn`` for ``fit``).
* :func:`freeze`, :func:`param_groups` and :func:`load_partial_state_dict` set up fine-tuning.
* :func:`save_checkpoint` / :func:`load_checkpoint` write atomically and read with
  ``weights_only=True``.
"""

from tutorial_det.training.checkpoint import load_checkpoint, save_checkpoint
from tutorial_det.training.finetune import (
    PartialLoadReport,
    freeze,
    load_partial_state_dict,
    param_groups,
)
from tutorial_det.training.history import History
from tutorial_det.training.inference import evaluate, evaluate_map
from tutorial_det.training.loop import CHECKPOINT_NAME, NonFiniteLossError, fit

__all__ = [
    "CHECKPOINT_NAME",
    "History",
    "NonFiniteLossError",
    "PartialLoadReport",
    "evaluate",
    "evaluate_map",
    "fit",
    "freeze",
    "load_checkpoint",
    "load_partial_state_dict",
    "param_groups",
    "save_checkpoint",
]
