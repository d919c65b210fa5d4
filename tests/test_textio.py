import codecs
import os

import pytest

from wordlstm import textio
from wordlstm.errors import UserError
from wordlstm.textio import ReadStats, atomic_output, detect_encoding, iter_lines, normalize_line

from conftest import make_text

TEXT = make_text(40, seed=3)
EXPECTED = TEXT.split("\r\n")[:-1]


@pytest.mark.parametrize("encoding, expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"),
    ("gb18030", "gb18030"), ("gbk", "gb18030"), ("big5", "big5"),
])
def test_detects_encoding_and_reads_lines(tmp_path, encoding, expected):
    text = TEXT
    if encoding == "big5":
        # Big5 is traditional Chinese: use characters it can encode.
        text = "\r\n".join(["\u3000\u3000林黛玉聽了，心裡很著急，便往書房去了。", "寶玉笑道：「我們去花園散步罷。」"] * 30) + "\r\n"
    path = tmp_path / "novel.txt"
    path.write_bytes(text.encode(encoding))
    assert detect_encoding(path) == expected
    assert list(iter_lines(path)) == text.split("\r\n")[:-1]


def test_utf16_big_endian_with_bom(tmp_path):
    path = tmp_path / "be.txt"
    path.write_bytes(codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"))
    assert list(iter_lines(path)) == EXPECTED


def test_lines_are_exact_across_chunk_boundaries(tmp_path, monkeypatch):
    # Tiny chunks split multi-byte characters and CRLF pairs between reads.
    monkeypatch.setattr(textio, "CHUNK", 7)
    for enc in ("utf-8", "gb18030", "utf-16"):
        path = tmp_path / f"n.{enc}"
        path.write_bytes(TEXT.encode(enc))
        assert list(iter_lines(path)) == EXPECTED, enc


def test_bad_byte_reports_file_offset_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(textio, "CHUNK", 64)
    good = "第一行\n第二行\n".encode("utf-8") * 20
    path = tmp_path / "bad.txt"
    path.write_bytes(good + b"\xff\xfe\xfa" + "尾巴\n".encode())
    with pytest.raises(UserError) as err:
        list(iter_lines(path, encoding="utf-8"))
    msg = str(err.value)
    assert f"byte offset {len(good)}" in msg and "line 41" in msg and str(path) in msg


def test_errors_replace_counts_and_continues(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("好的".encode() + b"\xff" + "后面\n".encode())
    stats = ReadStats(str(path))
    assert list(iter_lines(path, encoding="utf-8", errors="replace", stats=stats)) == ["好的\ufffd后面"]
    assert stats.replaced == 1


def test_empty_binary_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for path, words in ((empty, "empty"), (binary, "binary"), (tmp_path / "nope.txt", "no such")):
        with pytest.raises(UserError, match=words):
            list(iter_lines(path))


def test_normalize_line_strips_indentation_and_collapses_space():
    assert normalize_line("\u3000\u3000\t他说：  好 \u00a0的\r") == "他说： 好 的"
    assert normalize_line(" \u3000 \t") == ""


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_output(target) as f:
        f.write("new")
    assert target.read_text() == "new"
