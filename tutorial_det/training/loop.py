"""``fit``: the training loop every lesson uses.

Lesson 09 takes it apart step by step; lessons 04 to 08 and 10 train with it.

Models follow torchvision's detection contract: in training mode ``model(images, targets)``
returns a dict of scalar losses, and the loss trained on is their sum.

One optimizer step of ``fit``, in order:

1. take the next batch and move it to the device;
2. forward pass, under autocast when mixed precision is on;
3. average the loss terms over the processes (torch.distributed) and stop with
   :class:`NonFiniteLossError` if any is NaN or infinite, before the weights are touched;
4. backward pass (through the GradScaler for float16);
5. clip the gradient norm (optional), optimizer step, scheduler step (when stepping per step);
6. record the step in the :class:`History`, log, evaluate and checkpoint when due.

When training stops on an exception (a corrupt image, a NaN loss, Ctrl-C), the steps trained
since the last checkpoint are saved first (one process only), and a note on the exception says
which step the checkpoint holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from tutorial_det.runtime import seed_everything
from tutorial_det.training import distributed
from tutorial_det.training.batches import (
    BatchSource,
    batch_source,
    check_batch,
    images_to,
    targets_to,
)
from tutorial_det.training.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng,
    load_checkpoint,
    remove_temporary_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tutorial_det.training.history import History

CHECKPOINT_NAME = "last.pt"
#: cuBLAS's workspace setting for reproducible matrix products (``fit(deterministic=True)``).
CUBLAS_DETERMINISTIC = ":4096:8"


class NonFiniteLossError(FloatingPointError):
    """Training stopped because a loss (or the gradient norm) became NaN or infinite.

    Attributes:
        step: the step whose batch produced it (global, from 1).
        values: the loss terms (or ``{"grad_norm": ...}``) at that step.
    """

    def __init__(self, message: str, step: int, values: dict[str, float]):
        super().__init__(message)
        self.step = step
        self.values = values


@dataclass(frozen=True)
class _Settings:
    """The arguments of :func:`fit` that shape the loop (see its docstring)."""

    epochs: int | None
    max_steps: int | None
    max_seconds: float | None
    scheduler_interval: str
    grad_clip_norm: float | None
    checkpoint_dir: Path | None
    checkpoint_every: int
    eval_fn: Callable[[nn.Module], Mapping[str, Any]] | None
    eval_every: int | None
    log_every: int | None
    progress: bool
    seed: int
    batch_size: int | None  # for a data set only: with the next two, fixes the data order
    data_length: int | None


def _native_bf16() -> bool:
    """True when the GPU computes in bfloat16 natively (Ampere and later). Older GPUs emulate it
    (slowly), and ``torch.cuda.is_bf16_supported()`` counts emulation unless told not to."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def _resolve_amp(amp: bool | str | None, device: torch.device) -> str | None:
    """``None`` (no autocast), ``"bf16"`` or ``"fp16"`` for the requested ``amp`` on ``device``.

    bfloat16 has float32's range, so it needs no loss scaling; float16 overflows above 65504 and
    its small gradients underflow, so it runs only on CUDA and always with a GradScaler.
    """
    if amp is False or amp == "off":
        return None
    if amp not in (None, True, "bf16", "fp16"):
        raise ValueError(f"amp must be None, False, True, 'bf16' or 'fp16', got {amp!r}")
    if device.type == "cuda":
        if amp in (None, True):
            return "bf16" if _native_bf16() else "fp16"
        return amp
    if amp is None:
        return None
    if device.type == "cpu" and amp in (True, "bf16"):
        return "bf16"
    raise ValueError(
        f"amp={amp!r} on {device}: float16 autocast is used on CUDA only (with a GradScaler), "
        "bfloat16 on CUDA and the CPU; leave amp=None to choose automatically"
    )


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of ``fit`` (the settings before are restored)."""
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    # cuBLAS is deterministic only with a fixed workspace per stream (NVIDIA's cuBLAS notes).
    # PyTorch reads this once, at the process's first matrix product on a GPU: set here, it
    # only counts when fit makes that first product.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    except RuntimeError as error:
        if "CUBLAS_WORKSPACE_CONFIG" not in str(error):
            raise
        raise RuntimeError(
            "fit(deterministic=True) on CUDA needs CUBLAS_WORKSPACE_CONFIG="
            f"{CUBLAS_DETERMINISTIC} from the process's first matrix product on the GPU, and "
            "this process had multiplied matrices before fit could set it: export "
            f"CUBLAS_WORKSPACE_CONFIG={CUBLAS_DETERMINISTIC} before starting Python (or the "
            "notebook's kernel)"
        ) from error
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


def _check_positive(name: str, value: Any, kind: type = int) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, kind) or not value > 0
    ):
        raise ValueError(f"{name} must be a positive {kind.__name__} or None, got {value!r}")


@contextlib.contextmanager
def _isolated_rng(device: torch.device) -> Iterator[None]:
    """Restore every global generator on exit, so that evaluation (which may draw random
    numbers) leaves the training run's random stream exactly where it was."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _format_terms(terms: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={value:.4g}" for name, value in terms.items())


