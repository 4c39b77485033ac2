"""The threaded sample pool: prompt stop, errors reach the consumer, no deadlocks, determinism.

Waiting is done on events with timeouts; the time limits asserted are generous bounds on
behaviour (a stop that hangs, an error that never arrives), not speed measurements.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import traceback

import numpy as np
import pytest

from tutorial_det.data.pool import GET_BATCH_TIMEOUT, SamplePool, SamplePoolError
from tutorial_det.data.shapes import ShapesDataset


def counter_fn():
    """A sample function that numbers its samples (thread-safe), with a record of all of them."""
    lock = threading.Lock()
    produced: list[int] = []

    def sample(rng):
        with lock:
            produced.append(len(produced))
            return produced[-1]

    return sample, produced


def test_batches_come_from_produced_samples_and_the_pool_stays_bounded():
    sample, produced = counter_fn()
    with SamplePool(sample, pool_size=8, num_workers=2, min_samples=8, seed=0) as pool:
        for _ in range(20):
            batch = pool.get_batch(5)
            assert len(batch) == 5
            assert len(pool) <= 8
        assert pool.produced >= 8
    assert not pool.running
    assert set(batch) <= set(produced)
    assert len(pool) == 8  # appended until full, then slots replaced


def test_get_batch_waits_for_min_samples():
    gate = threading.Event()
    count = iter(range(10**6))

    def sample(rng):
        value = next(count)
        if value >= 3:
            gate.wait(5)
        return value

    with SamplePool(sample, pool_size=10, num_workers=1, min_samples=4) as pool:
        with pytest.raises(TimeoutError, match="holds 3 < min_samples=4 samples after 0.2 s"):
            pool.get_batch(1, timeout=0.2)
        gate.set()
        assert len(pool.get_batch(3, timeout=5)) == 3
        assert len(pool) >= 4


def test_stop_returns_promptly_while_a_worker_is_inside_a_slow_sample_fn():
    inside, release = threading.Event(), threading.Event()

    def slow(rng):
        inside.set()
        release.wait(10)  # a sample that takes "forever"
        return 0

    pool = SamplePool(slow, pool_size=4, num_workers=2).start()
    workers = list(pool._threads)
    assert inside.wait(5)
    started = time.monotonic()
    finished = pool.stop(timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert finished is False  # the workers are still inside sample_fn ...
    release.set()
    # ... and leave without touching the pool once it returns.
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in workers):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(pool) == 0 and pool.produced == 0


def test_worker_error_reaches_the_consumer_with_its_traceback():
    started = threading.Event()

    def broken(rng):
        started.set()
        time.sleep(0.05)
        raise KeyError("missing annotation")

    pool = SamplePool(broken, pool_size=4, num_workers=2, min_samples=1).start()
    assert started.wait(5)
    t0 = time.monotonic()
    with pytest.raises(SamplePoolError, match="sample_fn raised KeyError in worker") as info:
        pool.get_batch(2)  # would wait forever in the generator this pool replaces
    assert time.monotonic() - t0 < 1.0
    cause = info.value.__cause__
    assert isinstance(cause, KeyError) and cause.args == ("missing annotation",)
    frames = traceback.extract_tb(cause.__traceback__)
    assert frames[-1].name == "broken"  # the traceback points into sample_fn
    assert not pool.running
    with pytest.raises(SamplePoolError):  # and it keeps saying so until restarted
        pool.get_batch(1)
    assert pool.stop(timeout=1.0)


def test_error_after_the_pool_is_warm_is_still_reported():
    calls = iter(range(10**6))

    def flaky(rng):
        if next(calls) == 20:
            raise ValueError("bad sample 20")
        return 1

    with SamplePool(flaky, pool_size=8, num_workers=2) as pool:
        with pytest.raises(SamplePoolError) as info:
            for _ in range(10**6):  # returns batches until the error is seen
                pool.get_batch(4)
        assert str(info.value.__cause__) == "bad sample 20"


def test_many_start_stop_cycles_never_deadlock():
    sample, _ = counter_fn()
    pool = SamplePool(sample, pool_size=16, num_workers=2, min_samples=1)
    t0 = time.monotonic()
    for cycle in range(50):
        pool.start()
        pool.start()  # starting twice is harmless
        if cycle % 5 == 0:
            assert len(pool.get_batch(3, timeout=5)) == 3
        assert pool.stop(timeout=2.0), f"cycle {cycle}"
        pool.stop()  # so is stopping twice
    assert time.monotonic() - t0 < 30
    assert 1 <= len(pool) <= 16
    assert len(pool.get_batch(2)) == 2  # a stopped pool still serves what it holds


def test_restart_clears_an_error():
    fail = threading.Event()
    fail.set()

    def sample(rng):
        if fail.is_set():
            raise RuntimeError("once")
        return 1

    pool = SamplePool(sample, pool_size=4, num_workers=1)
    with pool, pytest.raises(SamplePoolError):
        pool.get_batch(1, timeout=5)
    fail.clear()
    with pool:
        assert pool.get_batch(2, timeout=5) == [1, 1]


def gated_pool(seed: int, pool_size: int = 6) -> tuple[SamplePool, threading.Event]:
    """A one-worker pool whose sample_fn blocks after filling the pool, so its content is fixed."""
    release = threading.Event()
    made = iter(range(10**6))

    def sample(rng):
        if next(made) >= pool_size:
            release.wait(10)
        return int(rng.integers(10**9))

    pool = SamplePool(sample, pool_size=pool_size, num_workers=1, min_samples=pool_size, seed=seed)
    return pool, release


def test_deterministic_given_a_seed_with_one_worker():
    batches = []
    for seed in (3, 3, 4):
        pool, release = gated_pool(seed)
        pool.start()
        batches.append([pool.get_batch(5, timeout=5) for _ in range(3)])
        pool.stop(timeout=0.1)
        release.set()
    assert batches[0] == batches[1]
    assert batches[0] != batches[2]
    # The samples are each worker's own generator stream: default_rng([seed, run, worker]).
    expected = np.random.default_rng([3, 1, 0]).integers(10**9, size=6).tolist()
    assert set(x for batch in batches[0] for x in batch) <= set(expected)


def test_from_dataset_and_bad_arguments():
    ds = ShapesDataset(10, seed=0)
    with SamplePool.from_dataset(ds, pool_size=4, num_workers=2) as pool:
        image, target = pool.get_batch(1, timeout=10)[0]
        assert image.shape == (3, 128, 128) and "boxes" in target
    with pytest.raises(ValueError, match="pool_size must be a positive integer"):
        SamplePool(lambda rng: 0, pool_size=0)
    with pytest.raises(ValueError, match="num_workers must be a positive integer"):
        SamplePool(lambda rng: 0, pool_size=4, num_workers=0)
    with pytest.raises(ValueError, match=r"min_samples must be an integer in \[1, pool_size=4\]"):
        SamplePool(lambda rng: 0, pool_size=4, min_samples=5)
    with pytest.raises(TypeError, match="sample_fn must be callable"):
        SamplePool(3, pool_size=4)
    with pytest.raises(ValueError, match="dataset is empty"):
        SamplePool.from_dataset(ShapesDataset(0), pool_size=4)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        SamplePool(lambda rng: 0, pool_size=4).get_batch(0)
    with pytest.raises(RuntimeError, match="the pool is stopped and holds 0 < min_samples=1"):
        SamplePool(lambda rng: 0, pool_size=4).get_batch(1)


def test_get_batch_waits_a_bounded_time_by_default():
    default = inspect.signature(SamplePool.get_batch).parameters["timeout"].default
    assert default == GET_BATCH_TIMEOUT and 0 < default < math.inf
    release = threading.Event()
    pool = SamplePool(lambda rng: release.wait(), pool_size=2)  # hung until released
    with pool:
        with pytest.raises(TimeoutError, match=r"holds 0 < min_samples=1 .*sample_fn is hung"):
            pool.get_batch(1, timeout=0.2)
        release.set()
