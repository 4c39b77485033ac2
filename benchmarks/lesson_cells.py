"""A lesson's code cells, run one by one the way a Jupyter kernel runs them, and compared with the
outputs stored in its notebook (the CPU run that nbval checks).

    python -m benchmarks.lesson_cells notebooks/src/02_anchors.py run.json   # run, write the JSON

The code cells come from the lesson's jupytext source (``notebooks/src/NN_topic.py``, percent
format: a line ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell). Each cell runs
in one IPython ``InteractiveShell`` (the interpreter inside ipykernel) under
``IPython.utils.capture.capture_output``, from the ``notebooks/`` folder, with matplotlib's inline
backend: the outputs are the kernel's (stdout, stderr, ``display()`` and the value of a cell's last
expression, figures as ``<Figure size ...>`` text). The JSON is rewritten after every cell, so a
lesson stopped by a time limit leaves what it had done. The first cell that raises ends the run
(as ``jupyter nbconvert --execute`` does).

:func:`compare_lesson` then puts each run cell next to the stored notebook's cell and classifies
it, after applying ``tests/nbval_sanitize.cfg`` to both sides:

- ``equal``: the same text outputs (stdout and each rich output's ``text/plain``);
- ``close``: the same text once every number is read as a number, each within
  :data:`NUMBER_TOLERANCE` (below);
- ``different``: anything else (both sides are kept for the report);
- ``ignored``: the cell carries ``# NBVAL_IGNORE_OUTPUT`` or was stored without an execution
  count (nbval runs such cells but does not compare them), or the stored notebook has no cell
  with this source (edited since the notebook was executed: ``source changed``).

stderr (warnings, progress bars) and images are not compared, as nbval compares neither here.
"""

from __future__ import annotations

import configparser
import difflib
import io
import json
import os
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_MARK = "# NBVAL_IGNORE_OUTPUT"

#: Two numbers are "close" when both are written with a decimal point or exponent and they differ
#: by at most one unit in the last digit printed (0.143 against 0.144) or by 0.1 % of the larger;
#: integers (counts, shapes, indices) must be equal.
NUMBER_TOLERANCE = "integers equal; decimals within one unit of the last printed digit or 0.1 %"

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# --------------------------------------------------------------------------- reading a lesson


def code_cells(source_path: str | os.PathLike) -> list[str]:
    """The code cells of a jupytext percent script, each as the notebook stores it (the lines
    between its ``# %%`` marker and the next, blank lines at either end removed)."""
    cells: list[list[str]] = []
    kinds: list[str] = []
    for line in Path(source_path).read_text().splitlines():
        if line.startswith("# %%"):
            kinds.append("markdown" if "[markdown]" in line else "code")
            cells.append([])
        elif cells:
            cells[-1].append(line)
    return [
        "\n".join(lines).strip("\n")
        for kind, lines in zip(kinds, cells, strict=True)
        if kind == "code"
    ]


def stored_cells(notebook_path: str | os.PathLike) -> list[dict]:
    """The code cells of an executed notebook: ``{"source", "execution_count", "outputs"}`` with
    the outputs reduced to what is compared (see :func:`text_outputs`)."""
    notebook = json.loads(Path(notebook_path).read_text())
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cells.append(
            {
                "source": source.strip("\n"),
                "execution_count": cell.get("execution_count"),
                "outputs": text_outputs(cell.get("outputs", [])),
            }
        )
    return cells


def text_outputs(outputs: list[dict]) -> list[str]:
    """A cell's outputs as compared: consecutive stdout streams joined into one text, each
    execute_result and display_data as its ``text/plain``; stderr and errors left out."""
    texts: list[str] = []
    stream_open = False
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") != "stdout":
                continue
            text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
            if stream_open:
                texts[-1] += text
            else:
                texts.append(text)
            stream_open = True
            continue
        stream_open = False
        if kind in ("execute_result", "display_data"):
            plain = out.get("data", {}).get("text/plain", "")
            texts.append(plain if isinstance(plain, str) else "".join(plain))
    return texts


# --------------------------------------------------------------------------- running a lesson


@dataclass
class CellRun:
    """One executed cell: its source, wall time, compared outputs, stderr, and error if any."""

    index: int
    source: str
    seconds: float
    outputs: list[str] = field(default_factory=list)
    stderr: str = ""
    error: str | None = None


def run_lesson(source_path: str | os.PathLike, out_path: str | os.PathLike) -> int:
    """Run every code cell of the lesson at ``source_path`` in IPython, writing
    ``{"lesson", "cells": [CellRun...], "seconds", "finished"}`` to ``out_path`` after each
    cell. Returns 0 when every cell ran, 1 when one raised."""
    source_path = Path(source_path).resolve()
    out_path = Path(out_path).resolve()
    os.chdir(source_path.parent.parent)  # notebooks/: where `make notebooks` runs a lesson
    shell, recorder = _kernel_like_shell()
    report = {"lesson": source_path.stem, "cells": [], "seconds": 0.0, "finished": False}
    start = time.perf_counter()
    status = 0
    for index, source in enumerate(code_cells(source_path)):
        began = time.perf_counter()
        with recorder:
            result = shell.run_cell(source, store_history=True)
        cell = CellRun(index, source, time.perf_counter() - began, recorder.texts())
        cell.stderr = recorder.stderr[-4000:]
        failure = result.error_before_exec or result.error_in_exec
        if failure is not None:
            lines = traceback.format_exception(type(failure), failure, failure.__traceback__)
            cell.error = "".join(lines)[-4000:]
        report["cells"].append(asdict(cell))
        report["seconds"] = time.perf_counter() - start
        _write(out_path, report)
        if failure is not None:
            status = 1
            break
    report["finished"] = status == 0
    _write(out_path, report)
    return status