class _Trainer:
    """The state of one ``fit`` call: counters, history, and the step, evaluation, checkpoint
    and resume logic."""

    def __init__(self, model, optimizer, scheduler, device, amp, ctx, settings: _Settings):
        self.model = model
        self.train_model: nn.Module = model  # the DDP wrapper under torch.distributed
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.amp = amp
        self.ctx = ctx
        self.settings = settings
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.step = 0
        self.epoch = 0
        self.position = 0  # batches of the current epoch already trained on (per process)
        self.elapsed_before = 0.0  # wall time of the runs this one resumes
        self.start_time = time.perf_counter()
        self.history = History(device=str(device), amp=amp, world_size=ctx.world_size)
        self.last_eval_step = -1
        self.last_save_step = -1
        self.last_log = (0, 0.0)  # (step, wall time) of the last log line
        self.bar = None
        self.updating = False  # between the optimizer step and the step's bookkeeping
        self.rng_after_step: tuple | None = None  # the generators' states after the last step

    # -------------------------------------------------------------- the loop
    def run(self, source: BatchSource, resumed_from: Path | None) -> None:
        s = self.settings
        total = s.max_steps
        if source.steps_per_epoch is not None and s.epochs is not None:
            total = min(s.epochs * source.steps_per_epoch, s.max_steps or math.inf)
        self.bar = tqdm(
            total=total,
            initial=self.step,
            unit="step",
            disable=not (s.progress and self.ctx.is_main),
            dynamic_ncols=True,
        )
        processes = f"{self.ctx.world_size} process{'es' if self.ctx.enabled else ''}"
        per_epoch = (
            f"{source.steps_per_epoch} steps per epoch"
            if source.steps_per_epoch
            else f"{source.kind} batches"
        )
        resumed = f"; resumed from {resumed_from} at step {self.step}" if resumed_from else ""
        self.say(
            f"training on {self.device} ({processes}), amp {self.amp or 'off'}, {per_epoch}{resumed}"
        )
        self.start_time = time.perf_counter()
        self.last_log = (self.step, self.elapsed_before)
        try:
            self._epochs(source)
            self.evaluate()
            self.save()
        except BaseException as error:
            self.save_after(error)
            raise
        finally:
            self.bar.close()

    def save_after(self, error: BaseException) -> None:
        """Training stopped on ``error``: checkpoint the steps trained since the last save, and
        note on ``error`` which step the checkpoint holds."""
        folder = self.settings.checkpoint_dir
        if folder is None or self.step == 0:
            return
        if self.ctx.enabled:
            error.add_note(
                f"no checkpoint written at step {self.step}: under torch.distributed the other "
                "processes cannot take part in a save"
            )
            return
        if self.updating:  # the weights have moved but the step is not counted: not resumable
            return
        if self.last_save_step != self.step:
            try:
                self.save(self.rng_after_step)
            except Exception as save_error:
                error.add_note(f"writing the checkpoint of step {self.step} failed: {save_error}")
                return
        error.add_note(f"{folder / CHECKPOINT_NAME} holds step {self.step}, the last one completed")

    def _epochs(self, source: BatchSource) -> None:
        s = self.settings
        stop = self.should_stop()
        while not stop and (s.epochs is None or self.epoch < s.epochs):
            skip = self.position if source.resumable else 0
            trained = 0
            fetched = time.perf_counter()
            for batch in source.epoch(self.epoch, skip):
                self.train_step(batch, time.perf_counter() - fetched)
                trained += 1
                stop = self.should_stop()
                if s.eval_every is not None and self.step % s.eval_every == 0:
                    self.evaluate()
                if self.step % s.checkpoint_every == 0:
                    self.save()
                if stop:
                    return
                fetched = time.perf_counter()
            if trained == 0 and skip == 0:
                raise ValueError(
                    f"train_data yielded no batch in epoch {self.epoch} (a generator is used "
                    "up after one pass: pass a data set, a re-iterable or a callable)"
                )
            self.end_epoch()
            if s.eval_every is None:
                self.evaluate()

    def should_stop(self) -> bool:
        s = self.settings
        if s.max_steps is not None and self.step >= s.max_steps:
            return True
        if s.max_seconds is None:
            return False
        # Every process must stop at the same step, so they agree on the clock.
        over_time = time.perf_counter() - self.start_time >= s.max_seconds
        return distributed.any_rank(over_time, self.ctx, self.device)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.position = 0
        if self.scheduler is not None and self.settings.scheduler_interval == "epoch":
            self.scheduler.step()

    # -------------------------------------------------------------- one step
    def train_step(self, batch, data_time: float) -> None:
        step = self.step + 1
        images, targets = check_batch(batch, f"step {step}")
        images, targets = images_to(images, self.device), targets_to(targets, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast(
                self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16
            )
            if self.amp
            else contextlib.nullcontext()
        )
        with autocast:
            losses = self.train_model(images, targets)
        names, stacked = self._check_losses(losses, step)
        total = stacked.sum()
        if not total.requires_grad:
            raise ValueError(
                f"step {step}: no loss term requires grad: the losses are not connected to any "
                "trainable parameter (all frozen, or computed under torch.no_grad?)"
            )
        local = stacked.detach()
        terms = dict(zip(names, distributed.mean_over_ranks(local, self.ctx).tolist(), strict=True))
        if not all(math.isfinite(v) for v in terms.values()):
            self._raise_non_finite(step, terms, dict(zip(names, local.tolist(), strict=True)))
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.settings.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip_norm)
            grad_norm = float(norm)
            if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
                raise NonFiniteLossError(
                    f"the gradient norm is {grad_norm} at step {step} although the losses are "
                    f"finite ({_format_terms(terms)}): some operation's backward pass overflowed",
                    step,
                    {"grad_norm": grad_norm},
                )
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.updating = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and self.settings.scheduler_interval == "step":
            self.scheduler.step()
        self.step, self.position = step, self.position + 1
        self.history.record_step(
            step, self.epoch, terms, lr, self.wall_time(), data_time, grad_norm
        )
        self.updating = False
        self.rng_after_step = capture_rng()  # cheap; a failure later saves these states
        self._log_step()

    def _check_losses(self, losses, step: int) -> tuple[list[str], torch.Tensor]:
        """The loss terms' names and their values stacked into one float32 ``[T]`` tensor."""
        if not isinstance(losses, Mapping):
            raise TypeError(
                f"step {step}: in training mode the model must return a dict of scalar losses, "
                f"got {type(losses).__name__} (was it left in eval mode, or called without targets?)"
            )
        if not losses:
            raise ValueError(f"step {step}: the model returned an empty dict of losses")
        names, values = [], []
        for name, value in losses.items():
            if not (isinstance(value, torch.Tensor) and value.numel() == 1):
                shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise TypeError(
                    f"step {step}: loss term {name!r} must be a scalar tensor, got {shape}"
                )
            names.append(str(name))
            values.append(value.reshape(()).float())
        return names, torch.stack(values)

    def _raise_non_finite(self, step: int, terms: dict, local: dict) -> None:
        where = f"step {step} (epoch {self.epoch}, batch {self.position + 1} of the epoch)"
        message = f"the loss is not finite at {where}: {_format_terms(terms)}"
        if self.ctx.enabled:
            message += (
                f" (mean over {self.ctx.world_size} processes; on rank {self.ctx.rank}: "
                f"{_format_terms(local)})"
            )
        message += (
            ". Usual causes: a learning rate too high (look at the last steps' losses in the "
            "history), boxes with zero width or height, labels out of range, or images not scaled "
            "to [0, 1]. The weights are those after the previous step."
        )
        raise NonFiniteLossError(message, step, terms)

    # -------------------------------------------------------------- bookkeeping
    def wall_time(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start_time

    def say(self, message: str) -> None:
        if self.ctx.is_main and self.settings.log_every is not None:
            if self.bar is not None and not self.bar.disable:
                self.bar.write(message)
            else:
                print(message, flush=True)

    def _log_step(self) -> None:
        h = self.history
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{h.loss[-1]:.4g}", lr=f"{h.lr[-1]:.3g}", refresh=False)
        every = self.settings.log_every
        if every is None or self.step % every:
            return
        since_step, since_time = self.last_log
        n = self.step - since_step  # steps since the last line (fewer than every after a resume)
        rate = n / max(h.wall_time[-1] - since_time, 1e-9)
        mean = {k: sum(v[-n:]) / n for k, v in h.terms.items()}
        self.say(
            f"step {self.step} epoch {self.epoch}: loss {sum(h.loss[-n:]) / n:.4g} "
            f"({_format_terms(mean)}) lr {h.lr[-1]:.3g}, {rate:.3g} steps/s",
        )
        self.last_log = (self.step, h.wall_time[-1])

    def evaluate(self) -> None:
        eval_fn = self.settings.eval_fn
        if eval_fn is None or self.last_eval_step == self.step:
            return
        metrics = None
        if self.ctx.is_main:
            with _isolated_rng(self.device), torch.no_grad():
                result = eval_fn(self.model)
            self.model.train()
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"eval_fn must return a dict of numbers, got {type(result).__name__}"
                )
            metrics = {}
            for name, value in result.items():
                try:
                    metrics[str(name)] = float(value)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"eval_fn returned {name!r} = {value!r}, which is not a number"
                    ) from None
        metrics = distributed.broadcast_object(metrics, self.ctx)
        epoch = self.history.epoch[-1] if self.history.epoch else self.epoch  # the last step's
        self.history.record_metrics(self.step, epoch, metrics)
        self.last_eval_step = self.step
        self.say(f"step {self.step} epoch {epoch}: {_format_terms(metrics)}")

    # -------------------------------------------------------------- checkpoints
    def state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything a resumed run needs; ``rng`` holds every process's generator states."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.settings.seed,
            "batch_size": self.settings.batch_size,
            "world_size": self.ctx.world_size,
            "data_length": self.settings.data_length,
            "elapsed": self.wall_time(),
            "rng": rng,
            "history": self.history.state_dict(),
        }

    def save(self, captured: tuple | None = None) -> None:
        """Write the checkpoint (rank 0) with the generators' states, those ``captured`` by
        :func:`capture_rng` or the current ones."""
        folder = self.settings.checkpoint_dir
        if folder is None or self.last_save_step == self.step:
            return
        rng = distributed.gather_objects(rng_state(captured), self.ctx)  # every process takes part
        if self.ctx.is_main:
            path = save_checkpoint(self.state(rng), folder / CHECKPOINT_NAME)
            self.say(f"step {self.step}: checkpoint written to {path}")
        distributed.barrier(self.ctx)
        self.last_save_step = self.step

    def restore(self, path: Path, source: BatchSource) -> None:
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a checkpoint written by tutorial_det.training.fit")
        now = {
            "seed": self.settings.seed,
            "batch_size": self.settings.batch_size,
            "data_length": self.settings.data_length,
            "world_size": self.ctx.world_size,
        }
        mismatched = [
            f"{key} {ckpt[key]!r} in the checkpoint, {value!r} now"
            for key, value in now.items()
            if ckpt[key] != value
        ]
        if mismatched:
            raise ValueError(
                f"cannot resume exactly from {path}: {'; '.join(mismatched)}. The data order "
                "depends on these; resume with the same values, or start a new run from the "
                "weights with load_partial_state_dict"
            )
        if (ckpt["scheduler"] is None) != (self.scheduler is None):
            raise ValueError(
                f"{path} was written {'without' if ckpt['scheduler'] is None else 'with'} a "
                "learning-rate scheduler; resume with the same setup"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"] is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.position = ckpt["step"], ckpt["epoch"], ckpt["position"]
        self.elapsed_before = ckpt["elapsed"]
        self.history = History.from_state_dict(ckpt["history"])
        self.history.device, self.history.amp = str(self.device), self.amp
        self.last_eval_step = self.history.metrics[-1]["step"] if self.history.metrics else -1
        self.last_save_step = self.step
        if not source.resumable and self.position:
            warnings.warn(
                f"resuming at step {self.step} (epoch {self.epoch}) from {source.kind} batches, "
                "which cannot be rewound: the data continue from wherever the source is "
                "(exact resume needs a map-style data set)",
                stacklevel=3,
            )
            self.position = 0
        set_rng_state(ckpt["rng"][self.ctx.rank])


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    batch_size: int = 4,
    collate_fn: Callable | None = None,
    shuffle: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "step",
    device: str | torch.device | None = None,
    amp: bool | str | None = None,
    grad_clip_norm: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool | str | os.PathLike = False,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    log_every: int | None = 50,
    progress: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    deterministic: bool = False,
    ddp_kwargs: dict[str, Any] | None = None,
) -> History:
    """Train a detection model; return the :class:`History` of the run.

    Training stops at whichever comes first of ``epochs``, ``max_steps`` (both counted from the
    start of training, so a resumed run stops where the uninterrupted one would) and
    ``max_seconds`` (wall time of this call). At least one must be given.

    Args:
        model: a torchvision-style detection model (see the module docstring); moved to ``device``
            and trained in place.
        train_data: a map-style data set of ``(image, target)`` items, an iterable of ready
            ``(images, targets)`` batches (one pass = one epoch), or a callable returning a ready
            batch per call (no epochs). See :mod:`tutorial_det.training.batches`.
        optimizer: built on the model's parameters (for example from
            :func:`~tutorial_det.training.param_groups`).
        batch_size: images per batch and per process, for a data set.
        collate_fn: turns a list of items into a batch (default: lists of images and targets).
        shuffle: shuffle a data set each epoch (seeded by ``seed`` and the epoch).
        scheduler: a learning-rate scheduler on ``optimizer``, stepped after every optimizer step
            (``scheduler_interval="step"``) or after every epoch (``"epoch"``). A schedule written
            in epochs (``lambda epoch: 0.95 ** epoch``) must use ``"epoch"``; stepping it every
            batch decays the rate once per batch.
        device: where to train; default :func:`~tutorial_det.runtime.pick_device`. Under torchrun
            ``cuda`` (or ``cuda:0``) becomes ``cuda:LOCAL_RANK``, one GPU per process.
        amp: mixed precision (autocast). ``None``: on CUDA, bfloat16 where the GPU computes it
            natively (Ampere and later), else float16 with a GradScaler; off on the CPU and MPS.
            ``False``: off. ``True``: that same choice on CUDA, bfloat16 on the CPU.
            ``"bf16"``: bfloat16 (CUDA or CPU). ``"fp16"``: float16 with a GradScaler (CUDA
            only). A ValueError for any other combination. The detectors keep box coordinates,
            IoUs and box coding in float32 under autocast (tested in both half types).
        grad_clip_norm: clip the total gradient norm to this value (the norm before clipping goes
            into ``history.grad_norm``).
        checkpoint_dir: folder for ``last.pt``, written atomically every ``checkpoint_every`` steps,
            at the end, and when training stops on an exception (rank 0 only; temporary files
            that a killed run left there are removed first).
        resume: ``True``: continue from ``checkpoint_dir/last.pt`` if it exists (else start
            afresh); a path: continue from that file. Model, optimizer, scheduler, GradScaler, the
            step, the epoch and the position in it, every random generator and the data order are
            restored. With a data set, on the CPU, the resumed run ends with exactly the weights
            of an uninterrupted one (with ``num_workers > 0`` too, when the items depend only on
            their index, as the synthetic data sets' do). On CUDA the same holds with
            ``deterministic=True``; without it, some kernels (the backward of ``index_select``,
            of convolutions, of RoIAlign) add in a varying order, so a resumed run, like any
            second run, ends as close to the uninterrupted one as two uninterrupted runs end to
            each other, not bit for bit. Resume on the device and in the precision (``amp``) the
            run started with.
        eval_fn: ``eval_fn(model) -> {"name": number}``, called (rank 0, under ``torch.no_grad``,
            without disturbing the training run's random stream) every ``eval_every`` steps, or
            at the end of each epoch when ``eval_every`` is None, and at the end of training.
        log_every: print a line of mean losses every this many steps (None: silent).
        progress: show a tqdm progress bar (rank 0 only).
        seed: seeds Python, NumPy and torch (``seed + rank`` on each process) and the data order.
        num_workers: DataLoader worker processes for a data set.
        deterministic: run with deterministic kernels (``torch.use_deterministic_algorithms``,
            cuDNN benchmarking off; the previous settings are restored on return): two runs, or a
            run and its resumed twin, then give the same weights bit for bit on CUDA too. cuBLAS
            also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which PyTorch reads at the process's
            first matrix product on a GPU: fit sets it when it is unset, which is in time when
            fit makes that first product; otherwise export it before starting Python (fit
            raises a RuntimeError saying so). It costs speed on CUDA (deterministic scatter-adds
            and convolution algorithms; the README's GPU section gives the measured cost) and
            nothing on the CPU, whose kernels are deterministic already. An operation with no
            deterministic CUDA kernel raises a RuntimeError naming it.
        ddp_kwargs: extra arguments for DistributedDataParallel (``find_unused_parameters=True``
            for a model that leaves some parameters unused in a step).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this same call: the process group
    is joined (NCCL on CUDA, Gloo on the CPU), the model is wrapped in DistributedDataParallel,
    each process trains on its own shard of every epoch, gradients are averaged over the
    processes, and the history holds the losses averaged over them. Averaging gradients equals
    training on the combined batch when each process's loss is a mean over its batch.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite (the message names the step and terms).
        ValueError, TypeError: an argument is inconsistent; the message says which.
    """
    if epochs is None and max_steps is None and max_seconds is None:
        raise ValueError("give at least one of epochs, max_steps and max_seconds")
    for name, value in (
        ("epochs", epochs),
        ("max_steps", max_steps),
        ("checkpoint_every", checkpoint_every),
        ("eval_every", eval_every),
        ("log_every", log_every),
    ):
        _check_positive(name, value)
    _check_positive("max_seconds", None if max_seconds is None else float(max_seconds), float)
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(
            f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}"
        )
    if grad_clip_norm is not None and not grad_clip_norm > 0:
        raise ValueError(f"grad_clip_norm must be positive or None, got {grad_clip_norm}")
    if resume and checkpoint_dir is None and not isinstance(resume, str | os.PathLike):
        raise ValueError("resume=True needs checkpoint_dir (or pass the checkpoint's path)")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    own = {id(p) for p in model.parameters()}
    if any(id(p) not in own for g in optimizer.param_groups for p in g["params"]):
        raise ValueError("optimizer holds parameters that are not the model's: build it on model")
    if scheduler is not None:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise TypeError(
                "ReduceLROnPlateau needs a metric at each step; fit does not support it"
            )
        if scheduler.optimizer is not optimizer:
            raise ValueError("scheduler was built on another optimizer than the one given")

    ctx, device = distributed.setup(device)
    try:
        with _deterministic(deterministic):
            amp_mode = _resolve_amp(amp, device)
            source = batch_source(
                train_data,
                batch_size=batch_size,
                collate_fn=collate_fn,
                shuffle=shuffle,
                seed=seed,
                rank=ctx.rank,
                world_size=ctx.world_size,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
            if source.kind == "callable" and (epochs is not None or scheduler_interval == "epoch"):
                raise ValueError(
                    "a callable batch source has no epochs: use max_steps or max_seconds, and "
                    "scheduler_interval='step'"
                )
            settings = _Settings(
                epochs=epochs,
                max_steps=max_steps,
                max_seconds=max_seconds,
                scheduler_interval=scheduler_interval,
                grad_clip_norm=grad_clip_norm,
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
                checkpoint_every=checkpoint_every,
                eval_fn=eval_fn,
                eval_every=eval_every,
                log_every=log_every,
                progress=progress,
                seed=seed,
                batch_size=batch_size if source.kind == "dataset" else None,
                data_length=len(train_data) if source.kind == "dataset" else None,
            )
            model.to(device)
            trainer = _Trainer(model, optimizer, scheduler, device, amp_mode, ctx, settings)
            if ctx.is_main and settings.checkpoint_dir is not None:
                for path in remove_temporary_files(settings.checkpoint_dir, (CHECKPOINT_NAME,)):
                    trainer.say(f"removed {path}, left behind by an interrupted checkpoint write")
            resume_path = _resume_path(resume, checkpoint_dir, ctx)
            if resume_path is None:
                seed_everything(seed + ctx.rank)
            else:
                trainer.restore(resume_path, source)  # restores the RNG states last
            model.train()
            if ctx.enabled:
                device_ids = [device.index] if device.type == "cuda" else None
                trainer.train_model = DistributedDataParallel(
                    model, device_ids=device_ids, **(ddp_kwargs or {})
                )
            trainer.run(source, resume_path)
            return trainer.history
    finally:
        distributed.teardown(ctx)


def _resume_path(resume, checkpoint_dir, ctx) -> Path | None:
    """The checkpoint to resume from, decided on rank 0 and shared with every process."""
    if not resume:
        return None
    explicit = isinstance(resume, str | os.PathLike)
    path = Path(resume) if explicit else Path(checkpoint_dir) / CHECKPOINT_NAME
    if not distributed.broadcast_object(path.is_file(), ctx):
        if explicit:
            raise FileNotFoundError(f"resume={str(resume)!r}: no checkpoint there")
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"rank {ctx.rank} cannot see {path}, which rank 0 can: put checkpoint_dir on a file "
            "system shared by every machine"
        )
    return path
