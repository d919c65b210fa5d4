import jieba
import pytest

from wordlstm.errors import UserError
from wordlstm.segment import (
    Segmenter,
    SegmenterConfig,
    resolve_engine,
    segment_files,
    segment_lines,
)
from wordlstm.textio import iter_lines, normalize_line


def _lines(path):
    return [normalize_line(line) for line in iter_lines(path) if normalize_line(line)]


def _jieba_tokens(line):
    return [t for t in jieba.lcut(line) if not t.isspace()]


def test_tokens_are_exactly_jiebas(novel, segmented):
    lines = _lines(novel)
    out = segmented.read_text(encoding="utf-8").splitlines()
    assert len(out) == len(lines)
    for line, seg in zip(lines, out):
        assert seg.split(" ") == _jieba_tokens(line)


@pytest.mark.parametrize("engine", ["jieba", "rjieba"])
def test_engines_agree_with_jieba_on_mixed_text(engine):
    seg = Segmenter(SegmenterConfig(engine=engine))
    line = normalize_line("我来到北京清华大学， hello world 2024年 C++ 工程师说：“好！”")
    assert seg(line) == _jieba_tokens(line)


def test_auto_engine_is_rjieba_only_where_exact(tmp_path):
    d = tmp_path / "names.txt"
    d.write_text("张先生 100 nr\n老张头\n", encoding="utf-8")
    assert resolve_engine("auto", None) == "rjieba"
    assert resolve_engine("auto", str(d)) == "jieba"
    assert resolve_engine("rjieba", str(d)) == "rjieba"  # an explicit choice is honoured


@pytest.mark.parametrize("engine", ["jieba", "rjieba"])
def test_user_dict_engines_match_jieba_load_userdict(tmp_path, novel, engine):
    d = tmp_path / "names.txt"
    d.write_text("老张头 1000 nr\n石大娘\n王大 5\n院子里 n\n", encoding="utf-8")
    import logging
    jieba.setLogLevel(logging.WARNING)
    ref = jieba.Tokenizer()
    ref.load_userdict(str(d))
    seg = Segmenter(SegmenterConfig(engine=engine, user_dict=str(d)))
    lines = _lines(novel)[:80] + ["老张头和石大娘在院子里说话", "王大夫和王大说话"]
    for line in lines:
        assert seg(line) == [t for t in ref.lcut(line) if not t.isspace()]


def test_user_dict_keeps_names_whole(tmp_path):
    line = "老张头和石大娘在院子里说话"
    plain = Segmenter(SegmenterConfig(engine="jieba"))(line)
    d = tmp_path / "names.txt"
    d.write_text("老张头 1000 nr\n石大娘 1000 nr\n", encoding="utf-8")
    named = Segmenter(SegmenterConfig(user_dict=str(d)))(line)
    assert named[:3] == ["老张头", "和", "石大娘"] and "老张头" not in plain


def test_char_unit():
    assert Segmenter(SegmenterConfig(unit="char"))("他 说：好") == ["他", "说", "：", "好"]


def test_parallel_jobs_keep_order(novel):
    lines = _lines(novel)
    config = SegmenterConfig()
    assert list(segment_lines(lines, config, jobs=2)) == list(segment_lines(lines, config, jobs=1))


def test_summary_counts(novel, tmp_path):
    with open(tmp_path / "o.txt", "w", encoding="utf-8") as f:
        stats = segment_files([str(novel)], f, SegmenterConfig())
    tokens = (tmp_path / "o.txt").read_text(encoding="utf-8").split()
    assert stats.tokens == len(tokens) and stats.distinct == len(set(tokens))
    assert stats.files[0]["encoding"] == "gb18030" and stats.mb_per_s > 0


def test_whitespace_only_file_is_an_error(tmp_path):
    p = tmp_path / "blank.txt"
    p.write_text("\u3000\u3000\r\n  \r\n", encoding="utf-8")
    with pytest.raises(UserError, match="no text"), open(tmp_path / "o.txt", "w") as out:
        segment_files([str(p)], out, SegmenterConfig())


