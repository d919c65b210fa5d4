"""The numpy network's prefix cache: reading a longer text steps only through what was added,
with exactly the outputs of reading it whole."""

import numpy as np

from wordlstm.modeldir import load
from wordlstm.stepmodel import PrefixCache


def test_prefix_cache_reads_only_what_was_added(model_dir):
    step = load(model_dir).step
    rng = np.random.default_rng(0)
    text = list(rng.integers(0, 20, 50))
    cache = PrefixCache(step, size=4, lookback=8, tail=4)
    y, _ = step.run(np.array([text]))
    np.testing.assert_array_equal(cache.read(text), y)
    assert cache.steps == 50
    longer = text + [3, 4]
    np.testing.assert_array_equal(cache.read(longer), step.run(np.array([longer]))[0])
    assert cache.steps == 52  # two steps, not 52
    # The end segmented anew: the longest cached prefix within `lookback` is used.
    resegmented = text[:-3] + [7, 7, 7, 7]
    np.testing.assert_array_equal(cache.read(resegmented), step.run(np.array([resegmented]))[0])
    assert cache.steps == 52 + 5  # from the state kept 4 tokens before the end of `longer`
    # Texts that share nothing are read whole; old entries leave beyond `size`.
    for k in range(3):
        cache.read([k + 1] * 10)
    assert cache.steps == 57 + 30 and len(cache._entries) == 4
    cache.read(text)
    assert cache.steps == 87 + 50  # evicted: read again


def test_next_words_are_the_same_with_and_without_the_cache(model_dir):
    from wordlstm.writer import Writer

    w = Writer.load(model_dir)
    first, _ = w.next_words("老王在院子里", 5)
    steps = w.prefixes.steps
    again, _ = w.next_words("老王在院子里喝茶", 5)
    assert w.prefixes.steps - steps <= 2
    assert again == Writer.load(model_dir).next_words("老王在院子里喝茶", 5)[0]
    p = [prob for _, prob in first]
    assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1
