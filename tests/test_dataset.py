import numpy as np

from wordlstm.dataset import corpus_ids, make_windows, window_starts
from wordlstm.vectors import EOS


def test_corpus_ids_maps_unknown_and_paragraph_ends(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a b zz\nb a\n", encoding="utf-8")
    index = {"a": 0, "b": 1, EOS: 2}
    ids, unknown, targets = corpus_ids(str(p), index)
    assert ids.tolist() == [0, 1, 3, 2, 1, 0, 2] and unknown == 1 and targets is None


def test_line_mode_pads_each_line_and_masks_targets(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a b\nb\n", encoding="utf-8")
    index = {"a": 0, "b": 1, EOS: 2}
    ids, _, targets = corpus_ids(str(p), index, lines_window=2)
    assert ids.tolist() == [2, 2, 0, 1, 2, 2, 2, 1, 2]
    assert targets.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1]
    split = window_starts(ids, 2, 3, 0.0, targets)
    x, t = make_windows(ids, split.train, 2)
    # Each line is predicted from its own start markers only, and ends with </s>.
    assert x.tolist() == [[2, 2], [2, 0], [0, 1], [2, 2], [2, 1]]
    assert t.tolist() == [0, 1, 2, 1, 2]


def test_windows_never_target_unk_and_validation_is_the_tail():
    unk = 5
    ids = np.array([0, 1, 2, unk, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3], np.int32)
    split = window_starts(ids, 3, unk, val_fraction=0.25)
    starts = np.concatenate([split.train, split.val])
    assert (ids[starts + 3] != unk).all()
    cut = int(len(ids) * 0.75)
    # Every window but the one with an UNK target and the 3 that straddle the cut (no leakage).
    assert len(starts) == len(ids) - 3 - 1 - 3
    assert (split.train + 3 < cut).all() and (split.val >= cut).all()
    x, t = make_windows(ids, split.train[:2], 3)
    assert x.tolist() == [ids[s:s + 3].tolist() for s in split.train[:2]]
    assert t.tolist() == [ids[s + 3] for s in split.train[:2]]


def test_too_short_corpus_has_no_windows():
    split = window_starts(np.array([0, 1], np.int32), 5, 9, 0.1)
    assert len(split.train) == 0 and len(split.val) == 0