def test_chapter_headings_are_found_and_reported(tmp_path):
    p = tmp_path / "n.txt"
    p.write_text("第一回 老王进城\n老王说：第二回再说。\n正文。\n第十二章 回家\n卷三\n", encoding="utf-8")
    with open(tmp_path / "o.txt", "w", encoding="utf-8") as f:
        stats = segment_files([str(p)], f, SegmenterConfig())
    assert stats.chapters == [(1, "第一回 老王进城"), (4, "第十二章 回家"), (5, "卷三")]


def test_to_simplified_makes_traditional_and_simplified_text_agree(tmp_path):
    trad = tmp_path / "big5.txt"
    trad.write_bytes("\u3000\u3000寶玉聽了，心裡很高興。\r\n黛玉說：「我們去書房罷。」\r\n".encode("big5"))
    simp = tmp_path / "gb.txt"
    simp.write_bytes("\u3000\u3000宝玉听了，心里很高兴。\r\n黛玉说：「我们去书房罢。」\r\n".encode("gb18030"))
    outs = []
    for src in (trad, simp):
        with open(tmp_path / "o.txt", "w", encoding="utf-8") as f:
            segment_files([str(src)], f, SegmenterConfig(to_simplified=True))
        outs.append((tmp_path / "o.txt").read_text(encoding="utf-8"))
    assert outs[0] == outs[1] and "宝玉" in outs[0]
    assert Segmenter(SegmenterConfig(to_simplified=True))("寶玉聽了") == ["宝玉", "听", "了"]


def test_strip_boilerplate_drops_repeated_banners_only(tmp_path):
    from conftest import make_text

    body = make_text(60, seed=5).split("\r\n")
    banner = "本书来自www.example-novels.com免费txt小说下载站"
    once = "更多精彩请访问www.example.com"  # a URL line that appears once is kept
    lines = []
    for i, line in enumerate(body):
        lines.append(line)
        if i % 10 == 0:
            lines.append(banner)
    lines.insert(5, once)
    lines.insert(7, "老王说：这三句话重复了。")
    lines.insert(9, "老王说：这三句话重复了。")
    lines.insert(11, "老王说：这三句话重复了。")  # repeated but no site words: kept
    src = tmp_path / "n.txt"
    src.write_text("\n".join(lines), encoding="utf-8")
    with open(tmp_path / "o.txt", "w", encoding="utf-8") as f:
        stats = segment_files([str(src)], f, SegmenterConfig(), strip_boilerplate=True, jobs=2)
    out = (tmp_path / "o.txt").read_text(encoding="utf-8")
    assert "novels" not in out and "访问" in out  # the banner is gone, the one-off URL line kept
    assert out.count("重复") == 3
    n = lines.count(banner)
    assert n >= 3 and stats.boilerplate == [{"line": banner, "count": n}] and stats.dropped == n


def test_normalize_punct_gives_jiebas_tokens_of_the_normalised_text(tmp_path):
    from wordlstm.punct import normalize_punct

    src = tmp_path / "n.txt"
    raw = '　　宝玉笑道:"你来了."黛玉听了．便`冷笑-一声\r\n'
    src.write_text(raw * 3, encoding="utf-8")
    out = tmp_path / "n.seg.txt"
    config = SegmenterConfig(normalize_punct=True)
    with open(out, "w", encoding="utf-8") as f:
        segment_files([str(src)], f, config)
    expected = _jieba_tokens(normalize_punct(normalize_line(raw)))
    assert out.read_text(encoding="utf-8").splitlines() == [" ".join(expected)] * 3
    assert "“" in expected and "。" in expected and "．" not in expected
    # Prompts are cut the same way.
    assert Segmenter(config)(normalize_line(raw)) == expected


