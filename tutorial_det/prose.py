"""Sentences that quote the numbers a lesson computes (used by every lesson, shown in lesson 00).

A lesson that states a computed number writes the sentence as an f-string and shows it with
``say``::

    # %% jupyter={"source_hidden": true}
    say(f"NMS keeps **{len(keep)}** of the {len(boxes)} boxes.")

The sentence becomes a cell output (Markdown, rendered like the prose around it; the cell's code
is stored collapsed), so nbval compares it with the stored run: when the number changes, `make
test` fails on that cell instead of leaving the prose behind. ``tests/test_prose.py`` checks the
other direction: a number written in a Markdown cell must appear in the lesson's code or in an
output nbval compares.
"""

from __future__ import annotations

import textwrap


class Sentence:
    """Markdown text that displays as Markdown in Jupyter and as plain text elsewhere.

    ``repr`` is the text itself, so a lesson run as a plain script prints the sentence, and the
    ``text/plain`` copy nbval compares reads like the Markdown one.
    """

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def say(text: str) -> None:
    """Display ``text`` (Markdown, usually an f-string quoting computed values) as cell output.

    A triple-quoted string is dedented and stripped first, so a paragraph may span lines::

        say(f'''
            The cup's box overlaps the saucer's with IoU **{iou:.2f}**: the union is dominated
            by the larger box.
        ''')
    """
    from IPython.display import display

    display(Sentence(textwrap.dedent(text).strip()))
