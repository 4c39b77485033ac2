"""A lesson's sentences cannot part ways with its numbers.

Two halves make the promise. A sentence that quotes a computed value is shown with
``tutorial_det.prose.say(f"...")``, so it is a cell output and nbval fails when the value changes
(``test_nbval_fails_when_a_said_number_changes``). Every other number in an audited lesson's
Markdown (and in the literal text of its ``say`` sentences) must appear in the lesson's code or in
an output nbval compares, or be listed in ``ALLOWED`` with the reason it need not be computed
(``test_audited_lesson_states_only_numbers_it_computes``). ``prose_numbers.py`` says which numbers
count.

Auditing a lesson: run ``PYTHONPATH=. python tests/prose_numbers.py notebooks/NN_topic.ipynb`` for
the list of its numbers and what backs each; write each sentence that quotes a computed value
with ``say`` (lesson 00 shows how); re-execute the lesson; add it to ``AUDITED``; then this file's
tests name every number left to compute, print, or list in ``ALLOWED`` with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from prose_numbers import Lesson, code_numbers, mentions, only_says, say_texts

from tutorial_det.prose import Sentence

ROOT = Path(__file__).resolve().parents[1]

#: Lessons whose prose has been audited against their outputs. Add a lesson here when its audit is
#: done; from then on a number in its prose that its outputs do not show fails the test.
AUDITED = ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11"]


class From:
    """A number another lesson computes: it must appear in that lesson's compared outputs."""

    def __init__(self, lesson: str):
        self.lesson = lesson

    def __repr__(self) -> str:
        return f"From({self.lesson!r})"


