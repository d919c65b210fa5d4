import numpy as np
import pytest

from wordlstm.dataset import MASKED, corpus_ids, make_sequences, sequence_starts, targets_of
from wordlstm.errors import UserError
from wordlstm.split import HoldOut
from wordlstm.vectors import EOS


def test_streams_spell_unknown_words_and_end_paragraphs(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a b ab\nb a z\n", encoding="utf-8")
    index = {"a": 0, "b": 1, EOS: 2}
    c = corpus_ids(str(p), index, HoldOut(0.0))
    # "ab" is not a word of the vocabulary: it is spelled a, b; "z" is an unknown character.
    assert c.train.tolist() == [2, 0, 1, 0, 1, 2, 1, 0, 3, 2]
    assert c.train_unknown == 1 and len(c.val) == 0
    assert c.char_counts["a"] == 3 and c.char_counts["z"] == 1


def test_the_tail_is_held_out_by_whole_paragraphs(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a a a a\nb b\na b\nb z\n", encoding="utf-8")
    index = {"a": 0, "b": 1, EOS: 2}
    c = corpus_ids(str(p), index, HoldOut(0.3))
    # 15 tokens with the paragraph ends; the cut at 70% falls in "a b": the held-out part
    # starts with the next whole paragraph.
    assert c.train.tolist() == [2, 0, 0, 0, 0, 2, 1, 1, 2, 0, 1, 2]
    assert c.val.tolist() == [2, 1, 3, 2]
    assert c.val_words == 3 and c.val_unknown_chars == ["z"] and c.held_out_lines == 1


def test_line_corpora_hold_out_random_lines_not_the_tail(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("".join(f"{chr(97 + i % 26)} b\n" for i in range(200)), encoding="utf-8")
    index = {chr(97 + i): i for i in range(26)} | {EOS: 26}
    c = corpus_ids(str(p), index, HoldOut(0.1, lines=True))
    assert c.held_out_lines == 20
    held = set(c.val[1::3].tolist())  # first token of each held-out line
    assert len(held) > 5  # spread over the alphabet, not only the last letters
    again = corpus_ids(str(p), index, HoldOut(0.1, lines=True))
    assert np.array_equal(c.val, again.val)  # seeded: the same lines every time


def test_sequences_predict_the_next_token_at_every_position():
    unk = 5
    ids = np.array([4, 0, 1, 2, unk, 3, 4, 0, 1, 2, 3, 4], np.int32)
    x, y = make_sequences(ids, np.array([0, 4]), 3, unk)
    assert x.tolist() == [[4, 0, 1], [unk, 3, 4]]
    assert y.tolist() == [[0, 1, 2], [3, 4, 0]]
    assert targets_of(np.array([1, unk]), unk).tolist() == [1, MASKED]


def test_sequence_starts_tile_the_stream_from_a_random_offset():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = sequence_starts(100, 8, rng)
        assert (np.diff(s) == 8).all() and s[0] < 8 and s[-1] + 8 + 1 <= 100
    assert len(sequence_starts(5, 8, rng)) == 0


def test_holdout_fraction_is_checked():
    with pytest.raises(UserError):
        HoldOut(1.5)


def test_lanes_read_the_stream_in_order_batch_after_batch():
    from wordlstm.dataset import lane_starts, make_sequences

    ids = np.arange(1000, dtype=np.int32)
    rng = np.random.default_rng(0)
    starts, batches = lane_starts(len(ids), 8, 4, rng)
    assert batches >= 30 and len(starts) == 4
    x0, _ = make_sequences(ids, starts, 8, unk=10**6)
    x1, y1 = make_sequences(ids, starts + 8, 8, unk=10**6)
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # each row goes on where it stopped
    np.testing.assert_array_equal(y1, x1 + 1)
    last = starts + (batches - 1) * 8
    assert (last + 8 < len(ids)).all()  # the last targets are in the stream
    assert len(set((starts[1:] - starts[:-1]).tolist())) == 1  # equal lanes, no overlap
    other, _ = lane_starts(len(ids), 8, 4, np.random.default_rng(5))
    assert other[0] != starts[0] or other[1] != starts[1]  # the cuts move between epochs


def test_copies_of_held_out_lines_are_not_trained_on(tmp_path):
    # A download that repeats a paragraph of its tail earlier (红楼梦's file does): the copy
    # must not reach the training stream, or the model is measured on text it has read.
    long = "甲 乙 丙 丁 戊 己 庚 辛 壬 癸 子 丑 寅 卯 辰 巳 午 未 申 酉 戌"  # 21 characters
    p = tmp_path / "s.txt"
    p.write_text("a a a a a a a a\n" + long + "\n" + "b " * 30 + "\n" + long + "\n",
                 encoding="utf-8")
    index = {"a": 0, "b": 1, EOS: 2}
    c = corpus_ids(str(p), index, HoldOut(0.3))
    assert c.held_out_lines == 1
    assert len(c.val) == 2 + 21  # the tail copy is held out...
    unk = c.unk
    assert unk not in c.train.tolist()  # ...and its earlier copy is not trained on
    assert c.train.tolist().count(1) == 30
