"""Multiple-choice options: find them in a question's text, and render them into a prompt.

Why: the PAPO-style benchmarks keep their options inside the question text
("Choices:\\n(A) 3/11\\n(B) 8/11", "A:30°", or inline "A. 4 cm B. 5 cm"), while the
grader (`fastgrpo.reward.grade(..., choices=...)`) needs them as a list to map a
letter to its option text and back. Pure string rules, no sympy.
"""

from __future__ import annotations

import re

LETTERS = "ABCDEFGHIJKLMNOP"

# A letter marker at the start of a line: "A:", "A.", "A)", "(A)", "A：".
_LINE_OPTION = re.compile(r"^\s*(?:\(([A-P])\)|([A-P])\s*[\.\):：])\s*(.*?)\s*$")
# The same markers anywhere after whitespace (inline option lists such as WeMath's).
_INLINE_MARK = re.compile(r"(?:(?<=\s)|^)(?:\(([A-P])\)|([A-P])[\.\):：])(?=\s|\S)")
_INSTRUCTION_TAIL = re.compile(r"\s*(You first think|Please reason|Answer with the option|<think>).*$", re.S)
_HEADER = re.compile(r"(choices|options)\s*[:：]", re.I)


def _clean_option(text: str) -> str:
    text = _INSTRUCTION_TAIL.sub("", text).strip()
    return text.rstrip(";,；").strip()


def _consecutive_from_a(marks: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The last run A, B, C, ... (at least two) among (letter, start, end) markers."""
    best: list[tuple[str, int, int]] = []
    run: list[tuple[str, int, int]] = []
    for m in marks:
        if m[0] == "A":
            run = [m]
        elif run and LETTERS.index(m[0]) == LETTERS.index(run[-1][0]) + 1:
            run.append(m)
        else:
            continue
        if len(run) >= 2:
            best = list(run)
    return best


def parse_options(question: str) -> list[str]:
    """Option texts in order (index 0 = A) found in `question`; empty when it has none."""
    lines = question.splitlines()
    marks: list[tuple[str, int, int]] = []
    for i, line in enumerate(lines):
        m = _LINE_OPTION.match(line)
        if m:
            marks.append((m.group(1) or m.group(2), i, i))
    run = _consecutive_from_a(marks)
    if run:
        return [_clean_option(_LINE_OPTION.match(lines[i]).group(3)) for _, i, _ in run]  # type: ignore[union-attr]
    headers = list(_HEADER.finditer(question))
    text = question[headers[-1].end() :] if headers else question
    inline = [(m.group(1) or m.group(2), m.start(), m.end()) for m in _INLINE_MARK.finditer(text)]
    run = _consecutive_from_a(inline)
    if len(run) < (2 if headers else 3):  # without a "Choices:" header, "A. ... B. ..." may be prose
        return []
    out = []
    for j, (_, _, end) in enumerate(run):
        stop = run[j + 1][1] if j + 1 < len(run) else len(text)
        out.append(_clean_option(text[end:stop]))
    return out if all(out) else []


def format_options(options: list[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options))
