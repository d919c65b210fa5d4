"""Shared fixtures: a small synthetic Chinese corpus and a tiny trained model.

The corpus is made here from a few dozen words and sentence patterns (no novel text), so it
has learnable structure, and the tiny model trains in seconds on any backend.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora"

PEOPLE = ["老王", "小李", "张先生", "李太太", "王大夫", "小红", "阿明", "刘老师"]
PLACES = ["院子", "书房", "花园", "厨房", "门口", "街上", "河边", "山上"]
ACTIONS = ["说话", "喝茶", "看书", "吃饭", "下棋", "散步", "写字", "唱歌"]
FEELINGS = ["高兴", "着急", "生气", "伤心", "害怕", "放心"]
PATTERNS = [
    "{p}在{l}里{a}。",
    "{p}笑道：“今天我们去{l}{a}罢。”",
    "{p}听了，心里很{f}，便往{l}去了。",
    "{p}和{q}一起在{l}{a}，大家都很{f}。",
    "{q}问{p}：“你为什么这样{f}？”{p}说：“我不{f}。”",
]


def make_text(paragraphs: int = 300, seed: int = 0) -> str:
    """Paragraphs of made-up sentences, indented and CRLF-ended like a downloaded novel."""
    rng = random.Random(seed)
    lines = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(2, 5)):
            p, q = rng.sample(PEOPLE, 2)
            sentences.append(rng.choice(PATTERNS).format(
                p=p, q=q, l=rng.choice(PLACES), a=rng.choice(ACTIONS), f=rng.choice(FEELINGS)))
        lines.append("\u3000\u3000" + "".join(sentences))
        if rng.random() < 0.2:
            lines.append("")
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wordlstm")


@pytest.fixture(scope="session")
def novel(workdir) -> Path:
    path = workdir / "novel.txt"
    path.write_bytes(make_text().encode("gb18030"))
    return path


@pytest.fixture(scope="session")
def segmented(workdir, novel) -> Path:
    from wordlstm.segment import SegmenterConfig, segment_files

    out = workdir / "novel.seg.txt"
    with open(out, "w", encoding="utf-8") as f:
        segment_files([str(novel)], f, SegmenterConfig())
    return out


@pytest.fixture(scope="session")
def vectors_file(workdir, segmented) -> Path:
    from wordlstm.vectors import Word2VecSettings, save_vectors, train_word2vec

    v = train_word2vec(str(segmented), Word2VecSettings(size=16, epochs=3, min_count=2, workers=1))
    return save_vectors(v, workdir / "vectors.bin")


TINY = dict(window=6, units=12, layers=1, dropout=0.0)


@pytest.fixture(scope="session")
def model_dir(workdir, segmented, vectors_file) -> Path:
    from wordlstm.model import ModelConfig
    from wordlstm.segment import SegmenterConfig
    from wordlstm.train import TrainConfig, train

    out = workdir / "model"
    train(str(segmented), str(vectors_file), out, ModelConfig(**TINY),
          TrainConfig(epochs=2, batch_size=64), SegmenterConfig(), verbose=0,
          log=lambda *a: None)
    return out


CHARS = "春夏秋冬山水风月花鸟云雨江天人日夜长明白青红香落归来"


def _poems(n=400, seed=0):
    """Made-up 5-character quatrains: four clauses, alternating ，and 。"""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        clauses = ["".join(rng.choice(CHARS) for _ in range(5)) for _ in range(4)]
        lines.append(f"{clauses[0]}，{clauses[1]}。{clauses[2]}，{clauses[3]}。")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def poem_model(tmp_path_factory):
    """A tiny character model of made-up quatrains (a line model: poems), in d / "m"."""
    from wordlstm.model import ModelConfig
    from wordlstm.segment import SegmenterConfig, segment_files
    from wordlstm.train import TrainConfig, train
    from wordlstm.vectors import Word2VecSettings, save_vectors, train_word2vec

    d = tmp_path_factory.mktemp("poems")
    (d / "poems.txt").write_text(_poems(), encoding="utf-8")
    with open(d / "poems.seg.txt", "w", encoding="utf-8") as f:
        segment_files([str(d / "poems.txt")], f, SegmenterConfig(unit="char"))
    v = train_word2vec(str(d / "poems.seg.txt"), Word2VecSettings(size=16, epochs=3, workers=1,
                                                                          lines=True))
    save_vectors(v, d / "vectors.bin")
    train(str(d / "poems.seg.txt"), str(d / "vectors.bin"), d / "m",
          ModelConfig(window=16, units=24, layers=1, dropout=0.0),
          TrainConfig(epochs=2, batch_size=128, lines=True), SegmenterConfig(unit="char"),
          verbose=0, log=lambda *a: None)
    return d


# `pytest -m "not slow"` is the quick loop (unit tests, under two minutes); the whole suite
# is CI's. Slow: a test that trains a model (the fixtures below, or a module whose tests
# train, drive a browser, start subprocess servers or network hosts).
TRAINED = {"model_dir", "poem_model", "vectors_file"}
SLOW_MODULES = {"test_reliability", "test_multihost", "test_finetune", "test_integration",
                "test_serve", "test_serve_fuzz", "test_train", "test_cli_newuser",
                "test_bench_gpu", "test_segment_exactness", "test_bench_readers", "test_cli",
                "test_dynamic", "test_evaluate", "test_readme", "test_names", "test_join"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).stem
        if module in SLOW_MODULES or TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["WORDLSTM_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def needs_corpus(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/corpora is only in the dev checkout)")
    return path


def run(*args, ok=True):
    """A wordlstm command through click's runner; asserts success unless `ok` is False."""
    from click.testing import CliRunner

    from wordlstm.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def assert_clear_error(result, *words):
    """One `error:` line naming `words`, a non-zero exit, no traceback (a click result or a
    finished subprocess with its stderr)."""
    out = result.output if hasattr(result, "output") else result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code != 0 and "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, out[-3000:]
    for w in words:
        assert w in lines[0], lines[0]
