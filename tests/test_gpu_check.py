"""The GPU check's lesson machinery (benchmarks/lesson_cells.py): a jupytext source read into
cells, the cells run the way a kernel runs them, the outputs compared with a stored notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.lesson_cells import code_cells, compare_lesson, numbers_close, text_outputs

ROOT = Path(__file__).resolve().parents[1]

LESSON = """# %% [markdown]
# # A lesson
#
# Some prose.

# %%
import matplotlib.pyplot as plt

x = 0.1 + 0.2
print("sum", round(x, 4))

# %%
# NBVAL_IGNORE_OUTPUT
print("time", 12.5)

# %%
print("before")
plt.plot([1, 2])
plt.show()
print("after")
x * 10

# %%
print("count", 8)

# %%
print("value", 0.1235)

# %% [markdown]
# More prose.

# %%
def explode():
    raise ValueError("boom")


explode()

# %%
print("never run")
"""


def stored_notebook(path: Path, cells: list[tuple[str, int | None, list[dict]]]) -> None:
    """Write a notebook whose code cells hold ``(source, execution_count, outputs)``."""
    notebook = {
        "cells": [
            {"cell_type": "code", "source": source, "execution_count": count, "outputs": outputs}
            for source, count, outputs in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def rich(kind: str, text: str) -> dict:
    return {"output_type": kind, "data": {"text/plain": text, "image/png": "..."}}


def test_code_cells_are_the_notebook_s_cells(tmp_path):
    source = tmp_path / "src" / "01_lesson.py"
    source.parent.mkdir()
    source.write_text(LESSON)
    cells = code_cells(source)
    assert len(cells) == 7
    assert cells[0] == 'import matplotlib.pyplot as plt\n\nx = 0.1 + 0.2\nprint("sum", round(x, 4))'
    assert cells[1].startswith("# NBVAL_IGNORE_OUTPUT\n")
    assert cells[5].startswith("def explode():") and cells[5].endswith("explode()")


def test_stored_outputs_keep_stdout_runs_and_rich_text_in_order():
    outputs = [
        stream("a\n"),
        stream("b\n"),
        {"output_type": "stream", "name": "stderr", "text": "warning\n"},
        rich("display_data", "<Figure size 640x480 with 1 Axes>"),
        stream("c\n"),
        rich("execute_result", "3.0"),
        {"output_type": "error", "ename": "E", "evalue": "", "traceback": []},
    ]
    assert text_outputs(outputs) == ["a\nb\n", "<Figure size 640x480 with 1 Axes>", "c\n", "3.0"]


@pytest.mark.parametrize(
    ("ours", "theirs", "close"),
    [
        ("IoU 0.143", "IoU 0.144", True),  # one unit in the last printed digit
        ("IoU 0.143", "IoU 0.145", False),
        ("loss 1.2345e-05", "loss 1.2346e-05", True),  # within 0.1 %
        ("8 cases", "9 cases", False),  # integers must be equal
        ("shape [6, 4]", "shape [6, 4] !", False),  # not only numbers differ
    ],
)
def test_numbers_close_known_answers(ours, theirs, close):
    assert numbers_close(ours, theirs) is close


def test_a_lesson_runs_like_a_kernel_and_compares_with_its_notebook(tmp_path):
    pytest.importorskip("IPython")
    pytest.importorskip("matplotlib_inline")
    source = tmp_path / "src" / "01_lesson.py"
    source.parent.mkdir()
    source.write_text(LESSON)
    out = tmp_path / "run.json"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.lesson_cells", str(source), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and out.exists(), done.stdout + done.stderr  # a cell raised
    run = json.loads(out.read_text())
    assert run["lesson"] == "01_lesson" and not run["finished"]
    assert len(run["cells"]) == 6  # stopped at the cell that raised, like nbconvert
    # stdout and displays in order, the figure as a kernel shows it, the last value as Out
    assert run["cells"][2]["outputs"] == [
        "before\n",
        "<Figure size 640x480 with 1 Axes>",
        "after\n",
        "3.0000000000000004",
    ]
    assert "ValueError: boom" in run["cells"][5]["error"]

    cells = code_cells(source)
    notebook = tmp_path / "01_lesson.ipynb"
    stored_notebook(
        notebook,
        [
            (cells[0], 1, [stream("sum 0.3\n")]),
            (cells[1], 2, [stream("time 3.1\n")]),
            (
                cells[2],
                3,
                [
                    stream("before\n"),
                    rich("display_data", "<Figure size 640x480 with 1 Axes>"),
                    stream("after\n"),
                    rich("execute_result", "3.0000000000000004"),
                ],
            ),
            (cells[3], 4, [stream("count 9\n")]),
            (cells[4], 5, [stream("value 0.1234\n")]),
            (cells[5], 6, []),
        ],
    )
    rows = compare_lesson(run, notebook)
    assert [row["status"] for row in rows] == [
        "equal",
        "ignored",  # NBVAL_IGNORE_OUTPUT
        "equal",
        "different",  # a count
        "close",  # one unit in the fourth decimal
        "error",
    ]
    assert rows[3]["ours"] == ["count 8\n"] and rows[3]["stored"] == ["count 9\n"]