#: Per lesson, numbers its prose may state without computing them, each with its reason (a
#: definition, a paper's constant, worked arithmetic), or From("NN") for a number another lesson
#: computes. Keys are written as the prose writes them.
ALLOWED: dict[str, dict[str, str | From]] = {
    "00": {
        "150": "worked arithmetic: the union 100 + 100 - 50 of the first IoU example",
        "8940": From("02"),
    },
    "01": {
        "25": "worked arithmetic: 800 / 32 cells per side at stride 32",
        "37": "worked arithmetic: 600 // 16 rows after the fourth pool",
    },
    "02": {
        "64": "worked arithmetic: half of the 128-pixel square",
        "22.5": "worked arithmetic: the centre of column 22 in cells",
        "14.5": "worked arithmetic: the centre of row 14 in cells",
        "12.5": "worked arithmetic: the centre of row and column 12 in cells",
        "1024": "worked arithmetic: scale 32 at stride 32",
        "480": "worked arithmetic: 30 cells of 16 pixels",
        "196": From("01"),
        "600": "an exercise's image size",
        "1000": "an exercise's image size",
    },
    "03": {
        "56": "worked arithmetic: 256 - 200 pixels of slack",
        "0.176": "worked arithmetic: (1 - 0.7) / (1 + 0.7)",
        "192": "an exercise's anchor size, scale 12 at stride 16",
    },
    "04": {
        "0.01": "the paper's initialisation of the RPN head, N(0, 0.01) (rpn.RPNHead)",
        "7": "worked arithmetic: row 1 of the bare reshape holds cells 4 to 7 of channel 0",
        "8940": From("02"),
        "112": "worked arithmetic: 128 - 16 pixels of overlap",
        "9025": "worked arithmetic: the 95 x 95 intersection of boxes 0 and 1",
        "10975": "worked arithmetic: the union 100 x 100 + 100 x 100 - 9025",
        "0.33": "worked arithmetic: 2 / 6",
        "0.8": "an exercise's NMS threshold",
        "400": "an exercise's number of training steps",
    },
    "05": {
        "million": "the unit of a computed parameter count ({} million)",
        "1024": "an exercise's layer width",
        "0.4": "an exercise's IoU threshold",
        "0.6": "an exercise's IoU threshold",
    },
    "09": {
        "0.05": "worked arithmetic: a loss of 0.05 reported with the constant 0.1 added",
        "0.15": "worked arithmetic: 0.05 + 0.1",
        "0.5": "check_train_epoch's learning rate, halved each epoch (exercises/training.py)",
        "256": "Faster R-CNN's anchors sampled per image (the paper's constant)",
    },
    "10": {
        "2400": "worked arithmetic: intersection 48 x 50 of d1 and g0",
        "2600": "worked arithmetic: union 2500 + 2500 - 2400 of d1 and g0",
        "1750": "worked arithmetic: intersection 50 x 35 of d2 and g0",
        "3250": "worked arithmetic: union 2500 + 2500 - 1750 of d2 and g0",
        "0.45": "a score threshold chosen below d5's score, to keep all five detections",
        "2010": "the year Pascal VOC adopted all-point AP",
        "2007": "the year of Pascal VOC's 11-point AP",
        "0.2222": "worked arithmetic: 1/3 x 2/3",
        "0.4": "worked arithmetic: the recall levels 0.4 to 0.6; the precision 2/5",
        "2.4": "worked arithmetic: 4 x 0.6",
        "8.4": "worked arithmetic: 4 + 2 + 2.4",
        "0.01": "the step of COCO's 101 recall levels (the three APs printed differ by less)",
        "0.33": "worked arithmetic: the last COCO recall level below 1/3",
        "0.34": "worked arithmetic: the first COCO recall level above 1/3",
        "0.66": "worked arithmetic: the last COCO recall level below 2/3",
        "0.67": "worked arithmetic: the first COCO recall level above 2/3",
        "33": "worked arithmetic: the COCO recall levels 0.34 to 0.66",
        "34": "worked arithmetic: the COCO recall levels 0 to 0.33, and 0.67 to 1",
        "20.4": "worked arithmetic: 34 x 0.6",
        "76.4": "worked arithmetic: 34 + 22 + 20.4",
        "32": "COCO's small objects: area below 32 x 32 pixels (a definition)",
        "96": "COCO's large objects: area above 96 x 96 pixels (a definition)",
    },
    "06": {
        "12000": "the paper's proposal counts: 12000 / 2000 in training (rpn.TRAIN_PROPOSALS)",
        "2000": "the paper's proposal counts: 12000 / 2000 in training (rpn.TRAIN_PROPOSALS)",
        "6000": "the paper's proposal count at test time (rpn.TEST_PROPOSALS)",
        "2400": "the paper's N_reg, the anchor locations of a ~600 x 1000 image",
        "600": "the paper's image size (~600 x 1000)",
        "240": "worked arithmetic: 2400 / 10, the paper's lambda",
        "0.01": "the paper's initialisation of the RoI head's classifier, N(0, 0.01) (RoIHead)",
        "64": "FasterRCNN's largest default anchor and ShapesDataset's largest shape (definitions)",
        "0.95": "definition: COCO's mAP averages IoU thresholds 0.5 to 0.95",
        "1024": "an exercise's layer width",
    },
    "07": {
        "2016": "the SSD paper's year (ECCV 2016)",
        "0.175": "worked arithmetic: (0.9 - 0.2) / 4, the spacing of SSD300's scales",
        "0.37": "the original Caffe SSD300's rounded scales",
        "0.71": "the original Caffe SSD300's rounded scales",
        "0.88": "the original Caffe SSD300's rounded scales",
        "1.05": "the original Caffe SSD300's rounded scales (and torchvision's last scale)",
        "0.07": "torchvision's ssd300_vgg16 first scale (its COCO set)",
        "304": "worked arithmetic: 38 cells x 8 pixels",
        "0.95": "definition: COCO's mAP averages IoU thresholds 0.5 to 0.95",
        "4000": "worked arithmetic: 250 steps x 16 images",
    },
    "08": {
        "2018": "the WPOD-Net paper's year (ECCV 2018)",
    },
}

WHAT_TO_DO = (
    "If the notebook computes the number, write the sentence as "
    'tutorial_det.prose.say(f"... {value} ...") in a code cell stored collapsed (header '
    '`# %% jupyter={"source_hidden": true}`), so nbval compares it; if the notebook should print '
    "it, print it; if it is a definition (a paper's constant, worked arithmetic), add it to "
    "ALLOWED in tests/test_prose.py with the reason; if another lesson computes it, add "
    'From("NN") there.'
)


def _lesson(name: str) -> Lesson:
    (path,) = (ROOT / "notebooks").glob(f"{name}_*.ipynb")
    return Lesson.read(path)


def unbacked(lesson: Lesson, allowed: dict[str, str | From]) -> list[str]:
    """One line per number the lesson's prose states but neither computes nor lists."""
    problems = []
    for number, heading, kind, text in lesson.prose():
        where = f"lesson {lesson.name}, {kind} {number} (under {heading!r})"
        backing = lesson.code | lesson.outputs
        if kind == "Markdown cell":
            backing = backing | lesson.said
        for mention in mentions(text):
            reason = allowed.get(mention.token)
            if isinstance(reason, From):
                other = _lesson(reason.lesson)
                if not mention.keys & (other.outputs | other.said):
                    problems.append(
                        f"{where}: {mention.token} in {mention.context!r} is listed as lesson "
                        f"{reason.lesson}'s number, but no output of lesson {reason.lesson} that "
                        "nbval compares shows it."
                    )
            elif reason is None and not mention.keys & backing:
                problems.append(
                    f"{where}: {mention.token} in {mention.context!r} is neither in the "
                    "lesson's code nor in an output nbval compares."
                )
    return problems


