"""tutorial_det.training: the loop and its history, non-finite stops, atomic checkpoints, exact
resume, schedulers per step and per epoch, batch sources, fine-tuning helpers, evaluate, curves."""

from __future__ import annotations

import functools
import io
import itertools
import os
import random

import matplotlib
import numpy as np
import pytest
import torch
import torchvision
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from training_fixtures import TinyDetector, TinyShapes, state_equal, tiny_setup

from tutorial_det.data.collate import detection_collate
from tutorial_det.training import (
    CHECKPOINT_NAME,
    History,
    NonFiniteLossError,
    evaluate,
    evaluate_map,
    fit,
    freeze,
    load_checkpoint,
    load_partial_state_dict,
    param_groups,
    save_checkpoint,
)
from tutorial_det.training import checkpoint as checkpoint_module
from tutorial_det.training import loop as loop_module
from tutorial_det.viz.training import plot_history, smooth_curve

matplotlib.use("Agg")

QUIET = {"progress": False, "log_every": None}


def first_batch_losses(model, data, order, batch_size):
    """The model's losses on the first batch of ``order``, computed outside fit."""
    images, targets = detection_collate([data[i] for i in order[:batch_size]])
    model.train()
    return {k: v.item() for k, v in model(images, targets).items()}


# --------------------------------------------------------------------------- the loop, history


def test_history_records_every_step_term_and_metric():
    data = TinyShapes(10)
    model, optimizer = tiny_setup()
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    expected_first = first_batch_losses(tiny_setup()[0], data, order, 4)
    calls = []

    def eval_fn(m):
        calls.append((m.training, torch.is_grad_enabled()))
        return {"score": float(len(calls)), "count": torch.tensor(7)}

    h = fit(model, data, optimizer=optimizer, epochs=3, batch_size=4, eval_fn=eval_fn, **QUIET)

    assert h.step == list(range(1, 10))
    assert h.epoch == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # 10 items, batches of 4: 3 steps per epoch
    assert set(h.terms) == {"loss_box", "loss_cls"}
    for i in range(9):
        assert h.loss[i] == pytest.approx(h.terms["loss_box"][i] + h.terms["loss_cls"][i])
    # step 1 trains on the first 4 items of the epoch-0 shuffle seeded with seed + epoch = 0
    assert {k: v[0] for k, v in h.terms.items()} == pytest.approx(expected_first, rel=1e-6)
    assert h.lr == [0.1] * 9
    assert h.grad_norm == []
    assert all(b > a for a, b in itertools.pairwise(h.wall_time))
    assert all(t >= 0 for t in h.data_time)
    assert h.steps_per_second > 0
    assert (h.device, h.amp, h.world_size) == ("cpu", None, 1)
    # evaluated at the end of each epoch, with the epoch just finished, under no_grad
    assert h.metrics == [
        {"step": 3, "epoch": 0, "score": 1.0, "count": 7.0},
        {"step": 6, "epoch": 1, "score": 2.0, "count": 7.0},
        {"step": 9, "epoch": 2, "score": 3.0, "count": 7.0},
    ]
    assert all(grad is False for _, grad in calls)
    assert h.metric("score") == ([3, 6, 9], [1.0, 2.0, 3.0])
    with pytest.raises(KeyError, match="'map'.*'count', 'score'"):
        h.metric("map")
    assert model.training
    assert sum(h.loss[-3:]) < sum(h.loss[:3])  # it learns
    assert "9 steps" in repr(h) and "score=3" in repr(h)


def test_eval_every_and_the_final_evaluation():
    model, optimizer = tiny_setup()
    h = fit(
        model,
        TinyShapes(10),
        optimizer=optimizer,
        max_steps=5,
        batch_size=4,
        eval_every=2,
        eval_fn=lambda m: {"one": 1},
        **QUIET,
    )
    assert [m["step"] for m in h.metrics] == [2, 4, 5]


def test_fit_is_reproducible_and_the_seed_sets_the_data_order(device):
    runs = []
    for seed in (0, 0, 1):
        model, optimizer = tiny_setup(dropout=0.3)
        data = TinyShapes(10)
        kwargs = {"epochs": 2, "batch_size": 4, "seed": seed, "device": device}
        fit(model, data, optimizer=optimizer, deterministic=True, **kwargs, **QUIET)
        runs.append(model)
    assert state_equal(runs[0], runs[1])
    assert not state_equal(runs[0], runs[2])


def test_worker_processes_give_the_same_run():
    models = []
    for num_workers in (0, 2):
        model, optimizer = tiny_setup()
        data = TinyShapes(10)
        fit(model, data, optimizer=optimizer, epochs=2, num_workers=num_workers, **QUIET)
        models.append(model)
    assert state_equal(*models)


