"""The whole pipeline on a real novel (a slice of 红楼梦), when ../shared/corpora is present."""

import json

import pytest
from click.testing import CliRunner
from conftest import needs_corpus

from wordlstm.cli import main
from wordlstm.vectors import load_vectors

pytestmark = pytest.mark.corpus


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def test_pipeline_on_a_slice_of_hongloumeng(tmp_path):
    source = needs_corpus("hongloumeng.txt")
    raw = source.read_bytes()
    lines = raw.split(b"\r\n")[:600]  # the first chapters
    utf8 = tmp_path / "hlm.txt"
    utf8.write_bytes(b"\r\n".join(lines))
    gbk = tmp_path / "hlm.gb.txt"  # the same text as a GB18030 download
    gbk.write_bytes(utf8.read_bytes().decode("utf-8").encode("gb18030"))

    run("segment", utf8, "-o", tmp_path / "a.seg.txt", "-q")
    run("segment", gbk, "-o", tmp_path / "b.seg.txt", "-q")
    seg = (tmp_path / "a.seg.txt").read_text(encoding="utf-8")
    assert seg == (tmp_path / "b.seg.txt").read_text(encoding="utf-8")
    assert "宝玉" in seg.split()

    run("train-vectors", tmp_path / "a.seg.txt", "-o", tmp_path / "vectors", "--size", 32,
        "--epochs", 3, "-q")
    assert "宝玉" in load_vectors(tmp_path / "vectors.bin")
    run("train", tmp_path / "a.seg.txt", "--vectors", tmp_path / "vectors", "-o",
        tmp_path / "m", "--units", 32, "--layers", 1, "--epochs", 1, "-q")
    out = json.loads(run("continue-text", "宝玉笑道", "--model", tmp_path / "m", "-n", 30,
                         "--seed", 1, "--json").stdout)
    assert len(out["texts"][0]) >= 30  # at least one character a word
    nb = json.loads(run("neighbors", "宝玉", "--model", tmp_path / "m", "--json").stdout)
    assert len(nb["neighbors"]) == 10


def test_default_model_continues_text():
    r = run("continue-text", "宝玉笑道", "-n", 20, "--seed", 2, "--json")
    out = json.loads(r.stdout)
    assert out["words"] == [20]


@pytest.mark.parametrize("name", ["hongloumeng.txt", "sanguoyanyi.txt", "shuihuzhuan.txt"])
def test_real_novels_in_gbk_and_big5_are_detected_and_read(tmp_path, name):
    import opencc

    from wordlstm.textio import detect_encoding

    text = needs_corpus(name).read_text(encoding="utf-8")[:200_000]
    big5 = opencc.OpenCC("s2t").convert(text)  # what a Taiwanese download site would serve
    for encoding, data in (("gb18030", text.encode("gbk", "replace")),
                           ("big5", big5.encode("big5", "replace"))):
        path = tmp_path / f"novel.{encoding}.txt"
        path.write_bytes(data)
        assert detect_encoding(path) == encoding
    # Segmented with --to-simplified, the Big5 copy gives (nearly) the GB copy's words.
    run("segment", tmp_path / "novel.big5.txt", "-o", tmp_path / "b.txt", "--to-simplified", "-q")
    run("segment", tmp_path / "novel.gb18030.txt", "-o", tmp_path / "g.txt", "-q")
    b = (tmp_path / "b.txt").read_text(encoding="utf-8").split()
    g = (tmp_path / "g.txt").read_text(encoding="utf-8").split()
    shared = len(set(b) & set(g)) / len(set(g))
    assert shared > 0.9, shared
