"""Checkpoints that survive a crash and load without running code.

Lesson 09 (training at scale) teaches it.

A checkpoint is a plain tree of tensors, numbers, strings, ``None``, lists, tuples and dicts, so
``torch.load(path, weights_only=True)`` can read it: loading never unpickles arbitrary objects.
Random-number-generator states, which Python and NumPy give as tuples and arrays, are stored as
tensors for the same reason.

Writing is atomic: the bytes go to a temporary file in the same folder, are flushed to disk
(``fsync``), and only then replace the old checkpoint with ``os.replace``, which is atomic on POSIX
and Windows. A crash (or a full disk) in the middle of a save leaves the previous checkpoint intact;
a process killed mid-write leaves its temporary file (``.last.pt.<random>.tmp``) behind, which
:func:`remove_temporary_files` deletes when the next run starts.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "tutorial_det.training/1"

_PLAIN = (torch.Tensor, bool, int, float, str, type(None), torch.dtype, torch.device)


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise a TypeError naming the first entry of ``obj`` that ``weights_only`` loading refuses.

    Accepted: tensors, ``bool``/``int``/``float``/``str``/``None``, dtypes, devices, and lists,
    tuples and dicts (with string or integer keys) of these.
    """
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str | int):
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r}")
            check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint may hold only "
        "tensors, numbers, strings, None, lists and dicts (torch.load(..., weights_only=True) "
        "refuses anything else)"
    )


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Raises:
        TypeError: ``state`` holds something other than tensors, numbers, strings, lists, dicts.
        OSError: the write failed; the file at ``path`` (if any) is then unchanged.
    """
    check_plain(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def temporary_files(folder: str | os.PathLike, name: str) -> list[Path]:
    """The temporary files that atomic writes of ``folder/name`` left behind, sorted: those of
    :func:`save_checkpoint` (``.name.<random>.tmp``) and of a plain ``.name.tmp``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".{name}.*tmp") if p.is_file())


def remove_temporary_files(folder: str | os.PathLike, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes of ``folder/<name>`` (for each of
    ``names``) left behind; returns the deleted paths. Call it when a run starts, before anything
    writes there: a write in progress has a temporary file too."""
    removed = []
    for name in names:
        for path in temporary_files(folder, name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder for fsync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint (truncated, or holds code objects).
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot read checkpoint {path} ({first_line}): it is truncated, not written by "
            "torch.save, or holds Python objects that weights-only loading refuses"
        ) from err


def capture_rng() -> tuple:
    """The states of Python's, NumPy's and torch's global generators (CPU, CUDA, MPS) as they are
    now, taken cheaply (no conversion): :func:`rng_state` turns them into a checkpoint's entry
    later. ``fit`` captures them after every step, so that a checkpoint written when training
    stops on an exception holds the states at the end of the last completed step."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    mps = None
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        mps = torch.mps.get_rng_state()
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda, mps


def rng_state(captured: tuple | None = None) -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CPU, CUDA, MPS), as tensors:
    those :func:`capture_rng` returned, or by default the current ones."""
    python, numpy, cpu, cuda, mps = captured or capture_rng()
    version, internal, gauss = python
    name, keys, pos, has_gauss, cached = numpy
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": cpu,
    }
    if cuda is not None:
        state["cuda"] = cuda
    if mps is not None:
        state["mps"] = mps
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generator states saved by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # A machine with a different number of GPUs gets the states of the devices both have.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
