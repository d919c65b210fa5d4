"""Property tests (hypothesis) of encoding detection, reading and `segment` (issue 20).

Whatever the bytes (arbitrary, a mixture of encodings, lines of any length, read in chunks
of any size), reading ends in one `UserError` or a correct result: never another exception,
and never mojibake for text that is in one encoding. Examples are bounded so that the whole
file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from unittest import mock

import pytest
from conftest import assert_clear_error, run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wordlstm import textio
from wordlstm.errors import UserError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _pairs(lead: range, trail: range, enc: str) -> str:
    out = []
    for a in lead:
        for b in trail:
            with contextlib.suppress(UnicodeDecodeError):
                out.append(bytes((a, b)).decode(enc))
    return "".join(out)


# Realistic alphabets: the most common characters of each script and everyday punctuation.
SIMPLIFIED = _pairs(range(0xB0, 0xD8), range(0xA1, 0xFF), "gb2312")  # GB2312 level 1
TRADITIONAL = "".join(c for c in _pairs(range(0xA4, 0xC7), list(range(0x40, 0x7F))
                                        + list(range(0xA1, 0xFF)), "big5")
                      if "\u4e00" <= c <= "\u9fff")  # Big5's frequently used block
CP950_EXTRA = "裏碁銹墻恒粧嫺"  # Windows Big5 only
PUNCT = "，。！？：；、“”（）《》"
ASCII = "abcdefghijklmnopqrstuvwxyz ABC0123456789.,:!?-"
SCRIPTS = {
    "utf-8": SIMPLIFIED + TRADITIONAL, "utf-8-sig": SIMPLIFIED, "gb18030": SIMPLIFIED,
    "big5": TRADITIONAL, "cp950": TRADITIONAL + CP950_EXTRA * 20, "utf-16": SIMPLIFIED,
    "utf-16-le": SIMPLIFIED + TRADITIONAL, "utf-16-be": TRADITIONAL,
}
LEGACY = ("gb18030", "big5")


@contextlib.contextmanager
def _file(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "input.txt")
        with open(path, "wb") as f:
            f.write(data)
        yield d, path


@st.composite
def _realistic_lines(draw, cjk: str, min_lines: int = 2):
    """Lines of sentences in one script, of any length (empty lines and long ones too)."""
    sentence = st.builds(lambda words, end: words + end,
                         st.text(cjk, min_size=8, max_size=30),
                         st.sampled_from(PUNCT[:4]))
    line = st.one_of(
        st.lists(sentence, min_size=1, max_size=8).map("".join),
        st.lists(sentence, min_size=30, max_size=120).map("".join),  # one long line
        st.builds(lambda a, s: a + s, st.text(ASCII + PUNCT, max_size=20), sentence),
        st.just(""),
        st.builds(lambda s: "\u3000\u3000" + s, sentence),
    )
    return draw(st.lists(line, min_size=min_lines, max_size=12))


def _read(path, **kwargs) -> list[str]:
    return list(textio.iter_lines(path, **kwargs))


@pytest.mark.parametrize("encoding", sorted(SCRIPTS))
@settings(FUZZ, max_examples=15)
@given(data=st.data(), chunk=st.sampled_from([5, 64, 4096, 1 << 20]),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_realistic_text_in_any_encoding_reads_back_exactly(encoding, data, chunk, newline):
    lines = data.draw(_realistic_lines(SCRIPTS[encoding]))
    text = newline.join(lines) + data.draw(st.sampled_from(["", newline]))
    assume(sum(c in SCRIPTS[encoding] for c in text) >= 40)
    expected = text.splitlines()
    with _file(text.encode(encoding)) as (_, path), mock.patch.object(textio, "CHUNK", chunk):
        assert _read(path) == expected


@FUZZ
@given(data=st.binary(max_size=3000),
       prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]),
       chunk=st.sampled_from([3, 64, 1 << 20]),
       errors=st.sampled_from(["strict", "replace"]))
def test_arbitrary_bytes_give_text_or_one_user_error(data, prefix, chunk, errors):
    with _file(prefix + data) as (_, path), mock.patch.object(textio, "CHUNK", chunk):
        try:
            lines = _read(path, errors=errors)
        except UserError as err:
            assert "\n" not in str(err) and path in str(err)
            return
        assert all(isinstance(line, str) for line in lines)
        if errors == "strict":
            # Read without errors: the bytes are valid in the encoding it chose; and where only
            # one of the encodings it knows decodes them, that is the one.
            valid = {}
            for enc in textio.GUESSES + ("utf-16-le", "utf-16-be"):
                with contextlib.suppress(UnicodeDecodeError):
                    valid[enc] = (prefix + data).decode(enc)
            if len(set(valid.values())) == 1:  # (a byte-order mark is not text)
                only = "".join(next(iter(valid.values())).splitlines())
                assert "".join(lines).lstrip("\ufeff") == only.lstrip("\ufeff")


@FUZZ
@given(data=st.data(), legacy=st.sampled_from(LEGACY), errors=st.sampled_from(["strict",
                                                                                "replace"]))
def test_utf8_mixed_with_another_encoding_is_an_error_or_keeps_the_utf8(data, legacy, errors):
    """UTF-8 lines and lines in GB18030 or Big5: reading stops with one error (the first bad
    byte, or that the file mixes encodings), or, with --errors replace, keeps every UTF-8
    line exactly. It never reads the UTF-8 as another encoding."""
    lines = data.draw(_realistic_lines(SIMPLIFIED if legacy == "gb18030" else TRADITIONAL,
                                       min_lines=3))
    lines = [line for line in lines if len(line) >= 9]
    assume(len(lines) >= 2)
    which = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    assume(any(which) and not all(which))
    encoded = b"\n".join(line.encode(legacy if w else "utf-8") for line, w in zip(lines, which))
    try:
        encoded.decode("utf-8")
        assume(False)  # the legacy lines happen to be valid UTF-8 too: not a mixture
    except UnicodeDecodeError as err:
        first_bad = err.start
    with _file(encoded) as (_, path):
        try:
            got = _read(path, errors=errors)
        except UserError as err:
            msg = str(err)
            assert "mixes UTF-8" in msg or (f"byte offset {first_bad} " in msg
                                             and "utf-8" in msg), msg
            return
    assert errors == "replace"
    utf8 = [line for line, w in zip(lines, which) if not w]
    assert all(line in got for line in utf8)


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030", "big5", "cp950", "utf-16-le"])
@settings(FUZZ, max_examples=8)
@given(data=st.data(), junk=st.binary(max_size=200))
def test_segment_gives_the_texts_tokens_or_one_error_line(encoding, data, junk):
    """`segment` on realistic text in any encoding writes exactly its characters (less
    spaces); with arbitrary bytes spliced in it fails with one `error:` line or writes text."""
    lines = data.draw(_realistic_lines(SCRIPTS[encoding]))
    assume(sum(c in SCRIPTS[encoding] for c in "".join(lines)) >= 40)
    raw = "\n".join(lines).encode(encoding)
    spliced = data.draw(st.booleans())
    if spliced:
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + junk + raw[at:]
    with _file(raw) as (d, path):
        out = os.path.join(d, "out.seg.txt")
        r = run("segment", path, "-o", out, "-j", 1, "-q", "--no-normalize-punct", ok=False)
        if r.exit_code != 0:
            assert spliced or "no text found" in r.output, r.output
            assert_clear_error(r)
            assert not os.path.exists(out)
            return
        with open(out, encoding="utf-8") as f:
            got = [line.replace(" ", "") for line in f.read().splitlines()]
    if not spliced:
        expected = [textio.normalize_line(line).replace(" ", "") for line in lines]
        assert got == [line for line in expected if line]
