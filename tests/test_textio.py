import codecs
import os
import stat

import pytest
from conftest import make_text

from wordlstm import textio
from wordlstm.errors import UserError
from wordlstm.textio import (
    ReadStats,
    atomic_output,
    detect_encoding,
    iter_lines,
    normalize_line,
)

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
        text = "\r\n".join(["\u3000\u3000林黛玉聽了，心裡很著急，便往書房去了。",
                           "寶玉笑道：「我們去花園散步罷。」"] * 30) + "\r\n"
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
    good = "第一行\n第二行\n".encode() * 20
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
    with pytest.raises(RuntimeError), atomic_output(target) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_output(target) as f:
        f.write("new")
    assert target.read_text() == "new"


# --- issue 20: encodings ------------------------------------------------------------------

# Traditional text with the Windows (cp950) extension characters 裏 碁 銹 墻 恒 粧 嫺, which
# Python's big5 codec cannot decode.
CP950_TEXT = ("\u3000\u3000他在這裏坐著，那裏有人。她的粧扮很好，牆上寫著恒心二字。\r\n"
              "老人下碁，刀上有銹，墻外是嫺靜的花園。\r\n") * 150


def test_big5_with_cp950_extension_characters_is_not_read_as_gb(tmp_path):
    path = tmp_path / "trad.txt"
    path.write_bytes(CP950_TEXT.encode("cp950"))
    detection = textio.detect(path)
    assert detection.encoding == "cp950"
    # gb18030 decodes these bytes too (as mojibake): the choice and its reason are said.
    assert "gb18030" in detection.note and "cp950" in detection.note
    assert list(iter_lines(path)) == CP950_TEXT.split("\r\n")[:-1]
    stats = ReadStats(str(path))
    list(iter_lines(path, stats=stats))
    assert stats.encoding == "cp950" and stats.detection == detection.note


def test_hkscs_only_big5_is_read_as_big5hkscs(tmp_path):
    text = "\u3000\u3000他們在這裏說話，那裏有人。\n"
    text = text * 100 + "嘅\n"  # 嘅 (Cantonese) is in HKSCS, not in cp950
    path = tmp_path / "hk.txt"
    path.write_bytes(text.encode("big5hkscs"))
    assert detect_encoding(path) == "big5hkscs"
    assert list(iter_lines(path)) == text.splitlines()


def test_plain_big5_and_gbk_keep_their_names(tmp_path):
    for enc, text in (("big5", "林黛玉聽了，心裡很著急。\n" * 50), ("gb18030", TEXT)):
        path = tmp_path / f"{enc}.txt"
        path.write_bytes(text.encode(enc))
        d = textio.detect(path)
        assert d.encoding == enc, d


def test_plain_big5_is_not_read_as_one_of_its_supersets(tmp_path):
    # Big5's kana (C6A1-C7FC) are other characters in big5hkscs (C6E2: ま or 〇): a file that
    # Big5 decodes is Big5, not a superset whose reading happens to look more common.
    text = "林黛玉聽了，心裡很著急，便往書房去了。ま\n" * 50
    path = tmp_path / "b.txt"
    path.write_bytes(text.encode("big5"))
    assert detect_encoding(path) == "big5"
    assert list(iter_lines(path)) == text.splitlines()


def test_big5_with_one_bad_character_is_not_read_as_gb(tmp_path):
    # One undecodable character must not hand the file to GB18030 (which decodes anything).
    line = "林黛玉聽了，心裡很著急，便往書房去了。\n".encode("big5")
    body = line * 200
    cut = len(line) * 81
    path = tmp_path / "b.txt"
    path.write_bytes(body[:cut] + b"\x81\x40" + body[cut:])  # 丂 in GB18030, not in Big5
    d = textio.detect(path)
    assert d.encoding == "big5" and "gb18030" in d.note
    with pytest.raises(UserError, match=f"byte offset {cut} \\(line 82\\)"):
        list(iter_lines(path))


def test_utf8_file_with_one_gbk_line(tmp_path):
    head = ("这是第一段很长的文字，" * 300 + "\n").encode("utf-8")
    gbk = "这一行是国标编码的中文。\n".encode("gbk")
    tail = ("后面还有很多文字。" * 100 + "\n").encode("utf-8")
    path = tmp_path / "mixed.txt"
    path.write_bytes(head + gbk + tail)
    assert detect_encoding(path) == "utf-8"
    with pytest.raises(UserError) as err:
        list(iter_lines(path))
    assert f"byte offset {len(head)} (line 2)" in str(err.value) and "utf-8" in str(err.value)
    stats = ReadStats(str(path))
    lines = list(iter_lines(path, errors="replace", stats=stats))
    assert lines[0] == head.decode().rstrip("\n") and lines[2] == tail.decode().rstrip("\n")
    assert 0 < stats.replaced <= len(gbk)


def test_gbk_file_with_a_utf8_paragraph_is_refused_not_garbled(tmp_path):
    gbk = TEXT.encode("gb18030")
    utf8 = ("这一段是UTF-8编码的中文，和别的部分不一样。" * 5 + "\r\n").encode("utf-8")
    path = tmp_path / "mixed.txt"
    path.write_bytes(gbk[:2000] + utf8 + gbk[2000:])
    with pytest.raises(UserError, match="UTF-8") as err:
        detect_encoding(path)
    assert "--encoding" in str(err.value)