def test_segment_cli_normalises_punctuation_for_words_only(tmp_path):
    import json

    from click.testing import CliRunner

    from wordlstm.cli import main

    src = tmp_path / "n.txt"
    src.write_text("他道:\"好.\"\n" * 5, encoding="utf-8")
    for unit, expect in (("word", True), ("char", False)):
        out = tmp_path / f"{unit}.txt"
        r = CliRunner().invoke(main, ["segment", str(src), "-o", str(out), "--unit", unit, "-q"])
        assert r.exit_code == 0, r.output
        side = json.loads((tmp_path / f"{unit}.txt.json").read_text())
        assert side["segmenter"]["normalize_punct"] is expect
        assert ("“" in out.read_text(encoding="utf-8")) is expect


def test_letters_of_other_scripts_are_reported():
    from wordlstm.segment import other_scripts

    assert other_scripts(["宝玉", "贾е", "笑道", "l起", "Жも"]) == {
        "cyrillic": "Же", "latin": "l", "hiragana": "も"}
    assert other_scripts(["Kathones", "saurus"]) == {}
    assert other_scripts(["，", "123"]) == {}


# --- issue 20, item 3: user dictionaries are bounded before jieba sees them ------------------
# jieba stores every prefix of every entry: one 40,000-character entry took 4.98 GB. The
# cases here stay just over the limits, so they are cheap before the fix as after it.