@pytest.mark.parametrize("name", AUDITED)
def test_audited_lesson_states_only_numbers_it_computes(name):
    problems = unbacked(_lesson(name), ALLOWED.get(name, {}))
    assert not problems, "\n".join(problems + [WHAT_TO_DO])


@pytest.mark.parametrize("name", AUDITED)
def test_every_allowed_number_is_still_stated(name):
    stated = {m.token for _, _, _, text in _lesson(name).prose() for m in mentions(text)}
    stale = sorted(set(ALLOWED.get(name, {})) - stated)
    assert not stale, (
        f"lesson {name}'s prose no longer states {stale}: remove them from ALLOWED[{name!r}] "
        "in tests/test_prose.py"
    )


@pytest.mark.parametrize("name", AUDITED)
def test_cells_that_only_say_are_stored_collapsed(name):
    for number, cell in enumerate(_lesson(name).cells, start=1):
        if cell.cell_type == "code" and only_says(cell.source):
            assert cell.metadata.get("jupyter", {}).get("source_hidden"), (
                f"lesson {name}, code cell {number} only shows sentences: store it collapsed, "
                'with the header `# %% jupyter={"source_hidden": true}` in its source'
            )


#: The lessons name the source documents as the README does ("How to use the lessons": the
#: walkthrough, the SSD tutorial, ...); "seed" means a random seed only.
SEED_AS_DOCUMENT = re.compile(r"seed(?:'s\b|\s+notebook|[\s_-]+style)", re.IGNORECASE)


@pytest.mark.parametrize("name", AUDITED)
def test_source_documents_are_not_called_the_seed(name):
    for number, cell in enumerate(_lesson(name).cells, start=1):
        found = SEED_AS_DOCUMENT.search(cell.source)
        assert not found, (
            f"lesson {name}, cell {number}: {found.group(0)!r} names a source document; call it "
            "as the README's 'How to use the lessons' does (the walkthrough, the SSD tutorial, "
            "...): 'seed' means a random seed"
        )


#: A comment line that reads as Markdown: a heading or a bold lead-in.
MARKDOWN_IN_A_COMMENT = re.compile(r"^# (?:#{1,6} |\*\*)", re.MULTILINE)


def prose_in_code_cells(cells) -> list[str]:
    """Code cells holding Markdown as comments: a `# %% [markdown]` header left out, so the
    prose never renders (after a collapsed ``say`` cell it is even hidden with the code)."""
    return [
        f"code cell {number}: {found.group(0)!r}... starts Markdown inside a code cell; put "
        "`# %% [markdown]` (after a blank line) before it"
        for number, cell in enumerate(cells, start=1)
        if cell.cell_type == "code" and (found := MARKDOWN_IN_A_COMMENT.search(cell.source))
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "src").glob("*.py")), ids=str)
def test_prose_is_never_a_comment_in_a_code_cell(path):
    import jupytext

    problems = prose_in_code_cells(jupytext.read(path).cells)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_markdown_left_in_a_code_cell_is_found():
    import jupytext

    text = '# %%\nsay("x")\n#\n# ## 3. Explore\n#\n# More prose.\n\n# %%\nx = 1  # ## not prose\n'
    cells = jupytext.reads(text, fmt="py:percent").cells
    (problem,) = prose_in_code_cells(cells)
    assert problem.startswith("code cell 1: '# ## '")


def test_audited_lessons_exist():
    for name in AUDITED:
        assert len(list((ROOT / "notebooks").glob(f"{name}_*.ipynb"))) == 1, name
    assert set(ALLOWED) <= set(AUDITED), "ALLOWED lists a lesson that is not AUDITED"


# --------------------------------------------------------------------------- the checker itself


def _probe(*cells) -> Lesson:
    return Lesson.of("99", nbformat.v4.new_notebook(cells=list(cells)))


def _code(source: str, *outputs, count: int | None = 1):
    cell = nbformat.v4.new_code_cell(source, execution_count=count)
    cell.outputs = list(outputs)
    return cell


def _stdout(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _sentence(text: str):
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})