def test_non_text_encodings_are_refused(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("你好世界。\n", encoding="utf-8")
    for name in ("rot13", "base64", "hex", "zlib", "undefined"):
        with pytest.raises(UserError, match="not a text encoding"):
            list(iter_lines(path, encoding=name))
        with pytest.raises(UserError, match="not a text encoding"):
            textio.check_encoding(name)
    with pytest.raises(UserError, match="unknown encoding"):
        textio.check_encoding("klingon")
    assert textio.check_encoding("GBK") == "gbk"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_detected(tmp_path, encoding):
    path = tmp_path / "u16.txt"
    path.write_bytes(TEXT.encode(encoding))
    assert detect_encoding(path) == encoding
    assert list(iter_lines(path)) == EXPECTED


def test_undetectable_utf16_without_bom_gets_a_hint(tmp_path):
    # Kana are not common Chinese characters: not detected, but the hint names the fix.
    path = tmp_path / "kana.txt"
    path.write_bytes(("ひらがなとカタカナ、ひらがなとカタカナ。\n" * 40).encode("utf-16-le"))
    with pytest.raises(UserError, match="--encoding utf-16-le"):
        detect_encoding(path)


# --- issue 20: paths that are not regular files --------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    """A named pipe; a guard thread unblocks a reader that opens it (so an unfixed reader
    fails instead of hanging the suite)."""
    import threading
    import time

    path = tmp_path / "pipe.txt"
    os.mkfifo(path)
    stop = threading.Event()

    def unblock():
        while not stop.wait(0.5):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # no reader: nothing to unblock
            time.sleep(0.2)
            os.close(fd)

    t = threading.Thread(target=unblock, daemon=True)
    t.start()
    yield path
    stop.set()
    t.join()


def test_inputs_that_are_not_regular_files_are_refused(tmp_path, fifo):
    r, w = os.pipe()
    os.write(w, "你好世界。\n".encode() * 10)
    os.close(w)
    broken = tmp_path / "broken.txt"
    broken.symlink_to(tmp_path / "gone.txt")
    cases = [(fifo, "named pipe"), (f"/dev/fd/{r}", "pipe"), (os.devnull, "character device"),
             (tmp_path, "directory"), (broken, "broken symbolic link")]
    try:
        for path, words in cases:
            for reader in (lambda p: list(iter_lines(p)), detect_encoding,
                           textio.check_segmented, textio.check_input_file):
                with pytest.raises(UserError, match=words) as err:
                    reader(path)
                assert "no such file" not in str(err.value)
    finally:
        os.close(r)
    assert textio.check_input_file(fifo.parent / "missing.txt", ok_missing=True) is None
    with pytest.raises(UserError, match="no such file"):
        textio.check_input_file(fifo.parent / "missing.txt")


def test_outputs_that_exist_and_are_not_regular_files_are_refused(tmp_path, fifo):
    to_null = tmp_path / "null.txt"
    to_null.symlink_to(os.devnull)
    for path, words in ((fifo, "named pipe"), (to_null, "character device")):
        with pytest.raises(UserError, match=words):
            textio.check_writable(path)
        with pytest.raises(UserError, match=words), atomic_output(path) as f:
            f.write("x")
        with pytest.raises(UserError, match=words):
            textio.write_json(path, {"a": 1})
    assert os.path.islink(to_null) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null.txt", "pipe.txt"]  # no temporary files left
    # A link to a regular file is fine (it is replaced, as before).
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    textio.check_writable(link)


# --- issue 20: segmented files are checked whole ------------------------------------------

def test_bad_byte_deep_in_a_segmented_file(tmp_path):
    good = ("他 说 ： 好 。\n" * 20000).encode("utf-8")  # far more than 64 KB
    path = tmp_path / "n.seg.txt"
    path.write_bytes(good + b"\xff\xfe" + "尾巴\n".encode())
    with pytest.raises(UserError) as err:
        textio.check_segmented(path)
    assert f"byte offset {len(good)}" in str(err.value) and "line 20001" in str(err.value)
    cut = tmp_path / "cut.seg.txt"
    cut.write_bytes(good + "尾".encode()[:2])  # truncated inside its last character
    with pytest.raises(UserError, match=f"byte offset {len(good)}"):
        textio.check_segmented(cut)
    ok = tmp_path / "ok.seg.txt"
    ok.write_bytes(good)
    textio.check_segmented(ok)


def test_train_vectors_names_a_bad_byte_deep_in_the_file(tmp_path):
    from conftest import assert_clear_error, run

    good = ("他 说 ： 好 。\n" * 20000).encode("utf-8")
    path = tmp_path / "n.seg.txt"
    path.write_bytes(good + b"\xff" + "尾巴\n".encode())
    r = run("train-vectors", path, "-o", tmp_path / "v", "-q", ok=False)
    assert_clear_error(r, str(path), f"byte offset {len(good)}")