def test_evaluation_leaves_the_training_run_unchanged():
    """eval_fn may draw random numbers and switch modes: the training run must not notice."""

    def noisy_eval(m):
        m.eval()
        torch.rand(100), random.random(), np.random.rand()
        return {"x": 0.0}

    models = []
    for eval_fn in (None, noisy_eval):
        model, optimizer = tiny_setup(dropout=0.3)
        data = TinyShapes(10, augment=True)
        fit(model, data, optimizer=optimizer, epochs=2, batch_size=4, eval_fn=eval_fn, **QUIET)
        models.append(model)
    assert state_equal(*models)


class GoesBadAtStep3(TinyDetector):
    """Multiplies its classification loss by ``bad`` on its third training call."""

    bad = float("nan")
    calls = 0

    def forward(self, images, targets=None):
        out = super().forward(images, targets)
        self.calls += 1
        if self.calls == 3:
            out["loss_cls"] = out["loss_cls"] * self.bad
        return out


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_naming_the_step_and_terms(bad):
    model, optimizer = tiny_setup(model_cls=GoesBadAtStep3)
    model.bad = bad
    with pytest.raises(
        NonFiniteLossError, match=r"step 3 \(epoch 0, batch 3 .*loss_box=0\.\d+, loss_cls=(nan|inf)"
    ) as info:
        fit(model, TinyShapes(20), optimizer=optimizer, max_steps=5, batch_size=4, **QUIET)
    assert info.value.step == 3
    assert not np.isfinite(info.value.values["loss_cls"])
    assert np.isfinite(info.value.values["loss_box"])
    # the bad batch changed nothing: the weights are those after step 2
    reference, ref_optimizer = tiny_setup()
    fit(reference, TinyShapes(20), optimizer=ref_optimizer, max_steps=2, batch_size=4, **QUIET)
    assert state_equal(model, reference)


def test_a_non_finite_gradient_norm_stops_too():
    class SqrtOfZero(TinyDetector):
        def forward(self, images, targets=None):
            out = super().forward(images, targets)
            # finite loss (0), infinite derivative of sqrt at 0 times 0: a NaN gradient
            out["loss_sqrt"] = torch.sqrt(self.box_head.weight.sum() * 0)
            return out

    model = SqrtOfZero()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="gradient norm is nan at step 1") as info:
        fit(model, TinyShapes(8), optimizer=optimizer, max_steps=2, grad_clip_norm=1.0, **QUIET)
    assert info.value.step == 1


def test_gradient_clipping_records_the_norm_before_clipping():
    model, optimizer = tiny_setup()
    h = fit(model, TinyShapes(8), optimizer=optimizer, max_steps=3, grad_clip_norm=1e-3, **QUIET)
    assert len(h.grad_norm) == 3 and all(n > 1e-3 for n in h.grad_norm)
    # the first step's update is the clipped gradient times the learning rate
    fresh, _ = tiny_setup()
    images, targets = detection_collate(
        [
            TinyShapes(8)[i]
            for i in torch.randperm(8, generator=torch.Generator().manual_seed(0))[:4].tolist()
        ]
    )
    fresh.train()
    sum(fresh(images, targets).values()).backward()
    grads = torch.cat([p.grad.flatten() for p in fresh.parameters()])
    assert float(grads.norm()) == pytest.approx(h.grad_norm[0], rel=1e-5)


# --------------------------------------------------------------------------- schedulers, AMP


@pytest.mark.parametrize(
    "interval, factors",
    [
        ("epoch", [1, 1, 1, 0.5, 0.5, 0.5]),  # the schedule decays once per epoch, as written
        ("step", [1, 0.5, 0.25, 0.125, 0.0625, 0.03125]),  # the same lambda stepped every batch
    ],
)
def test_the_scheduler_steps_per_step_or_per_epoch(interval, factors):
    model, optimizer = tiny_setup(lr=1e-3)
    scheduler = LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    h = fit(
        model,
        TinyShapes(6),
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_interval=interval,
        epochs=2,
        batch_size=2,
        **QUIET,
    )
    assert h.lr == pytest.approx([1e-3 * f for f in factors])
    assert scheduler.last_epoch == (2 if interval == "epoch" else 6)


