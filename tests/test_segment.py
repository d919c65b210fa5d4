import jieba
import pytest

from wordlstm.errors import UserError
from wordlstm.segment import SegmenterConfig, Segmenter, resolve_engine, segment_files, segment_lines
from wordlstm.textio import iter_lines, normalize_line


def _lines(path):
    return [normalize_line(l) for l in iter_lines(path) if normalize_line(l)]


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
    with pytest.raises(UserError, match="no text"):
        segment_files([str(p)], open(tmp_path / "o.txt", "w"), SegmenterConfig())


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
