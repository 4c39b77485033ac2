"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tutorial_det.runtime import median_time_ms, pick_device, seed_everything


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


def test_median_time_ms_counts_calls():
    calls = []
    ms = median_time_ms(lambda: calls.append(1), repeat=5, warmup=2)
    assert len(calls) == 7 and ms >= 0
