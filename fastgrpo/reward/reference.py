"""`reference` grading mode: the PAPO evaluation rule, reimplemented (SPEC section 3).

The rule, as the PAPO release applies it to every benchmark:

1. remove whitespace around `<`, `>` and `/` in the response;
2. take the content of the *last* `\\boxed{` occurrence (braces matched);
   no box (or an unclosed one) is wrong;
3. correct iff the normalised strings are equal, or else sympy finds the
   two expressions equal.

Steps 1-2 follow the published rule literally. Step 3's normaliser and the
sympy comparison below are our own implementation of that description (the
original grader's code is not copied); see docs/algorithm.md for the list of
normalisations. There is deliberately no letter-to-option mapping.
"""

from __future__ import annotations

import math
import re

__all__ = ["reference_accuracy", "reference_extract", "reference_grade_answer", "reference_normalize"]

_SPACE_AROUND = re.compile(r"\s*([<>/])\s*")


def reference_extract(response: str) -> str | None:
    """Content of the last `\\boxed{` occurrence after the whitespace rule, or None."""
    text = _SPACE_AROUND.sub(r"\1", response)
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + len("\\boxed{") : i]
        i += 1
    return None


# ----------------------------------------------------------------------------- normalisation

_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_TRAILING_UNIT = re.compile(r"^(.*?\d)\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .^0-9]*\}\s*$")
_DROP = (
    "\\left",
    "\\right",
    "\\displaystyle",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "$",
)


