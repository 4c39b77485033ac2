"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tutorial_det import runtime
from tutorial_det.runtime import median_time_ms, model_device, pick_device, seed_everything


def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("TUTORIAL_DET_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_pick_device_honours_a_preference_and_the_environment(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("TUTORIAL_DET_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda:1' requested but CUDA is not available"):
        pick_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="'cuda:1' requested but this machine has 1 CUDA device"):
        pick_device("cuda:1")


def test_model_device_is_where_the_weights_are(device):
    assert model_device(torch.nn.Linear(2, 2).to(device)).type == device.type
    assert model_device(torch.nn.BatchNorm1d(2, affine=False).to(device)).type == device.type
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")  # nothing to go by


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert all(a != b for a, b in zip(draw(), first, strict=True))
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_median_time_ms_counts_calls_and_waits_for_the_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "synchronize", lambda: calls.append("sync"))
    ms = median_time_ms(lambda: calls.append("fn"), repeat=3, warmup=2)
    # every timed call starts and ends with a synchronisation; warm-up calls are not timed
    assert calls == ["fn", "fn"] + ["sync", "fn", "sync"] * 3 and ms >= 0
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        median_time_ms(lambda: None, repeat=0)
