import numpy as np
import pytest

from wordlstm.errors import UserError
from wordlstm.split import (
    COPY_CHARS,
    HoldOut,
    held_out_lines,
    line_token_counts,
    split_paragraphs,
    training_lines,
)


def _file(tmp_path, lines):
    p = tmp_path / "s.seg.txt"
    p.write_text("".join(" ".join(line) + "\n" for line in lines), encoding="utf-8")
    return str(p)


def test_training_lines_leave_out_copies_of_held_out_lines_but_not_short_ones(tmp_path):
    tail = list("一二三四五六七八九十甲乙丙丁戊己庚辛壬癸子")  # 21 characters
    short = ["宝玉", "道", "："]
    lines = [tail, short] + [["话"] * 10] * 30 + [short, tail]
    path = _file(tmp_path, lines)
    held = held_out_lines(line_token_counts(path), HoldOut(0.08))
    assert held.tolist()[-2:] == [True, True] and not held[:2].any()
    keep = training_lines(path, HoldOut(0.08))
    assert not keep[0] and keep[1]
    assert len("".join(tail)) >= COPY_CHARS > len("".join(short))
    train, out = split_paragraphs(path, HoldOut(0.08))
    assert out == [short, tail] and tail not in train and short in train


def test_a_novel_holds_out_its_tail_by_tokens_in_whole_lines():
    counts = np.array([10] * 20)  # 220 tokens with the paragraph ends
    held = held_out_lines(counts, HoldOut(0.1))
    first = int(np.argmax(held))
    assert held[first:].all() and not held[:first].any()  # one stretch: the tail
    assert held.sum() == 2  # the line that starts 10% from the end, and what follows
    assert held_out_lines(np.array([100, 1, 1]), HoldOut(0.5)).tolist() == [False, True, True]
    assert held_out_lines(counts, HoldOut(0.0)).sum() == 0
    assert held_out_lines(np.array([5]), HoldOut(0.5)).sum() == 0  # one line: all trained on
    # However small the fraction or short the file, both parts keep at least one line.
    assert held_out_lines(np.array([1, 1]), HoldOut(0.001)).tolist() == [False, True]
    assert held_out_lines(np.array([1, 1, 1]), HoldOut(0.99)).tolist() == [False, True, True]


def test_a_line_corpus_holds_out_a_seeded_sample_of_lines():
    counts = np.array([3] * 200)
    a = held_out_lines(counts, HoldOut(0.1, lines=True))
    assert a.sum() == 20 and a.tolist() == held_out_lines(counts, HoldOut(0.1, lines=True)).tolist()
    assert not a[-20:].all()  # not the tail
    other = held_out_lines(counts, HoldOut(0.1, lines=True, seed=2))
    assert other.sum() == 20 and other.tolist() != a.tolist()


def test_the_holdout_fraction_is_checked():
    with pytest.raises(UserError):
        HoldOut(1.0)
    with pytest.raises(UserError):
        HoldOut(-0.1)
    assert HoldOut(0.2, lines=True).to_json() == {"fraction": 0.2, "lines": True, "seed": 1}


def test_line_counts_and_splits_skip_empty_lines(tmp_path):
    p = tmp_path / "s.seg.txt"
    p.write_text("a b\n\n  \nc d e\nf\n", encoding="utf-8")
    assert line_token_counts(p).tolist() == [2, 3, 1]
    train, out = split_paragraphs(p, HoldOut(0.3))
    assert out == [["f"]] and train == [["a", "b"], ["c", "d", "e"]]
