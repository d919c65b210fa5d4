"""Rhyme classes of Chinese characters, for regular verse (poems' even lines rhyme).

A character's rhyme is its final (pypinyin, the well-kept pinyin library, default reading)
grouped as the thirteen classes of Mandarin verse (十三辙) group finals: the medials i/u/ü
do not change the rhyme (天 tian and 山 shan rhyme). It is modern Mandarin, an approximation
for Tang poems (whose rhyme books, 平水韵, predate it), but it is what readers hear today.
"""

from __future__ import annotations

_CLASSES = {
    "a": "a", "ia": "a", "ua": "a",
    "o": "o", "e": "o", "uo": "o",
    "ie": "ie", "ve": "ie", "ue": "ie",
    "i": "i", "v": "i", "er": "i",
    "u": "u",
    "ai": "ai", "uai": "ai",
    "ei": "ei", "uei": "ei", "ui": "ei",
    "ao": "ao", "iao": "ao",
    "ou": "ou", "iou": "ou", "iu": "ou",
    "an": "an", "ian": "an", "uan": "an", "van": "an",
    "en": "en", "in": "en", "uen": "en", "un": "en", "vn": "en",
    "ang": "ang", "iang": "ang", "uang": "ang",
    "eng": "eng", "ing": "eng", "ong": "eng", "iong": "eng", "ueng": "eng",
}


def rhyme_classes(chars: list[str]) -> list[str | None]:
    """The rhyme class of each single Chinese character (None for anything else)."""
    from pypinyin import Style, lazy_pinyin

    out: list[str | None] = []
    for c in chars:
        if len(c) != 1 or not "\u4e00" <= c <= "\u9fff":
            out.append(None)
            continue
        final = lazy_pinyin(c, style=Style.FINALS, strict=True)[0]
        out.append(_CLASSES.get(final))
    return out
