"""Find the numbers a lesson's prose states that the lesson does not compute.

A number in a Markdown cell is *backed* when it appears in the lesson's code (comments and the
text of ``say`` sentences left out) or in an output nbval compares (cells that ran, without
``NBVAL_IGNORE_OUTPUT`` / ``NBVAL_SKIP``). The literal text of a ``say(f"...")`` sentence is prose
too; it is checked the same way, except that sentences cannot back each other's literal text.

Tokens: digits (``8940``, ``0.397``, ``2,359,808``, ``1e-6``; ``25 %`` also matches ``0.25``),
number words from "three" up (``nine``, ``twenty``, ``hundred``; "zero", "one" and "two" read as
plain English too often to check), with a minus sign ignored. A range ``04-06`` gives two numbers.
Left out because they name things rather than state results: digits inside names (``VGG16``,
``x2``, ``conv5_3``), heading and list numbers (``## 3.``, ``1. ``), lesson references (``lesson
02``, ``lessons 04 and 06``, ``01 · Feature extraction``), section signs (``§10``) and link
targets. Numbers compare by value: ``0.50`` is ``0.5``, ``1,000`` is ``1000``.

To audit a lesson, list every number its prose states and what backs it::

    PYTHONPATH=. python tests/prose_numbers.py notebooks/03_iou_and_labelling.ipynb
"""

from __future__ import annotations

import ast
import configparser
import io
import re
import tokenize
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import nbformat
from nbval.plugin import find_comment_markers, find_metadata_tags

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"

_NUMBER = re.compile(
    r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)*(?:[eE][-+]?\d+)?)(?P<percent>\s?%)?"
)
_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
    if value >= 3
} | {
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 1000000,
}
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_LESSON = r"\d\d(?!\d)"
#: Spans of Markdown that name things (lessons, sections, links) rather than state numbers.
_NAMES = re.compile(
    "|".join(
        [
            rf"\blessons?\s+{_LESSON}(?:\s*(?:,|and|or|to|-|–)\s*{_LESSON})*",
            rf"(?<!\d){_LESSON}\s*·",
            r"§\s?\d+(?:\.\d+)*",
            r"\]\([^)]*\)",
            r"https?://\S+",
            r"^#{1,6}\s+\d+(?:\.\d+)*\.?(?=\s)",
            r"^\s*\d+\.\s",
            r"<!--.*?-->",
        ]
    ),
    re.DOTALL | re.MULTILINE,
)


def number_key(token: str) -> str:
    """One spelling per value: ``"0.50"`` and ``"0.5"``, ``"1,000"`` and ``"1000"`` agree."""
    text = token.replace(",", "")
    if text.count(".") > 1:  # a version such as 2.14.1
        return text
    try:
        return format(Decimal(text).normalize(), "f")
    except InvalidOperation:
        return text


@dataclass(frozen=True)
class Mention:
    """A number as the prose writes it, with the keys it may match and its surroundings."""

    token: str
    keys: frozenset[str]
    context: str


def mentions(text: str) -> list[Mention]:
    """The numbers stated in a piece of prose (see the module docstring for what counts)."""
    # Names are blanked with as many spaces, so positions (and the context shown) stay the same.
    blanked = _NAMES.sub(lambda m: " " * len(m.group(0)), text)
    found = []
    for match in _NUMBER.finditer(blanked):
        token = match.group(0).removesuffix("%").strip()
        keys = {number_key(token)}
        if match.group("percent"):
            keys.add(number_key(str(Decimal(token.replace(",", "")) / 100)))
        found.append(Mention(token, frozenset(keys), _around(text, match)))
    for match in _WORD.finditer(blanked):
        value = str(_WORDS[match.group(1).lower()])
        found.append(Mention(match.group(1), frozenset({value}), _around(text, match)))
    return found


def numbers_in(text: str) -> set[str]:
    """Every number key in code or output text (no prose rules: names are not left out)."""
    keys = set()
    for match in _NUMBER.finditer(text):
        token = match.group(0).removesuffix("%").strip()
        keys.add(number_key(token))
    return keys


def _around(text: str, match: re.Match, width: int = 45) -> str:
    start, end = max(match.start() - width, 0), min(match.end() + width, len(text))
    snippet = " ".join(text[start:end].split())
    return ("…" if start else "") + snippet + ("…" if end < len(text) else "")


# --------------------------------------------------------------------------- code cells


def _is_say(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "say") or (
        isinstance(func, ast.Attribute) and func.attr == "say"
    )


