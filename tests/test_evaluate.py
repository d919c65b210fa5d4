import math
from collections import Counter

import numpy as np
import pytest

from wordlstm.dataset import MASKED, CorpusIds, corpus_ids
from wordlstm.evaluate import cross_entropy, evaluate, stream_outputs, target_logprobs
from wordlstm.split import HoldOut
from wordlstm.vectors import EOS


def test_open_vocabulary_bits_per_char_by_hand():
    """Vocabulary a, bc, </s>; held out: "bc a z" and a paragraph end. Known tokens cost
    (1 - p_oov) x the model's probability; the unknown character z costs p_oov x its unigram
    probability; every character counts, the paragraph end as one."""
    words = ["a", "bc", EOS]
    train = np.array([2, 0, 1, 0, 3, 2, 0, 2], np.int32)  # 7 targets, one unknown (3 = UNK)
    corpus = CorpusIds(train=train, val=np.array([2, 1, 0, 3, 2], np.int32), vocab_size=3,
                       train_unknown=1, val_words=4, val_unknown_chars=["z"],
                       char_counts=Counter({"a": 3, "b": 1, "c": 1, "q": 1}))
    targets = np.array([1, 0, MASKED, 2])
    logp = np.log(np.array([0.5, 0.25, np.nan, 0.125]))
    r = cross_entropy(logp, targets, corpus, words)
    p_oov = 1 / 7
    p_z = 1 / (6 + 4 + 1)  # add-one over the 4 training characters, plus one for unseen
    bits = -math.log2((1 - p_oov) * 0.5) - math.log2((1 - p_oov) * 0.25) \
        - math.log2(p_oov * p_z) - math.log2((1 - p_oov) * 0.125)
    chars = 2 + 1 + 1 + 1  # bc, a, z, the line break
    assert r["bits_per_char"] == pytest.approx(bits / chars)
    assert r["bits_per_word"] == pytest.approx(bits / 4)
    assert r["perplexity"] == pytest.approx(2 ** (bits / 4))
    assert r["oov_share"] == pytest.approx(1 / 4) and r["characters"] == 5


def test_target_logprobs_and_topk():
    class Fixed:
        def logprobs(self, y):
            return np.log(np.array([[0.6, 0.3, 0.1]] * len(y)))

    logp, hits = target_logprobs(Fixed(), np.zeros((3, 2)), np.array([0, 2, MASKED]))
    assert np.allclose(logp[:2], np.log([0.6, 0.1])) and np.isnan(logp[2])
    assert hits == {1: 1, 5: 2, 10: 2}


def test_stream_outputs_carry_state_like_one_long_run(model_dir):
    from wordlstm.modeldir import load

    step = load(model_dir).step
    ids = np.random.default_rng(0).integers(0, 30, 300)
    one = stream_outputs(step, ids, pieces=1)
    ref, state = [], step.zero_state(1)
    for t in ids[:-1]:
        y, state = step.step(np.array([t]), state)
        ref.append(y[0])
    np.testing.assert_allclose(one, np.array(ref), rtol=1e-4, atol=1e-5)
    assert stream_outputs(step, ids, pieces=4).shape == one.shape


def test_evaluate_a_trained_model(model_dir, segmented):
    from wordlstm.modeldir import load

    m = load(model_dir)
    corpus = corpus_ids(str(segmented), m.vectors.index, HoldOut())
    r = evaluate(m.step, m.decoder, corpus, m.vectors.words)
    assert 0 < r["bits_per_char"] < 12 and r["top1"] >= r["baseline_top1"] * 0.9
    assert r["top1"] <= r["top5"] <= r["top10"] <= 1
    # The synthetic text is very regular: far better than a uniform guess over the vocabulary.
    assert r["bits_per_word"] < math.log2(len(m.vectors)) - 1
