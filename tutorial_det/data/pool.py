"""A pool of training samples kept full by background threads (WPOD-Net's data generator, fixed).

Worker threads call ``sample_fn(rng)`` over and over and put each result into a pool of
``pool_size`` slots: appended while the pool is filling, afterwards written over a random slot.
``get_batch(n)`` returns ``n`` samples drawn at random (with replacement) from the pool, as soon as
it holds ``min_samples`` of them. Slow augmentation thus runs beside training instead of before
each step, and a batch never waits once the pool is warm.

Compared with the generator it is modelled on, this one

- waits on a ``threading.Condition`` (no polling loop), and reads the sample count only under its
  lock;
- re-raises an exception from ``sample_fn`` in the thread that calls :meth:`SamplePool.get_batch`
  (chained, with the worker's traceback) instead of leaving it waiting forever, and waits at most
  :data:`GET_BATCH_TIMEOUT` seconds by default for a ``sample_fn`` that hangs;
- stops promptly: :meth:`~SamplePool.stop` returns within its ``timeout`` even while workers are
  inside a slow ``sample_fn``;
- can be started and stopped any number of times, and is a context manager.

How it differs from ``torch.utils.data.DataLoader(num_workers=k)``:

- Threads, not processes: samples are shared, never pickled or copied, and start-up is instant;
  but Python code holds the GIL, so the workers only run in parallel with training while
  ``sample_fn`` spends its time in code that releases it (NumPy, PIL, torch operators).
  DataLoader processes run Python code truly in parallel.
- Samples are reused: a sample can appear in many batches (and some in none) while the workers
  replace the pool, so training never waits on slow generation, at the price of correlated
  batches; there are no epochs. A DataLoader yields every index exactly once per epoch.
- Batches are drawn at random from whatever the pool holds at the time, so with several workers
  (or a consumer that runs faster or slower) the batches depend on thread timing. The stream of
  samples each worker produces is a pure function of ``(seed, start count, worker)``.
- The returned samples are the pool's own objects: treat them as read-only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: How long :meth:`SamplePool.get_batch` waits by default for the pool to hold ``min_samples``,
#: in seconds: a hung ``sample_fn`` then ends in a TimeoutError instead of a wait without end.
GET_BATCH_TIMEOUT = 60.0


class SamplePoolError(RuntimeError):
    """``sample_fn`` raised in a worker thread; the original exception is the ``__cause__``."""


class SamplePool:
    """Background threads keep a fixed-size pool of samples; batches are drawn from it.

    Args:
        sample_fn: ``sample_fn(rng) -> sample``, called by the workers with their own
            ``numpy.random.Generator``; it must be safe to call from several threads at once.
        pool_size: number of slots.
        num_workers: number of worker threads.
        min_samples: :meth:`get_batch` waits until the pool holds this many samples
            (``1 <= min_samples <= pool_size``).
        seed: seeds the workers' generators (worker ``w`` of the ``r``-th :meth:`start` uses
            ``default_rng([seed, r, w])``, its slot choices another stream) and the batch draws.
    """

    def __init__(
        self,
        sample_fn: Callable[[np.random.Generator], Any],
        pool_size: int,
        num_workers: int = 2,
        min_samples: int = 1,
        seed: int = 0,
    ) -> None:
        if not callable(sample_fn):
            raise TypeError(f"sample_fn must be callable, got {type(sample_fn).__name__}")
        for name, value in (("pool_size", pool_size), ("num_workers", num_workers)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(min_samples, int) and 1 <= min_samples <= pool_size):
            raise ValueError(
                f"min_samples must be an integer in [1, pool_size={pool_size}], got {min_samples!r}"
            )
        self.sample_fn = sample_fn
        self.pool_size = pool_size
        self.num_workers = num_workers
        self.min_samples = min_samples
        self.seed = int(seed)
        self._samples: list[Any] = []
        self._produced = 0
        self._error: BaseException | None = None
        self._error_worker = -1
        self._running = False
        self._run = 0  # counts start() calls; a worker of an older run never touches the pool
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._batch_rng = np.random.default_rng([self.seed, 2**32])  # distinct from worker streams

    @classmethod
    def from_dataset(cls, dataset, pool_size: int, **kwargs) -> SamplePool:
        """A pool whose workers fill it with ``dataset[i]`` for random ``i``."""
        if len(dataset) == 0:
            raise ValueError("dataset is empty: there is nothing to sample")
        return cls(lambda rng: dataset[int(rng.integers(len(dataset)))], pool_size, **kwargs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SamplePool:
        """Start the workers (a no-op while running). Clears a previous worker error; samples
        already in the pool stay. Returns the pool, so ``with SamplePool(...).start()`` works."""
        with self._lock:
            if self._running:
                return self
            self._running = True
            self._error = None
            self._run += 1
            run = self._run
            self._threads = [
                threading.Thread(
                    target=self._work, args=(run, w), name=f"SamplePool-{run}-{w}", daemon=True
                )
                for w in range(self.num_workers)
            ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 0.5) -> bool:
        """Ask the workers to stop and join them, waiting at most ``timeout`` seconds in total.

        Python cannot interrupt a thread, so a worker busy in a slow ``sample_fn`` finishes that
        call in the background; it then exits without touching the pool (daemon threads never
        block interpreter exit). Returns True when every worker has exited.
        """
        with self._changed:
            self._running = False
            self._changed.notify_all()
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def __enter__(self) -> SamplePool:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        """Number of samples in the pool now."""
        with self._lock:
            return len(self._samples)

    @property
    def produced(self) -> int:
        """Number of samples the workers have put into the pool so far."""
        with self._lock:
            return self._produced

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` (or a worker error)."""
        with self._lock:
            return self._running

    # ------------------------------------------------------------------ workers and consumer

    def _work(self, run: int, worker: int) -> None:
        rng = np.random.default_rng([self.seed, run, worker])
        slot_rng = np.random.default_rng([self.seed, run, worker, 1])
        while True:
            with self._lock:
                if not self._running or self._run != run:
                    return
            try:
                sample = self.sample_fn(rng)
            except BaseException as error:  # even SystemExit: the consumer must not wait forever
                with self._changed:
                    if self._run == run and self._error is None:
                        self._error, self._error_worker = error, worker
                        self._running = False
                    self._changed.notify_all()
                return
            with self._changed:
                if not self._running or self._run != run:
                    return
                if len(self._samples) < self.pool_size:
                    self._samples.append(sample)
                else:
                    self._samples[int(slot_rng.integers(self.pool_size))] = sample
                self._produced += 1
                self._changed.notify_all()

    def get_batch(self, n: int, timeout: float | None = GET_BATCH_TIMEOUT) -> list[Any]:
        """``n`` samples drawn at random (with replacement) from the pool.

        Waits until the pool holds ``min_samples`` samples, at most ``timeout`` seconds
        (:data:`GET_BATCH_TIMEOUT` by default; ``None`` waits without end). Raises
        :class:`SamplePoolError` (caused by the original exception) as soon as a worker's
        ``sample_fn`` has raised, RuntimeError when the pool is stopped and too empty to ever
        serve the batch, and TimeoutError when the time is up.
        """
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                if self._error is not None:
                    raise SamplePoolError(
                        f"sample_fn raised {type(self._error).__name__} in worker "
                        f"{self._error_worker}; fix it and start() the pool again"
                    ) from self._error
                count = len(self._samples)
                if count >= self.min_samples:
                    picks = self._batch_rng.integers(count, size=n)
                    return [self._samples[i] for i in picks]
                if not self._running:
                    raise RuntimeError(
                        f"the pool is stopped and holds {count} < min_samples={self.min_samples} "
                        "samples: call start() first"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"the pool holds {count} < min_samples={self.min_samples} samples after "
                        f"{timeout} s (it has produced {self._produced}): sample_fn is hung or "
                        "slower than that; pass a larger timeout (None waits without end)"
                    )
                self._changed.wait(remaining)