def _parse(source: str) -> ast.Module:
    # IPython magics and shell lines are not Python: blank them, keeping line numbers.
    return ast.parse(re.sub(r"(?m)^\s*[%!].*$", "", source))


def say_texts(source: str) -> list[str]:
    """The literal text of each ``say(...)`` sentence in a cell, ``{}`` where a value goes."""
    texts = []
    for node in ast.walk(_parse(source)):
        if _is_say(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr):
                texts.append(
                    "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in arg.values)
                )
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                texts.append(arg.value)
    return texts


def only_says(source: str) -> bool:
    """True when a cell does nothing but show ``say`` sentences."""
    body = _parse(source).body
    return bool(body) and all(isinstance(s, ast.Expr) and _is_say(s.value) for s in body)


def code_numbers(source: str) -> set[str]:
    """Numbers written in a cell's code, leaving out comments and ``say`` sentences."""
    rows = [list(line) for line in source.splitlines(keepends=True)]

    def char_col(row: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, tokenize characters
        return len("".join(rows[row]).encode()[:byte_col].decode(errors="ignore"))

    spans = []  # (row, col, end row, end col), 0-based rows, character columns
    for node in ast.walk(_parse(source)):
        if _is_say(node):
            row, end_row = node.lineno - 1, node.end_lineno - 1
            spans.append(
                (
                    row,
                    char_col(row, node.col_offset),
                    end_row,
                    char_col(end_row, node.end_col_offset),
                )
            )
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            spans.append((tok.start[0] - 1, tok.start[1], tok.end[0] - 1, tok.end[1]))
    for row, col, end_row, end_col in spans:
        for r in range(row, end_row + 1):
            first = col if r == row else 0
            last = end_col if r == end_row else len(rows[r])
            rows[r][first:last] = " " * (last - first)
    return numbers_in("".join("".join(row) for row in rows))


# --------------------------------------------------------------------------- notebooks


def _sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser()
    parser.read(SANITIZE)
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def compared(cell) -> bool:
    """Whether nbval compares this code cell's stored outputs with a fresh run's."""
    options = dict(find_metadata_tags(cell.metadata))
    options.update(find_comment_markers(cell.source))
    return (
        cell.get("execution_count") is not None
        and options.get("check", True)
        and not options.get("skip")
    )


@dataclass
class Lesson:
    """A stored lesson's prose and the numbers that back it."""

    name: str
    cells: list
    code: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    said: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> Lesson:
        return cls.of(path.stem[:2], nbformat.read(path, as_version=4))

    @classmethod
    def of(cls, name: str, notebook) -> Lesson:
        lesson = cls(name, notebook.cells)
        sanitize = _sanitizers()

        def clean(text: str) -> str:
            for pattern, replacement in sanitize:
                text = pattern.sub(replacement, text)
            return text

        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            lesson.code |= code_numbers(cell.source)
            if not compared(cell):
                continue
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    lesson.outputs |= numbers_in(clean(out.text))
                elif out.output_type in ("execute_result", "display_data"):
                    target = lesson.said if "text/markdown" in out.data else lesson.outputs
                    for mime, value in out.data.items():
                        if mime.startswith("text/"):
                            target |= numbers_in(clean(value))
        return lesson

    def prose(self):
        """``(cell number, heading, kind, text)`` for every Markdown cell and ``say`` sentence."""
        heading = "(before the first heading)"
        for number, cell in enumerate(self.cells, start=1):
            if cell.cell_type == "markdown":
                headings = re.findall(r"(?m)^#{1,6} .*$", cell.source)
                heading = headings[-1].strip() if headings else heading
                yield number, heading, "Markdown cell", cell.source
            elif cell.cell_type == "code":
                for text in say_texts(cell.source):
                    yield number, heading, "say() sentence in code cell", text


def report(path: Path) -> str:
    """Every number a stored lesson's prose states, and what backs it (an aid for its audit)."""
    lesson = Lesson.read(path)
    lines = []
    for number, _, kind, text in lesson.prose():
        for mention in mentions(text):
            found = [
                where
                for where, keys in (
                    ("code", lesson.code),
                    ("output", lesson.outputs),
                    ("sentence", lesson.said),
                )
                if mention.keys & keys
            ]
            backing = ", ".join(found) or "NOTHING"
            lines.append(
                f"{kind} {number:>3} | {mention.token:>10} | {backing:<22} | {mention.context}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(report(Path(name)))