def _no_jieba_add_word(monkeypatch):
    """Fail if any entry reaches jieba (nothing may be loaded from a refused dictionary)."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"jieba was given an entry: {args[:1]}")
    monkeypatch.setattr(jieba.Tokenizer, "add_word", refuse)


def test_user_dict_entry_longer_than_the_limit_is_refused_before_loading(tmp_path, monkeypatch):
    from wordlstm import segment

    d = tmp_path / "names.txt"
    d.write_text("老张头 1000 nr\n" + "石" * (segment.MAX_USER_DICT_ENTRY_CHARS + 1) + " 5\n",
                 encoding="utf-8")
    _no_jieba_add_word(monkeypatch)
    with pytest.raises(UserError) as err:
        Segmenter(SegmenterConfig(engine="jieba", user_dict=str(d)))("老张头说话")
    msg = str(err.value)
    assert str(d) in msg and "line 2" in msg and str(segment.MAX_USER_DICT_ENTRY_CHARS) in msg


def test_user_dict_entry_at_the_limit_is_loaded(tmp_path):
    from wordlstm import segment

    word = "石" * segment.MAX_USER_DICT_ENTRY_CHARS
    d = tmp_path / "names.txt"
    d.write_text(f"{word} 1000000 nr\n", encoding="utf-8")
    assert Segmenter(SegmenterConfig(engine="jieba", user_dict=str(d)))(word) == [word]


@pytest.mark.parametrize("limit, lines", [
    ("MAX_USER_DICT_ENTRIES", ["张三", "李四", "王五", "赵六"]),
    ("MAX_USER_DICT_CHARS", ["张三丰", "李四光", "王五郎", "赵六娘"]),
    ("MAX_USER_DICT_BYTES", ["张三丰 10 nr", "李四光 10 nr", "王五郎 10 nr"]),
])
def test_user_dict_totals_are_bounded(tmp_path, monkeypatch, limit, lines):
    from wordlstm import segment

    monkeypatch.setattr(segment, limit, 3 if limit != "MAX_USER_DICT_BYTES" else 20)
    d = tmp_path / "big.txt"
    d.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _no_jieba_add_word(monkeypatch)
    with pytest.raises(UserError) as err:
        Segmenter(SegmenterConfig(engine="jieba", user_dict=str(d)))("张三说话")
    assert str(d) in str(err.value) and str(getattr(segment, limit)) in str(err.value)


@pytest.mark.parametrize("data, lineno", [
    ("张三 10 nr\n李四 " + "9" * 5000 + "\n", 2),  # int() refuses 5,000 digits: a traceback
    ("张三 10 nr\n\n李四 12x\n", 3),  # a bad frequency was silently part of the word
    ("张三 1.5\n", 1),
    ("张三 10 NR\n", 1),  # tags are lowercase letters
    ("张三 10 nr extra\n", 1),
    ("张三\n李\x00\x01\x02四\n", 2),  # binary junk that is valid UTF-8
    (b"\xe5\xbc\xa0\xe4\xb8\x89\n\xe6\x9d\x8e\n\xff\xfe\x00\x01\n", 3),  # not UTF-8
])
def test_malformed_user_dict_line_is_one_error_naming_the_line(tmp_path, monkeypatch, data,
                                                                lineno):
    d = tmp_path / "bad.txt"
    if isinstance(data, str):
        d.write_text(data, encoding="utf-8")
    else:
        d.write_bytes(data)
    _no_jieba_add_word(monkeypatch)
    with pytest.raises(UserError) as err:
        Segmenter(SegmenterConfig(engine="jieba", user_dict=str(d)))("张三说话")
    assert str(d) in str(err.value) and f"line {lineno}" in str(err.value), str(err.value)


def test_user_dict_that_is_not_a_regular_file_says_what_it_is(tmp_path):
    import os

    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError) as err:
        Segmenter(SegmenterConfig(engine="jieba", user_dict=str(fifo)))("张三说话")
    assert "not a regular file" in str(err.value)


def test_segment_cli_refuses_an_oversized_user_dict_and_writes_nothing(tmp_path, novel):
    from conftest import assert_clear_error, run

    from wordlstm import segment

    d = tmp_path / "names.txt"
    d.write_text("老王\n小李\n" + "院" * (segment.MAX_USER_DICT_ENTRY_CHARS + 1) + "\n",
                 encoding="utf-8")
    out = tmp_path / "out.seg.txt"
    r = run("segment", novel, "--user-dict", d, "-o", out, "-j", 1, "-q", ok=False)
    assert_clear_error(r, str(d), "line 3", str(segment.MAX_USER_DICT_ENTRY_CHARS))
    assert list(tmp_path.iterdir()) == [d]


def test_train_cli_refuses_an_oversized_user_dict_before_any_work(tmp_path, segmented,
                                                                   vectors_file):
    from conftest import assert_clear_error, run

    from wordlstm import segment

    d = tmp_path / "names.txt"
    d.write_text("老王 5 nr\n" + "院" * (segment.MAX_USER_DICT_ENTRY_CHARS + 1) + "\n",
                 encoding="utf-8")
    out = tmp_path / "model"
    r = run("train", segmented, "--vectors", vectors_file, "-o", out, "--user-dict", d,
            "--window", 6, "--units", 12, "--layers", 1, "--epochs", 1, ok=False)
    assert_clear_error(r, str(d), "line 2", str(segment.MAX_USER_DICT_ENTRY_CHARS))
    assert not out.exists()


def test_model_dirs_copied_user_dict_is_bounded_when_loaded(tmp_path, model_dir):
    import json
    import shutil

    from conftest import assert_clear_error, run

    from wordlstm import segment
    from wordlstm.modeldir import file_hash

    m = tmp_path / "m"
    shutil.copytree(model_dir, m)
    ud = m / "user_dict.txt"
    ud.write_text("院" * (segment.MAX_USER_DICT_ENTRY_CHARS + 1) + " 5 nr\n", encoding="utf-8")
    config = json.loads((m / "config.json").read_text(encoding="utf-8"))
    config["segmenter"]["user_dict"] = "user_dict.txt"
    config.setdefault("files", {})["user_dict.txt"] = file_hash(ud)  # genuine, only too long
    (m / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    r = run("continue-text", "老王", "--model", m, "-n", 3, "--seed", 1, ok=False)
    assert_clear_error(r, "user_dict.txt", "line 1", str(segment.MAX_USER_DICT_ENTRY_CHARS))


# --- issue 20: hostile inputs and outputs through the commands -----------------------------

def _fifo(path):
    import os

    os.mkfifo(path)
    return path


def test_segment_refuses_inputs_that_are_not_regular_files(tmp_path):
    import os

    from conftest import assert_clear_error, run

    fifo = _fifo(tmp_path / "pipe.txt")
    good = tmp_path / "n.txt"
    good.write_text("老王在院子里喝茶。\n", encoding="utf-8")
    for path, words in ((fifo, "named pipe"), (os.devnull, "character device")):
        r = run("segment", path, "-o", tmp_path / "o.txt", "-j", 1, ok=False)
        assert_clear_error(r, str(path), words)
        assert "no such file" not in r.output
        with pytest.raises(UserError, match=words):
            Segmenter(SegmenterConfig(user_dict=str(path)))
        r = run("segment", good, "-o", tmp_path / "o.txt", "--user-dict", path, ok=False)
        assert_clear_error(r, str(path), words)
    assert not (tmp_path / "o.txt").exists()


def test_names_on_a_fifo_is_refused_not_a_hang(tmp_path):
    import subprocess
    import sys

    fifo = _fifo(tmp_path / "pipe.txt")
    p = subprocess.run([sys.executable, "-m", "wordlstm.cli", "names", str(fifo)], check=False,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    from conftest import assert_clear_error

    assert_clear_error(p, str(fifo), "named pipe")


def test_outputs_and_sidecars_that_are_not_regular_files_are_refused(tmp_path):
    import os
    import stat

    from conftest import assert_clear_error, run

    src = tmp_path / "n.txt"
    src.write_text("老王在院子里喝茶。\n" * 5, encoding="utf-8")
    to_null = tmp_path / "null.txt"
    to_null.symlink_to(os.devnull)
    fifo = _fifo(tmp_path / "o.txt")
    assert_clear_error(run("segment", src, "-o", to_null, "-j", 1, ok=False), "character device")
    assert_clear_error(run("segment", src, "-o", fifo, "-j", 1, ok=False), "named pipe")
    sidecar_fifo = _fifo(tmp_path / "p.txt.json")
    r = run("segment", src, "-o", tmp_path / "p.txt", "-j", 1, ok=False)
    assert_clear_error(r, "p.txt.json", "named pipe")
    assert not (tmp_path / "p.txt").exists()  # refused before any work
    assert_clear_error(run("names", src, "-o", to_null, ok=False), "character device")
    assert os.path.islink(to_null)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISFIFO(os.stat(sidecar_fifo).st_mode)


def test_non_text_encoding_is_one_error_line(tmp_path):
    from conftest import assert_clear_error, run

    src = tmp_path / "n.txt"
    src.write_text("老王在院子里喝茶。\n", encoding="utf-8")
    for jobs in (1, 2):
        r = run("segment", src, "-o", tmp_path / "o.txt", "--encoding", "rot13", "-j", jobs,
                ok=False)
        assert_clear_error(r, "rot13", "not a text encoding")
    assert_clear_error(run("names", src, "--encoding", "rot13", ok=False), "not a text encoding")
    assert not (tmp_path / "o.txt").exists()


def test_segment_says_which_encoding_it_chose(tmp_path):
    import json

    from conftest import run

    text = "他在這裏坐著，那裏有人。\n" * 200
    src = tmp_path / "trad.txt"
    src.write_bytes(text.encode("cp950"))
    out = tmp_path / "o.txt"
    r = run("segment", src, "-o", out, "-j", 1, "--json")
    f = json.loads(r.stdout)["files"][0]
    assert f["encoding"] == "cp950" and "gb18030" in f["detection"]
    assert "這裏" in out.read_text(encoding="utf-8").replace(" ", "")


@pytest.mark.parametrize("bad, field", [({"engine": "pkuseg"}, "engine"), ({"unit": "line"}, "unit"),
                                        ({"hmm": "yes"}, "hmm"), ({"to_simplified": 1}, "to_simplified"),
                                        ({"normalize_punct": None}, "normalize_punct"),
                                        ({"user_dict": 3}, "user_dict")])
def test_segmenter_config_checks_itself_and_names_the_field(bad, field):
    with pytest.raises(UserError, match=f"segmenter {field} "):
        SegmenterConfig(**bad)
    assert SegmenterConfig(**SegmenterConfig(unit="char").to_json()).unit == "char"