def _braced_frac_sqrt(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{x}` -> `\\frac{1}{x}`, `\\sqrt2` -> `\\sqrt{2}`."""
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)
    return s


def reference_normalize(answer: str) -> str:
    """Canonical string form used for the equality test of the reference rule."""
    s = answer.strip()
    m = _TRAILING_UNIT.match(s)
    if m:
        s = m.group(1)
    for _ in range(3):
        s2 = _WRAPPERS.sub(r"\1", s)
        if s2 == s:
            break
        s = s2
    for tok in _DROP:
        s = s.replace(tok, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _braced_frac_sqrt(s)
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    s = re.sub(r"^[a-zA-Z]=", "", s)  # "x=3" -> "3"
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\.\d+", s):
        s = s.replace(".", "0.", 1)
    if re.fullmatch(r"-?\d+\.\d*", s):
        try:
            f = float(s)
            s = str(int(f)) if f.is_integer() and abs(f) < 1000000000000000.0 else s.rstrip("0").rstrip(".")
        except ValueError:
            pass
    return s.lower()


# ----------------------------------------------------------------------------- sympy comparison

_FUNC_MAP = {
    "\\sin": "sin",
    "\\cos": "cos",
    "\\tan": "tan",
    "\\ln": "log",
    "\\log": "log",
    "\\exp": "exp",
    "\\pi": "pi",
    "\\infty": "oo",
    "\\cdot": "*",
    "\\times": "*",
    "\\div": "/",
}


def _replace_command_args(s: str, cmd: str, nargs: int, fmt: str) -> str | None:
    """Rewrite `cmd{a}{b}` occurrences with fmt.format(*args); None on unbalanced input."""
    out = []
    i = 0
    while True:
        j = s.find(cmd, i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        k = j + len(cmd)
        args = []
        for _ in range(nargs):
            if k >= len(s) or s[k] != "{":
                return None
            depth = 0
            start = k
            while k < len(s):
                if s[k] == "{":
                    depth += 1
                elif s[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if depth != 0:
                return None
            args.append(s[start + 1 : k])
            k += 1
        out.append(fmt.format(*args))
        i = k


def _latex_to_python(s: str) -> str | None:
    s = re.sub(r"\\sqrt\[([^\]]+)\]", r"\\root{\1}", s)
    for _ in range(8):  # nested fractions / roots, innermost handled by repetition
        prev = s
        s2 = _replace_command_args(s, "\\frac", 2, "(({0})/({1}))")
        s2 = None if s2 is None else _replace_command_args(s2, "\\root", 2, "(({1})**(1/({0})))")
        s2 = None if s2 is None else _replace_command_args(s2, "\\sqrt", 1, "sqrt({0})")
        if s2 is None:
            return None
        s = s2
        if s == prev:
            break
    for k, v in _FUNC_MAP.items():
        s = s.replace(k, f" {v} ")
    if "\\" in s:
        return None  # an unknown command: do not guess
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    return s


def _sympy_parse(s: str):  # -> sympy.Expr | None
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    py = _latex_to_python(s)
    if py is None or not py.strip():
        return None
    try:
        return parse_expr(
            py, transformations=(*standard_transformations, implicit_multiplication_application, convert_xor)
        )
    except Exception:
        return None


def _safe_to_eval(s: str) -> bool:
    """Refuse inputs sympy could spend unbounded time on (long, many symbols, huge powers)."""
    if len(s) > 100:
        return False
    if re.search(r"\^\s*\{?\s*-?\d{4,}", s) or re.search(r"\d{30,}", s):
        return False
    stripped = re.sub(r"\\[a-zA-Z]+", "", s)
    letters = set(re.findall(r"[a-zA-Z]", stripped))
    return len(letters) <= 2


def _sympy_equal(a: str, b: str) -> bool:
    if not (_safe_to_eval(a) and _safe_to_eval(b)):
        return False
    ea, eb = _sympy_parse(a), _sympy_parse(b)
    if ea is None or eb is None:
        return False
    try:
        import sympy

        diff = sympy.simplify(ea - eb)
        return bool(diff == 0)
    except Exception:
        return False


def _split_tuple(s: str) -> list[str]:
    """Top-level comma split of `(a,b)`, `[a,b)`, ... ; [s] when it is not a bracketed list."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        inner = s[1:-1]
        parts, depth, cur = [], 0, []
        for c in inner:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            if c == "," and depth == 0:
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(c)
        parts.append("".join(cur))
        if len(parts) > 1:
            return [p.strip() for p in parts]
    return [s]


def _is_int_literal(s: str) -> bool:
    """A number literal with an integer value: "7", "-3", "7.0", "1e3" (not "28/4")."""
    try:
        f = float(s)
    except ValueError:
        return False
    return math.isfinite(f) and abs(f - round(f)) <= 1e-7


_FRAC_SLASH = re.compile(r"(-?\d+)/(0*[1-9]\d*)")
_FRAC_LATEX = re.compile(r"(-?)\\frac\{(\d+)\}\{(0*[1-9]\d*)\}")


def _plain_fraction(s: str) -> str | None:
    """`3/4` or `\\frac{3}{4}` -> "3/4"; None for anything else."""
    m = _FRAC_SLASH.fullmatch(s)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    m = _FRAC_LATEX.fullmatch(s)
    if m:
        return f"{m.group(1)}{m.group(2)}/{m.group(3)}"
    return None


def _element_equal(gold: str, pred: str) -> bool:
    """One element: exact, then the integer / plain-fraction guards, then sympy.

    Two plain fractions must be written identically (an unreduced 28/4 does
    not match 7, nor 2/4 match 1/2), and an integer answer must be written as
    an integer: these are part of the reference rule's strictness.
    """
    if gold == pred:
        return True
    fg, fp = _plain_fraction(gold), _plain_fraction(pred)
    if fg is not None and fp is not None:
        return fg == fp
    if _is_int_literal(gold) != _is_int_literal(pred):
        return False
    return _sympy_equal(gold, pred)


def reference_grade_answer(given: str | None, ground_truth: str) -> bool:
    """Normalised string equality, then sympy equivalence (element-wise for tuples/intervals)."""
    if given is None:
        return False
    g = reference_normalize(ground_truth)
    p = reference_normalize(given)
    if not g:
        return False
    if g == p:
        return True
    if not p:
        return False
    g_parts, p_parts = _split_tuple(g), _split_tuple(p)
    if len(g_parts) > 1 or len(p_parts) > 1:
        if len(g_parts) != len(p_parts) or g[0] != p[0] or g[-1] != p[-1]:
            return False
        return all(_element_equal(x, y) for x, y in zip(g_parts, p_parts, strict=True))
    return _element_equal(g, p)


def reference_accuracy(response: str, ground_truth: str) -> float:
    """1.0 / 0.0 under the reference rule."""
    return 1.0 if reference_grade_answer(reference_extract(response), str(ground_truth)) else 0.0