class _Recorder:
    """What a cell sends to the notebook, in order: stdout text, ``display()`` data and the
    value of its last expression (plus stderr apart). Entered around each cell."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.stderr = ""

    def __enter__(self) -> _Recorder:
        self.events, self.stderr = [], ""
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Stream(self, "stdout"), _Stream(self, "stderr")
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush(), sys.stderr.flush()
        sys.stdout, sys.stderr = self._saved

    def texts(self) -> list[str]:
        """stdout runs joined, each rich output as its ``text/plain`` (see :func:`text_outputs`)."""
        texts: list[str] = []
        previous = None
        for kind, value in self.events:
            if kind == "stdout" and previous == "stdout":
                texts[-1] += value
            elif kind == "stdout":
                texts.append(value)
            else:
                texts.append(value.get("text/plain", ""))
            previous = kind
        return texts


class _Stream(io.TextIOBase):
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self.recorder, self.name = recorder, name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.name == "stderr":
            self.recorder.stderr += text
        elif text:
            self.recorder.events.append(("stdout", text))
        return len(text)


def _kernel_like_shell():
    """An IPython shell whose ``display()`` calls and execute results go to a :class:`_Recorder`
    (as ipykernel sends them to the notebook), with matplotlib's inline backend."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    recorder = _Recorder()

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, *args, **kwargs):
            recorder.events.append(("display", data))

        def clear_output(self, wait=False):
            pass

    class ResultHook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            recorder.events.append(("result", format_dict))

    class KernelLikeShell(InteractiveShell):
        displayhook_class = ResultHook
        display_pub_class = Publisher

        def enable_gui(self, gui=None):  # the inline backend needs no event loop
            pass

    config = Config()
    config.HistoryManager.enabled = False  # lessons run side by side: no shared history file
    shell = KernelLikeShell.instance(config=config)
    try:
        shell.enable_matplotlib("inline")  # figures displayed at the end of a cell, as in Jupyter
    except Exception as error:  # noqa: BLE001  (no matplotlib_inline: figures are not displayed)
        print(f"matplotlib inline backend unavailable ({error}); figures not displayed")
    return shell, recorder


def _write(path: Path, report: dict) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(report, indent=1))
    partial.replace(path)


# --------------------------------------------------------------------------- comparing


def sanitizers(cfg_path: str | os.PathLike = ROOT / "tests" / "nbval_sanitize.cfg"):
    """The ``(regex, replacement)`` pairs of nbval's sanitize file."""
    parser = configparser.ConfigParser()
    parser.read(cfg_path)
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def sanitize(text: str, rules) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def numbers_close(ours: str, theirs: str) -> bool:
    """True when the two texts differ only in numbers, each pair within
    :data:`NUMBER_TOLERANCE`."""
    if _NUMBER.sub("#", ours) != _NUMBER.sub("#", theirs):
        return False
    for a, b in zip(_NUMBER.findall(ours), _NUMBER.findall(theirs), strict=True):
        x, y = float(a), float(b)
        if x == y:
            continue
        if not any(c in text for text in (a, b) for c in ".eE"):
            return False  # integers
        decimals = len(b.split(".")[1]) if "." in b and "e" not in b.lower() else 0
        unit = 10.0**-decimals if decimals else 0.0
        if not (abs(x - y) <= unit * 1.000001 or abs(x - y) <= 1e-3 * max(abs(x), abs(y))):
            return False
    return True


def compare_lesson(run: dict, notebook_path: str | os.PathLike, rules=None) -> list[dict]:
    """One row per run cell: ``{"index", "status", "reason", "ours", "stored", "first_line"}``
    with status ``equal`` / ``close`` / ``different`` / ``ignored`` / ``error``."""
    rules = sanitizers() if rules is None else rules
    stored = stored_cells(notebook_path)
    ours_sources = [cell["source"] for cell in run["cells"]]
    matcher = difflib.SequenceMatcher(None, ours_sources, [c["source"] for c in stored], False)
    partner = {
        i: stored[j]
        for tag, i1, i2, j1, _ in matcher.get_opcodes()
        if tag == "equal"
        for i, j in zip(range(i1, i2), range(j1, j1 + i2 - i1), strict=True)
    }
    rows = []
    for cell in run["cells"]:
        row = {"index": cell["index"], "first_line": _first_line(cell["source"])}
        match = partner.get(cell["index"])
        ours = [sanitize(t, rules) for t in cell["outputs"]]
        if cell["error"]:
            row.update(status="error", reason=cell["error"].strip().splitlines()[-1])
        elif match is None:
            row.update(status="ignored", reason="source changed since the stored run")
        elif IGNORE_MARK in cell["source"]:
            row.update(status="ignored", reason="NBVAL_IGNORE_OUTPUT")
        elif match["execution_count"] is None:
            row.update(status="ignored", reason="stored without an execution count")
        else:
            theirs = [sanitize(t, rules) for t in match["outputs"]]
            if ours == theirs:
                row.update(status="equal", reason="")
            elif len(ours) == len(theirs) and all(
                numbers_close(a, b) for a, b in zip(ours, theirs, strict=True)
            ):
                row.update(status="close", reason=NUMBER_TOLERANCE, ours=ours, stored=theirs)
            else:
                row.update(status="different", reason="", ours=ours, stored=theirs)
        rows.append(row)
    return rows


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and line != IGNORE_MARK]
    return (lines[0] if lines else "")[:80]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.lesson_cells SOURCE.py OUT.json")
    raise SystemExit(run_lesson(sys.argv[1], sys.argv[2]))
