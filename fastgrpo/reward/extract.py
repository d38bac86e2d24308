"""Answer extraction: `\\boxed{}` content, `<answer>` tags, multiple-choice letters.

Pure string functions (no sympy), safe to call on any model output: they are
linear-time scans, so a pathological response cannot hang them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "extract_all_boxed",
    "extract_answer",
    "extract_answer_tag",
    "extract_boxed",
    "extract_choice_letter",
    "is_choice_letter",
    "match_option_text",
    "normalize_option_text",
    "strip_think",
]

_BOX_CMDS = ("\\boxed", "\\fbox")
_THINK_CLOSE = "</think>"


def strip_think(response: str) -> str:
    """Text after the last `</think>` (the whole response when there is none).

    Why: the final answer lives after the thinking span; a `\\boxed{}` inside
    the monologue is a draft, not the answer.
    """
    pos = response.rfind(_THINK_CLOSE)
    return response if pos < 0 else response[pos + len(_THINK_CLOSE) :]


def _brace_pairs(text: str) -> dict[int, int]:
    """Map each `{` index to its matching `}` index in one linear pass.

    Escaped braces (`\\{`, `\\}`) are literal text. Unmatched `{` are absent.
    One pass for the whole text keeps box extraction linear even on
    adversarial inputs with thousands of unbalanced boxes.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BOX_BARE_ARG = re.compile(r" +([^\s$]+)")


def _find_boxes(text: str) -> list[tuple[int, int, str]]:
    """Top-level `\\boxed{...}` / `\\fbox{...}` / `\\boxed x` spans: (start, end, content).

    Linear time: command positions come from one regex scan and brace
    matches from one stack pass.
    """
    out: list[tuple[int, int, str]] = []
    if "\\boxed" not in text and "\\fbox" not in text:
        return out
    pairs: dict[int, int] | None = None
    n = len(text)
    consumed = 0  # end of the last accepted box; boxes starting before it are nested
    for m in _BOX_RE.finditer(text):
        s = m.start()
        if s < consumed:
            continue
        j = m.end()
        k = j
        while k < n and text[k] in " \t":
            k += 1
        if k < n and text[k] == "{":
            if pairs is None:
                pairs = _brace_pairs(text)
            close = pairs.get(k, -1)
            if close < 0:
                continue
            out.append((s, close + 1, text[k + 1 : close]))
            consumed = close + 1
        elif j < n and text[j] == " ":
            # "\boxed 5" form: the argument runs to the next whitespace or `$`.
            bare = _BOX_BARE_ARG.match(text, j)
            if bare:
                out.append((s, bare.end(), bare.group(1)))
                consumed = bare.end()
    return out


def _unwrap_nested(content: str) -> str:
    """`\\boxed{\\boxed{5}}` -> `5`: peel boxes that span the whole content."""
    for _ in range(16):
        c = content.strip()
        boxes = _find_boxes(c)
        if len(boxes) == 1 and boxes[0][0] == 0 and boxes[0][1] == len(c):
            content = boxes[0][2]
        else:
            break
    return content.strip()


def extract_all_boxed(text: str) -> list[str]:
    """Contents of every top-level box, in order (nested boxes unwrapped)."""
    return [_unwrap_nested(c) for _, _, c in _find_boxes(text)]


def extract_boxed(text: str, last: bool = True) -> str | None:
    """Content of the last (or first) top-level `\\boxed{}` / `\\fbox{}`, or None.

    Why: `\\boxed{}` is the answer convention of the thinking template; braces
    are matched (so `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`), nested
    boxes are unwrapped and `\\boxed 5` is accepted.
    """
    boxes = _find_boxes(text)
    if not boxes:
        return None
    return _unwrap_nested(boxes[-1 if last else 0][2])


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def extract_answer_tag(text: str) -> str | None:
    """Content of the last `<answer>...</answer>`, or None."""
    matches = _ANSWER_TAG.findall(text)
    return matches[-1].strip() if matches else None


def extract_answer(response: str, template: str = "think_boxed") -> str | None:
    """The final answer a response commits to, or None when it has no explicit one.

    Why: grading should look at what the template designates as the answer.
    Only the text after `</think>` is searched when present.

    * think_answer: last `<answer>` content (a box inside it is unwrapped),
      else the last box.
    * think_boxed / boxed / none: last box, else the last `<answer>` content.
    """
    tail = strip_think(response)
    boxed = extract_boxed(tail)
    tag = extract_answer_tag(tail)
    if template == "think_answer":
        if tag is not None:
            inner = extract_boxed(tag)
            return inner if inner is not None else tag
        return boxed
    if boxed is not None:
        return boxed
    if tag is not None:
        inner = extract_boxed(tag)
        return inner if inner is not None else tag
    return None