def test_mentions_reads_digits_words_percentages_and_leaves_names_out():
    text = (
        "## 3. Kept\n1. NMS keeps 2,730 of the 12000 boxes (25 %), 0.50 of them, nine per cell, "
        "one by one, a hundred times; VGG16, `x2`, lesson 02, lessons 04 and 06, "
        "**01 · Features**, §10, [lesson 04](04_rpn.ipynb) and 1e-6, pages 04-06."
    )
    found = mentions(text)
    assert [m.token for m in found] == [
        "2,730", "12000", "25", "0.50", "1e-6", "04", "06", "nine", "hundred"
    ]  # fmt: skip
    keys = {m.token: m.keys for m in found}
    assert keys["2,730"] == {"2730"} and keys["25"] == {"25", "0.25"}
    assert keys["0.50"] == {"0.5"} and keys["1e-6"] == {"0.000001"}
    assert keys["nine"] == {"9"} and keys["hundred"] == {"100"}
    assert "2,730 of the 12000" in found[0].context


def test_code_numbers_leave_out_comments_and_sentences():
    source = 'n = 3  # 7 boxes\nsay(f"kept {n} of 12 boxes, é {n:.2f}")\nprint(n * 40)\n'
    assert code_numbers(source) == {"3", "40"}
    assert say_texts(source) == ["kept {} of 12 boxes, é {}"]
    assert only_says('say("a")\nsay(f"{1}")') and not only_says(source)


def test_a_number_no_output_shows_is_reported_with_its_cell_and_context():
    markdown = nbformat.v4.new_markdown_cell("## NMS\nNMS keeps 2730 boxes.")
    kept = _probe(markdown, _code("print('kept:', len(keep))", _stdout("kept: 2730\n")))
    assert unbacked(kept, {}) == []
    drifted = _probe(markdown, _code("print('kept:', len(keep))", _stdout("kept: 2731\n")))
    assert unbacked(drifted, {}) == [
        "lesson 99, Markdown cell 1 (under '## NMS'): 2730 in '## NMS NMS keeps 2730 boxes.' is "
        "neither in the lesson's code nor in an output nbval compares."
    ]
    assert unbacked(drifted, {"2730": "a definition"}) == []


def test_outputs_nbval_does_not_compare_back_nothing():
    markdown = nbformat.v4.new_markdown_cell("It took 52 s.")
    timed = _code("# NBVAL_IGNORE_OUTPUT\nprint(seconds)", _stdout("52\n"))
    unrun = _code("print(seconds)", _stdout("52\n"), count=None)
    assert len(unbacked(_probe(markdown, timed), {})) == 1
    assert len(unbacked(_probe(markdown, unrun), {})) == 1
    assert unbacked(_probe(markdown, _code("print(seconds)", _stdout("52\n"))), {}) == []


def test_a_sentence_cannot_back_its_own_literal_numbers():
    said = _code('say(f"kept {n} of 12000")', _sentence("kept 5 of 12000"))
    (problem,) = unbacked(_probe(said), {})
    assert problem.startswith("lesson 99, say() sentence in code cell 1") and "12000" in problem
    counted = _code("print(len(boxes))", _stdout("12000\n"))
    assert unbacked(_probe(said, counted), {}) == []
    # a Markdown cell may quote what a sentence computed
    quoted = nbformat.v4.new_markdown_cell("Those 5 boxes")
    assert unbacked(_probe(said, counted, quoted), {}) == []


def test_sentence_shows_as_markdown_and_as_its_own_text():
    sentence = Sentence("kept **3** boxes")
    assert sentence._repr_markdown_() == repr(sentence) == "kept **3** boxes"


@pytest.mark.slow
def test_nbval_fails_when_a_said_number_changes(tmp_path):
    """The other half: a stored sentence whose number the code no longer gives fails nbval."""
    for name, stored in (("same", "kept **3** boxes"), ("drifted", "kept **4** boxes")):
        notebook = nbformat.v4.new_notebook(
            cells=[
                _code("from tutorial_det.prose import say\nn = 3", count=1),
                _code('say(f"kept **{n}** boxes")', _sentence(stored), count=2),
            ],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        )
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval"]
        + ["--nbval-current-env", "same.ipynb", "drifted.ipynb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert "1 failed, 3 passed" in run.stdout, run.stdout[-2000:]
    assert "FAILED drifted.ipynb::Cell 1" in run.stdout
    assert "mismatch 'text/markdown'" in run.stdout and "kept **3** boxes" in run.stdout