class AutocastSpy(TinyDetector):
    """Records, at each forward call, whether CPU autocast is on and the dtype a convolution
    gives."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, images, targets=None):
        conv = self.backbone(images[0][None])
        self.seen.append((torch.is_autocast_enabled("cpu"), conv.dtype))
        return super().forward(images, targets)


def test_amp_on_the_cpu_is_off_unless_bfloat16_is_asked_for():
    model = AutocastSpy()

    def run(**kwargs):
        model.seen.clear()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return fit(model, TinyShapes(4), optimizer=optimizer, device="cpu", **kwargs, **QUIET)

    assert run(max_steps=2).amp is None
    assert model.seen == [(False, torch.float32)] * 2
    for amp in (True, "bf16"):
        h = run(max_steps=2, amp=amp)
        assert h.amp == "bf16" and model.seen == [(True, torch.bfloat16)] * 2
        assert np.isfinite(h.loss).all()
    with pytest.raises(ValueError, match="float16 autocast is used on CUDA only"):
        run(max_steps=1, amp="fp16")
    with pytest.raises(ValueError, match="amp must be"):
        run(max_steps=1, amp="fp32")


@pytest.mark.parametrize(
    "amp, native_bf16, expected",
    [
        (None, True, "bf16"),
        (None, False, "fp16"),  # a GPU before Ampere: bfloat16 would be emulated
        (True, False, "fp16"),
        ("bf16", False, "bf16"),
        ("fp16", True, "fp16"),
        (False, True, None),
        ("off", True, None),
    ],
)
def test_amp_on_cuda_prefers_native_bfloat16(monkeypatch, amp, native_bf16, expected):
    monkeypatch.setattr(loop_module, "_native_bf16", lambda: native_bf16)
    assert loop_module._resolve_amp(amp, torch.device("cuda")) == expected


def test_mixed_precision_trains_on_each_device(device):
    for amp in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
        model, optimizer = tiny_setup()
        h = fit(
            model, TinyShapes(8), optimizer=optimizer, max_steps=3, amp=amp, device=device, **QUIET
        )
        assert (h.amp, h.device) == (amp, str(device)) and np.isfinite(h.loss).all()
        assert all(p.device.type == device.type for p in model.parameters())


def test_a_late_cublas_setting_is_named_with_its_fix():
    """PyTorch reads CUBLAS_WORKSPACE_CONFIG at the first matrix product on a GPU and, in
    deterministic mode, refuses every later one when it was not set then: fit says what to do."""

    class LateCublas(TinyDetector):
        def forward(self, images, targets=None):
            raise RuntimeError(
                "Deterministic behavior was enabled with torch.use_deterministic_algorithms(True) "
                "... set CUBLAS_WORKSPACE_CONFIG=:4096:8 or CUBLAS_WORKSPACE_CONFIG=:16:8"
            )

    model, optimizer = tiny_setup(model_cls=LateCublas)
    with pytest.raises(RuntimeError, match="export CUBLAS_WORKSPACE_CONFIG=:4096:8 before start"):
        fit(model, TinyShapes(4), optimizer=optimizer, max_steps=1, deterministic=True, **QUIET)
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_mode_lasts_for_the_call_only(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []

    class Spy(TinyDetector):
        def forward(self, images, targets=None):
            seen.append(
                (
                    torch.are_deterministic_algorithms_enabled(),
                    torch.backends.cudnn.benchmark,
                    os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
                )
            )
            return super().forward(images, targets)

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    model, optimizer = tiny_setup(model_cls=Spy)
    fit(model, TinyShapes(4), optimizer=optimizer, max_steps=1, deterministic=True, **QUIET)
    assert seen == [(True, False, ":4096:8")]
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    fit(model, TinyShapes(4), optimizer=optimizer, max_steps=1, **QUIET)
    assert seen[-1][:2] == (False, True)


# --------------------------------------------------------------------------- batch sources


def test_an_iterable_of_batches_and_a_callable_train_like_the_data_set():
    data = TinyShapes(8)
    runs = {}
    model, optimizer = tiny_setup()
    fit(model, data, optimizer=optimizer, epochs=2, batch_size=4, shuffle=False, **QUIET)
    runs["dataset"] = model

    loader = DataLoader(
        data, batch_size=4, collate_fn=lambda items: tuple(zip(*items, strict=True))
    )
    model, optimizer = tiny_setup()
    h = fit(model, loader, optimizer=optimizer, epochs=2, **QUIET)
    assert h.epoch == [0, 0, 1, 1]
    runs["iterable"] = model

    batches = itertools.cycle(list(loader))
    model, optimizer = tiny_setup()
    h = fit(model, lambda: next(batches), optimizer=optimizer, max_steps=4, **QUIET)
    assert h.epoch == [0, 0, 0, 0]  # a callable has no epochs
    runs["callable"] = model

    assert state_equal(runs["dataset"], runs["iterable"])
    assert state_equal(runs["dataset"], runs["callable"])


def test_batch_source_mistakes_are_named():
    model, optimizer = tiny_setup()
    one_pass = (b for b in DataLoader(TinyShapes(8), batch_size=4, collate_fn=detection_collate))
    with pytest.raises(ValueError, match="no batch in epoch 1"):
        fit(model, one_pass, optimizer=optimizer, epochs=2, **QUIET)
    with pytest.raises(ValueError, match="callable batch source has no epochs"):
        fit(model, lambda: None, optimizer=optimizer, epochs=2, **QUIET)
    single_items = DataLoader(TinyShapes(8), batch_size=None)
    with pytest.raises(TypeError, match="step 1: batch images must be a list"):
        fit(model, single_items, optimizer=optimizer, max_steps=1, **QUIET)
    with pytest.raises(ValueError, match="empty data set"):
        fit(model, TinyShapes(0), optimizer=optimizer, max_steps=1, **QUIET)


def test_fit_names_bad_arguments():
    model, optimizer = tiny_setup()
    data = TinyShapes(4)
    with pytest.raises(ValueError, match="at least one of epochs, max_steps and max_seconds"):
        fit(model, data, optimizer=optimizer, **QUIET)
    with pytest.raises(ValueError, match="scheduler_interval must be 'step' or 'epoch'"):
        fit(model, data, optimizer=optimizer, max_steps=1, scheduler_interval="batch", **QUIET)
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        fit(model, data, optimizer=optimizer, max_steps=0, **QUIET)
    other, other_opt = tiny_setup()
    with pytest.raises(ValueError, match="not the model's"):
        fit(model, data, optimizer=other_opt, max_steps=1, **QUIET)
    with pytest.raises(ValueError, match="another optimizer"):
        fit(
            model,
            data,
            optimizer=optimizer,
            scheduler=LambdaLR(other_opt, lambda e: 1),
            max_steps=1,
            **QUIET,
        )
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        fit(model, data, optimizer=optimizer, max_steps=1, resume=True, **QUIET)

    class ReturnsAList(TinyDetector):
        def forward(self, images, targets=None):
            self.eval()
            return super().forward(images, targets)

    wrong = ReturnsAList()
    with pytest.raises(TypeError, match="step 1: in training mode the model must return a dict"):
        fit(
            wrong, data, optimizer=torch.optim.SGD(wrong.parameters(), lr=0.1), max_steps=1, **QUIET
        )


# --------------------------------------------------------------------------- checkpoints


class NotPlain:
    """An object torch.load(weights_only=True) refuses to rebuild."""


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "weights": torch.arange(1000.0)}, path)
    real_save = torch.save

    def write_half_then_fail(obj, f):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    kept = load_checkpoint(path)
    assert kept["step"] == 1 and torch.equal(kept["weights"], torch.arange(1000.0))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    # what an in-place write would have left: a truncated file that does not load
    torn = tmp_path / "torn.pt"
    buffer = io.BytesIO()
    real_save({"step": 2, "weights": torch.zeros(1000)}, buffer)
    torn.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(torn)


def test_checkpoints_hold_only_what_weights_only_loading_accepts(tmp_path):
    model, optimizer = tiny_setup(adam=True)
    scheduler = LambdaLR(optimizer, lambda s: 0.9**s)
    fit(
        model,
        TinyShapes(8),
        optimizer=optimizer,
        scheduler=scheduler,
        max_steps=3,
        checkpoint_every=2,
        checkpoint_dir=tmp_path,
        **QUIET,
    )
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 3 and state["epoch"] == 1 and state["position"] == 1
    assert state_equal_dicts(state["model"], model.state_dict())
    assert state["scheduler"]["last_epoch"] == 3
    rng = state["rng"][0]
    assert isinstance(rng["python"]["state"], torch.Tensor) and rng["python"]["state"].shape == (
        625,
    )
    assert isinstance(rng["numpy"]["keys"], torch.Tensor) and rng["numpy"]["keys"].shape == (624,)
    assert torch.equal(rng["torch"], torch.get_rng_state())
    assert state["history"]["step"] == [1, 2, 3]

    with pytest.raises(TypeError, match=r"checkpoint\['a'\]\['b'\]\[1\] is a .*NotPlain"):
        save_checkpoint({"a": {"b": [1, NotPlain()]}}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    torch.save({"a": NotPlain()}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def state_equal_dicts(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- exact resume

TOTAL_STEPS = 9  # TinyShapes(10) in batches of 3: 4 steps per epoch (3 + 3 + 3 + 1)


def resume_setup_run(init_seed=0, model_cls=TinyDetector, prepare=None, **fit_kwargs):
    """A fresh model (dropout), Adam and a per-step schedule, trained by ``fit`` on a data set
    whose augmentation draws from all three global generators; ``prepare(model, optimizer,
    scheduler)`` runs before ``fit``. Returns the model, optimizer, scheduler and history."""
    torch.manual_seed(init_seed)
    model = model_cls(dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = LambdaLR(optimizer, lambda s: 0.9**s)
    if prepare is not None:
        prepare(model, optimizer, scheduler)
    data = TinyShapes(10, augment=True)
    kwargs = {"batch_size": 3, "grad_clip_norm": 0.5, **QUIET, **fit_kwargs}
    h = fit(model, data, optimizer=optimizer, scheduler=scheduler, **kwargs)
    return model, optimizer, scheduler, h


def resume_and_compare(tmp_path, **fit_kwargs):
    reference, ref_opt, _, ref_h = resume_setup_run(max_steps=TOTAL_STEPS, **fit_kwargs)
    # a new process: other initial weights, other global random state
    random.seed(9), np.random.seed(9)
    model, optimizer, scheduler, h = resume_setup_run(
        init_seed=123, max_steps=TOTAL_STEPS, checkpoint_dir=tmp_path, resume=True, **fit_kwargs
    )
    assert state_equal(model, reference)
    a, b = optimizer.state_dict()["state"], ref_opt.state_dict()["state"]
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])
    assert scheduler.last_epoch == TOTAL_STEPS
    assert (h.step, h.epoch, h.loss, h.lr, h.grad_norm) == (
        ref_h.step,
        ref_h.epoch,
        ref_h.loss,
        ref_h.lr,
        ref_h.grad_norm,
    )


@pytest.mark.parametrize("stop_after", [2, 4, 5])  # mid-epoch, at the epoch's end, just after
def test_a_stopped_run_resumes_to_exactly_the_same_weights(tmp_path, stop_after, device):
    # deterministic kernels: on CUDA a backward pass may otherwise add in a varying order
    on_device = {"device": device, "deterministic": True}
    resume_setup_run(max_steps=stop_after, checkpoint_dir=tmp_path, **on_device)
    resume_and_compare(tmp_path, **on_device)


class PowerCutAtStep7(TinyDetector):
    calls = 0

    def forward(self, images, targets=None):
        self.calls += 1
        if self.calls == 7:
            raise RuntimeError("power cut")
        return super().forward(images, targets)


def test_a_crashed_run_resumes_from_its_last_checkpoint(tmp_path):
    with pytest.raises(RuntimeError, match="power cut"):
        resume_setup_run(
            model_cls=PowerCutAtStep7,
            max_steps=TOTAL_STEPS,
            checkpoint_every=3,
            checkpoint_dir=tmp_path,
        )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 6
    resume_and_compare(tmp_path)


class PowerCutAtStep6(TinyDetector):
    calls = 0

    def forward(self, images, targets=None):
        self.calls += 1
        if self.calls == 6:
            raise RuntimeError("power cut")
        return super().forward(images, targets)


def test_a_failure_checkpoints_the_steps_since_the_last_save_and_resumes_exactly(tmp_path):
    """Checkpoints every 4 steps, a failure in step 6 (after its batch drew random numbers):
    step 5 is saved, with the generators as they were at its end, and the run resumes from it
    exactly."""
    with pytest.raises(RuntimeError, match="power cut") as failure:
        resume_setup_run(
            model_cls=PowerCutAtStep6,
            max_steps=TOTAL_STEPS,
            checkpoint_every=4,
            checkpoint_dir=tmp_path,
        )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 5
    assert failure.value.__notes__ == [
        f"{tmp_path / CHECKPOINT_NAME} holds step 5, the last one completed"
    ]
    resume_and_compare(tmp_path)


def test_a_failure_between_the_weight_update_and_its_bookkeeping_saves_nothing(tmp_path):
    model, optimizer = tiny_setup()

    def factor(step):
        if step == 3:
            raise ArithmeticError("schedule broke")
        return 1.0

    scheduler = LambdaLR(optimizer, factor)
    with pytest.raises(ArithmeticError):
        fit(
            model,
            TinyShapes(8),
            optimizer=optimizer,
            scheduler=scheduler,
            max_steps=5,
            checkpoint_dir=tmp_path,
            **QUIET,
        )
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # step 3's update is half done


def test_fit_removes_temporary_files_that_a_killed_write_left(tmp_path):
    stale = [tmp_path / ".last.pt.k2j4h1.tmp", tmp_path / ".last.pt.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (tmp_path / ".other.tmp").write_bytes(b"not ours")
    model, optimizer = tiny_setup()
    fit(model, TinyShapes(4), optimizer=optimizer, max_steps=1, checkpoint_dir=tmp_path, **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", CHECKPOINT_NAME]


def test_restoring_only_model_and_optimizer_is_not_enough(tmp_path):
    """The control for the resume tests: without the RNG states and the data position, a resumed
    run drifts away from the uninterrupted one."""
    resume_setup_run(max_steps=5, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)

    def load_weights_only(model, optimizer, scheduler):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])

    model, *_ = resume_setup_run(
        init_seed=123, prepare=load_weights_only, max_steps=TOTAL_STEPS - 5
    )
    reference, *_ = resume_setup_run(max_steps=TOTAL_STEPS)
    assert not state_equal(model, reference)


def test_resume_starts_afresh_without_a_checkpoint_and_refuses_a_changed_setup(tmp_path):
    model, optimizer = tiny_setup()

    def resume(**changes):
        kwargs = {"data": TinyShapes(8), "max_steps": 2, "checkpoint_dir": tmp_path, "resume": True}
        kwargs.update(changes)
        return fit(model, kwargs.pop("data"), optimizer=optimizer, **kwargs, **QUIET)

    assert resume().step == [1, 2] and (tmp_path / CHECKPOINT_NAME).is_file()
    with pytest.raises(ValueError, match="batch_size 4 in the checkpoint, 2 now"):
        resume(max_steps=4, batch_size=2)
    with pytest.raises(ValueError, match="data_length 8 in the checkpoint, 9 now"):
        resume(max_steps=4, data=TinyShapes(9))
    with pytest.raises(ValueError, match="seed 0 in the checkpoint, 1 now"):
        resume(max_steps=4, seed=1)
    with pytest.raises(ValueError, match="written without a learning-rate scheduler"):
        resume(max_steps=4, scheduler=LambdaLR(optimizer, lambda e: 1.0))
    with pytest.raises(FileNotFoundError, match="no checkpoint there"):
        resume(checkpoint_dir=None, resume=tmp_path / "other.pt")


def test_resuming_a_batch_source_mid_epoch_warns(tmp_path):
    loader = DataLoader(TinyShapes(8), batch_size=2, collate_fn=detection_collate)
    model, optimizer = tiny_setup()
    fit(model, loader, optimizer=optimizer, max_steps=2, checkpoint_dir=tmp_path, **QUIET)
    with pytest.warns(UserWarning, match="from iterable batches, which cannot be rewound"):
        h = fit(
            model,
            loader,
            optimizer=optimizer,
            max_steps=3,
            checkpoint_dir=tmp_path,
            resume=True,
            **QUIET,
        )
    assert h.step == [1, 2, 3]


# --------------------------------------------------------------------------- fine-tuning


def test_freeze_stops_training_the_matching_parameters():
    model, _ = tiny_setup()
    assert freeze(model, [r"^backbone\."]) == ["backbone.weight", "backbone.bias"]
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == [
        "backbone.weight",
        "backbone.bias",
    ]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(param_groups(model, 0.1), lr=0.1)
    fit(model, TinyShapes(8), optimizer=optimizer, max_steps=2, **QUIET)
    after = model.state_dict()
    assert torch.equal(before["backbone.weight"], after["backbone.weight"])
    assert not torch.equal(before["cls_head.weight"], after["cls_head.weight"])
    with pytest.raises(
        ValueError, match=r"freeze pattern 'neck' matches no parameter .*backbone.weight"
    ):
        freeze(model, ["neck"])
    with pytest.raises(TypeError, match="list of patterns"):
        freeze(model, "backbone")
    with pytest.raises(ValueError, match="not a regular expression"):
        freeze(model, ["("])


def test_param_groups_put_every_trainable_parameter_in_one_group():
    model = TinyDetector()
    groups = param_groups(model, 0.01, {"bias": 2.0, r"^backbone\.": 0.1})
    named = {id(p): n for n, p in model.named_parameters()}
    members = {g["name"]: [named[id(p)] for p in g["params"]] for g in groups}
    assert members == {
        "base": ["box_head.weight", "cls_head.weight"],
        r"^backbone\.": ["backbone.weight"],
        r"bias+^backbone\.": ["backbone.bias"],
        "bias": ["box_head.bias", "cls_head.bias"],
    }
    assert {g["name"]: g["lr"] for g in groups} == pytest.approx(
        {"base": 0.01, r"^backbone\.": 0.001, r"bias+^backbone\.": 0.002, "bias": 0.02}
    )
    # one SGD step moves each parameter by its own group's rate times its gradient
    optimizer = torch.optim.SGD(groups, lr=0.01)
    images, targets = detection_collate([TinyShapes(4)[i] for i in range(4)])
    sum(model(images, targets).values()).backward()
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters()}
    optimizer.step()
    rate = {
        "box_head.weight": 0.01,
        "backbone.weight": 0.001,
        "backbone.bias": 0.002,
        "cls_head.bias": 0.02,
    }
    for name, lr in rate.items():
        value, grad = before[name]
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), value - lr * grad)

    freeze(model, ["cls_head"])
    names = {named[id(p)] for g in param_groups(model, 0.01, {"bias": 2.0}) for p in g["params"]}
    assert names == {"backbone.weight", "backbone.bias", "box_head.weight", "box_head.bias"}
    with pytest.raises(ValueError, match="'cls_head' matches no trainable parameter"):
        param_groups(model, 0.01, {"cls_head": 2.0})
    with pytest.raises(ValueError, match="must be positive and finite"):
        param_groups(model, 0.01, {"bias": 0.0})


def test_load_partial_state_dict_reports_every_skipped_key():
    source = TinyDetector(num_classes=6).state_dict()
    source["extra.weight"] = torch.ones(2)
    del source["box_head.bias"]
    model = TinyDetector(num_classes=4)
    untouched = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_partial_state_dict(model, source)
    assert report.loaded == ["backbone.weight", "backbone.bias", "box_head.weight"]
    assert report.missing == ["box_head.bias"]
    assert report.unexpected == ["extra.weight"]
    assert report.shape_mismatch == {
        "cls_head.weight": ((6, 8), (4, 8)),
        "cls_head.bias": ((6,), (4,)),
    }
    assert report.skipped == 4
    state = model.state_dict()
    assert torch.equal(state["backbone.weight"], source["backbone.weight"])
    for key in ("box_head.bias", "cls_head.weight", "cls_head.bias"):
        assert torch.equal(state[key], untouched[key])
    text = str(report)
    assert "loaded 3 tensors; skipped: 1 missing, 1 unexpected, 2 with another shape" in text
    assert "shape [6, 8] in the state dict, [4, 8] in the model: cls_head.weight" in text
    with pytest.raises(TypeError, match=r"state_dict\['x'\] is a str"):
        load_partial_state_dict(model, {"x": "not a tensor"})


def test_fine_tuning_a_torchvision_detector_for_other_classes():
    """A 91-class Faster R-CNN into a 4-class one: everything but the class-specific outputs loads
    (torch's own load_state_dict(strict=False) refuses the whole thing)."""
    build = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn
    coco = build(weights=None, weights_backbone=None, num_classes=91).state_dict()
    model = build(weights=None, weights_backbone=None, num_classes=4)
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(coco, strict=False)
    report = load_partial_state_dict(model, coco)
    predictor = "roi_heads.box_predictor."
    assert report.shape_mismatch == {
        predictor + "cls_score.weight": ((91, 1024), (4, 1024)),
        predictor + "cls_score.bias": ((91,), (4,)),
        predictor + "bbox_pred.weight": ((364, 1024), (16, 1024)),
        predictor + "bbox_pred.bias": ((364,), (16,)),
    }
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(coco) - 4


def test_load_partial_state_dict_reads_a_fit_checkpoint(tmp_path):
    model, optimizer = tiny_setup()
    fit(model, TinyShapes(8), optimizer=optimizer, max_steps=1, checkpoint_dir=tmp_path, **QUIET)
    fresh = TinyDetector()
    report = load_partial_state_dict(fresh, tmp_path / CHECKPOINT_NAME)
    assert report.skipped == 0 and state_equal(fresh, model)


# --------------------------------------------------------------------------- evaluate, torchvision


def test_evaluate_returns_predictions_and_targets_in_order(device):
    data = TinyShapes(5)
    model = TinyDetector(dropout=0.5).to(device)
    model.train()
    predictions, targets = evaluate(model, data, batch_size=2)
    assert model.training  # put back in the mode it was in
    assert all(p.device.type == device.type for p in model.parameters())  # and left where it was
    assert all(v.device.type == "cpu" for pred in predictions for v in pred.values())
    assert len(predictions) == len(targets) == 5
    for i, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        assert torch.equal(target["boxes"], data[i][1]["boxes"])
        assert pred["boxes"].shape == (1, 4) and pred["scores"].shape == (1,)
        assert not pred["boxes"].requires_grad
    model.eval()
    with torch.no_grad():
        expected = model([data[i][0].to(device) for i in range(5)])
    for pred, exp in zip(predictions, expected, strict=True):
        torch.testing.assert_close(pred["boxes"], exp["boxes"].cpu())


def test_evaluate_runs_on_the_model_s_device_unless_told_otherwise(monkeypatch, device):
    """The device the environment prefers is for new models: evaluate keeps a model where it is,
    and moves it for the call only when given another device."""
    monkeypatch.setenv("TUTORIAL_DET_DEVICE", "meta")  # a device nothing could be evaluated on
    model = TinyDetector()
    predictions, _ = evaluate(model, TinyShapes(3))
    assert len(predictions) == 3 and model.backbone.weight.device.type == "cpu"
    seen = []

    class Spy(TinyDetector):
        def forward(self, images, targets=None):
            seen.append((self.backbone.weight.device.type, images[0].device.type))
            return super().forward(images, targets)

    spy = Spy()
    evaluate(spy, TinyShapes(3), device=device, batch_size=2)
    assert seen == [(device.type, device.type)] * 2
    assert spy.backbone.weight.device.type == "cpu"


def test_evaluating_during_training_leaves_model_and_optimizer_together(device):
    model, optimizer = tiny_setup(adam=True, lr=1e-2)
    eval_fn = functools.partial(evaluate_map, data=TinyShapes(4, seed=1), device="cpu")
    fit(
        model,
        TinyShapes(8),
        optimizer=optimizer,
        max_steps=4,
        eval_every=2,
        eval_fn=eval_fn,
        device=device,
        **QUIET,
    )
    assert all(p.device.type == device.type for p in model.parameters())
    state = optimizer.state_dict()["state"]
    assert all(t.device.type in (device.type, "cpu") for s in state.values() for t in s.values())
    assert all(s["exp_avg"].device.type == device.type for s in state.values())


@pytest.mark.slow  # a real detector: seconds per step on a busy CPU
def test_fit_and_evaluate_a_torchvision_detector():
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=4, min_size=64, max_size=64
    )
    # a frozen feature extractor keeps the test fast (MobileNet's depthwise backward is slow on a CPU)
    assert len(freeze(model, [r"^backbone\.body\."])) > 0
    optimizer = torch.optim.SGD(param_groups(model, 0.01), lr=0.01)
    data = TinyShapes(2, size=64)
    h = fit(model, data, optimizer=optimizer, max_steps=1, batch_size=2, **QUIET)
    assert set(h.terms) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    assert all(np.isfinite(h.loss))
    predictions, targets = evaluate(model, data, batch_size=2)
    assert len(predictions) == len(targets) == 2
    for pred in predictions:
        k = len(pred["boxes"])
        assert pred["boxes"].shape == (k, 4) and pred["labels"].shape == pred["scores"].shape == (
            k,
        )