# ----------------------------------------------------------------------------- multiple choice

_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|textit|operatorname)\s*\{([^{}]*)\}")
_LETTER_ONLY = re.compile(r"^[(\[]?\s*([A-Z])\s*[)\]]?\s*[.:)]?$")
# the same shapes with a lower-case letter: only where the question is known to be multiple choice
_LETTER_ONLY_ANY_CASE = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:)]?$")
_LETTER_LEAD = re.compile(r"^[(\[]\s*([A-Z])\s*[)\]]|^([A-Z])\s*[.:)]\s+\S|^([A-Z])\s*[.:)]$")
_LETTER_LEAD_ANY_CASE = re.compile(r"^[(\[]\s*([A-Za-z])\s*[)\]]\s*\S|^([A-Za-z])[.)]\s+\S")
_LETTER_PHRASE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:)?\s*(?:option\s*)?[(\[]?\s*([A-Z])\s*[)\]]?(?![A-Za-z])",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    t = text.strip()
    for _ in range(3):
        t2 = _TEXT_WRAP.sub(r"\1", t)
        if t2 == t:
            break
        t = t2
    t = t.replace("$", "").strip()
    t = t.strip("*").strip()
    return t


def is_choice_letter(text: str, num_choices: int | None = None) -> str | None:
    """`B`, `(B)`, `B.`, `B)`, `\\text{B}` -> "B"; anything else -> None."""
    m = _LETTER_ONLY.match(_clean(text))
    if not m:
        return None
    letter = m.group(1)
    if num_choices is not None and not 0 <= ord(letter) - ord("A") < num_choices:
        return None
    return letter


def extract_choice_letter(
    text: str, num_choices: int | None = None, allow_lower: bool = False
) -> str | None:
    """The option letter an answer names, or None.

    Why: multiple-choice answers come as "B", "(B)", "[B]", "B.", "(B) 12 cm",
    "B: 12", "Option B", "The answer is (B)". Only upper-case letters count
    unless `allow_lower` (a lone lower-case letter is more likely a variable;
    the grader allows it when the gold is an option letter, where "b" / "(b)"
    can only mean option B); with `num_choices` the letter must be one of the options.
    """
    t = _clean(text)
    if not t:
        return None

    def ok(letter: str | None) -> str | None:
        if letter is None:
            return None
        if num_choices is not None and not 0 <= ord(letter) - ord("A") < num_choices:
            return None
        return letter

    m = _LETTER_ONLY.match(t)
    if m:
        return ok(m.group(1))
    m = _LETTER_LEAD.match(t)
    if m:
        return ok(next(g for g in m.groups() if g))
    if allow_lower:
        m = _LETTER_ONLY_ANY_CASE.match(t) or _LETTER_LEAD_ANY_CASE.match(t)
        if m:
            return ok(next(g for g in m.groups() if g).upper())
    matches = _LETTER_PHRASE.findall(t)
    if matches:
        return ok(matches[-1].upper() if len(matches[-1]) == 1 else None)
    return None


def normalize_option_text(text: str) -> str:
    """Loose form of an option's text for equality tests (case, spaces, LaTeX wrappers)."""
    t = _clean(text)
    t = re.sub(r"\\[,;:! ]", "", t)
    t = t.replace("\\left", "").replace("\\right", "")
    t = re.sub(r"\s+", "", t).lower()
    return t.rstrip(".")


def match_option_text(answer: str, choices: Sequence[str]) -> str | None:
    """Letter of the unique choice whose normalised text equals the answer's, else None.

    Also accepts "B. <text>"-style choices (the letter prefix is ignored).
    """
    a = normalize_option_text(answer)
    if not a:
        return None
    hits = []
    for i, c in enumerate(choices):
        c_norm = normalize_option_text(re.sub(r"^\(?[A-Z]\)?[.:)]\s*", "", str(c).strip()))
        if c_norm == a:
            hits.append(chr(ord("A") + i))
    return hits[0] if len(set(hits)) == 1 else None
