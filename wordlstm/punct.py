"""Punctuation normalisation: one standard full-width form for each mark.

Downloaded novels mix "．" with "。", straight ASCII quotes with “ ”, backticks and hyphens
for ‘ ’, "____" runs for an ellipsis, and half-width `,?!:;.` between Chinese characters
(the shipped 红楼梦 has 19,729 "．" against 8,521 "。"). A model trained on such text learns
both forms and mixes them when it writes. `normalize_punct` maps each line to the standard
forms before segmentation, so the tokens stay jieba's tokens of the normalised text.
"""

from __future__ import annotations

import re

HALF_TO_FULL = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；", ".": "。"}
_UNDERSCORES = re.compile(r"_{2,}")
_DOTS = re.compile(r"(?:\.{3,}|。{3,}|(?<!…)…(?!…))")
_OPEN_SINGLE_AFTER = set("：:，,。？！“\"")
_FULL_STOP = re.compile(r"(?<![0-9])．|．(?![0-9])")  # "．" not between digits
_WALK = re.compile(r"[\"'`\-,?!:;.．]")  # marks whose form depends on their neighbours
_MARKS = re.compile(r"[\"'`\-,?!:;.．“”‘’]")  # ... and the quotes that open or close


def _is_cjk(c: str) -> bool:
    """A Chinese character or full-width punctuation: the context that makes a mark Chinese."""
    return ("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" or "\u3000" <= c <= "\u303f"
            or "\uff00" <= c <= "\uffef" or c in "“”‘’…—")


def _chinese_context(line: str, i: int) -> bool:
    """True when the mark at `i` sits in Chinese text: after a Chinese character or mark, or
    before one and not after an ASCII letter or digit (so `3.5` and `Mr.` stay)."""
    prev = line[i - 1] if i > 0 else ""
    nxt = line[i + 1] if i + 1 < len(line) else ""
    if prev and _is_cjk(prev):
        return True
    if prev and prev.isascii() and prev.isalnum():
        return False
    return bool(nxt) and _is_cjk(nxt) or not prev


def normalize_punct(line: str) -> str:
    """One line (a paragraph) with standard full-width punctuation.

    Straight double quotes are paired within the paragraph (an open “ is closed by the next
    straight quote); a backtick opens ‘ and a hyphen closes an open ‘ (a common conversion
    artefact); "．" becomes "。" except between digits; `_` runs and ASCII "..." become "……".
    """
    if not line:
        return line
    if "_" in line:
        line = _UNDERSCORES.sub("……", line)
    if "．" in line:
        line = _FULL_STOP.sub("。", line)
    if "." in line or "。。。" in line or "…" in line:
        line = _DOTS.sub("……", line)
    if not _WALK.search(line):  # most lines: nothing left that needs its context
        return line
    # Visit only the marks (a regex finds them), copying the text between them as slices.
    out, last = [], 0
    double_open = single_open = False
    n = len(line)
    for m in _MARKS.finditer(line):
        i, c = m.start(), m.group()
        out.append(line[last:i])
        last = i + 1
        if c == "．":
            between_digits = 0 < i < n - 1 and line[i - 1].isdigit() and line[i + 1].isdigit()
            c = "." if between_digits else "。"
        elif c in HALF_TO_FULL and _chinese_context(line, i):
            c = HALF_TO_FULL[c]
        elif c == "“":
            double_open = True
        elif c == "”":
            double_open = False
        elif c == "‘":
            single_open = True
        elif c == "’":
            single_open = False
        elif c == '"':
            c = "”" if double_open else "“"
            double_open = not double_open
        elif c == "`" and _chinese_context(line, i):
            c, single_open = "‘", True
        elif c == "'" and _chinese_context(line, i):
            c = "’" if single_open else "‘"
            single_open = not single_open
        elif c == "-" and _chinese_context(line, i):
            if single_open:
                c, single_open = "’", False
            elif i > 0 and line[i - 1] in _OPEN_SINGLE_AFTER:
                c, single_open = "‘", True
        out.append(c)
    out.append(line[last:])
    return "".join(out)