class SquareFinder(torch.nn.Module):
    """Finds TinyShapes' square exactly (its pixels are 1.0 in the channel of its class),
    optionally shifted right by ``shift`` times its side."""

    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.shift = shift

    def forward(self, images, targets=None):
        out = []
        for image in images:
            channel, ys, xs = torch.nonzero(image == 1.0, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            box = box + self.shift * (box[2] - box[0]) * torch.tensor([1.0, 0.0, 1.0, 0.0])
            out.append({"boxes": box[None], "labels": channel[:1] + 1, "scores": torch.ones(1)})
        return out


def test_evaluate_map_known_answers():
    data = TinyShapes(6)
    exact = evaluate_map(SquareFinder(), data, batch_size=4)
    assert exact["map"] == exact["map_50"] == exact["voc_map_50"] == 1.0
    # shifted by half a side: IoU = 0.5 / 1.5 = 1/3, below every threshold
    shifted = evaluate_map(SquareFinder(shift=0.5), data)
    assert shifted["map"] == shifted["map_50"] == 0.0
    loose = evaluate_map(SquareFinder(shift=0.5), data, iou_thresholds=[0.3])
    assert loose["map"] == 1.0 and loose["map_50"] == -1.0  # 0.5 is not among the thresholds
    assert all(isinstance(v, float) for v in exact.values())
    assert not any("per_class" in k for k in exact) and "classes" not in exact


def test_evaluate_map_as_the_eval_fn_of_fit():
    model, optimizer = tiny_setup()
    eval_fn = functools.partial(evaluate_map, data=TinyShapes(4, seed=1))
    h = fit(model, TinyShapes(8), optimizer=optimizer, max_steps=2, eval_fn=eval_fn, **QUIET)
    steps, values = h.metric("map")
    assert steps == [2] and 0.0 <= values[0] <= 1.0


# --------------------------------------------------------------------------- curves


def test_smooth_curve_known_answers():
    assert smooth_curve([3.0, 3.0, 3.0], 0.9).tolist() == pytest.approx([3.0, 3.0, 3.0])
    assert smooth_curve([1.0, 2.0], 0.0).tolist() == [1.0, 2.0]
    # debiased: (0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25)
    assert smooth_curve([1.0, 3.0], 0.5).tolist() == pytest.approx([1.0, (0.25 + 1.5) / 0.75])
    assert smooth_curve([], 0.9).shape == (0,)
    with pytest.raises(ValueError, match="smoothing"):
        smooth_curve([1.0], 1.0)


def test_plot_history_draws_losses_and_metrics():
    h = History()
    for step, (a, b) in enumerate([(1.0, 2.0), (0.5, 1.0), (0.25, 0.5)], start=1):
        h.record_step(step, 0, {"loss_box": a, "loss_cls": b}, 0.1, step * 0.1, 0.0)
    h.record_metrics(2, 0, {"map": 0.1, "map_50": 0.3})
    h.record_metrics(3, 0, {"map": 0.2, "map_50": 0.4})
    lines = plot_history(h, smoothing=0.0)
    assert len(lines) == 3 * 2 + 2  # loss, loss_box, loss_cls (raw and smoothed), two metrics
    assert lines[1].get_label() == "loss" and list(lines[1].get_ydata()) == [3.0, 1.5, 0.75]
    assert [line.get_label() for line in lines[-2:]] == ["map", "map_50"]
    assert list(lines[-1].get_xdata()) == [2, 3]
    only_map = plot_history(h, metrics=["map"])
    assert len(only_map) == 3 * 2 + 1 and only_map[-1].get_label() == "map"
    with pytest.raises(KeyError, match="no metric 'ap'"):
        plot_history(h, metrics=["ap"])
    assert plot_history(History()) == []
    matplotlib.pyplot.close("all")
