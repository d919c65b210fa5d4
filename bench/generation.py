"""Generation speed: the naive loop (model.predict on the whole window per word) against the
numpy step generator, window and carried-state modes, 1 stream and a batch of 32.

    python bench/generation.py [MODEL_DIR] [--words N] [--long 100000] [--cache-only]

Prints one JSON line per configuration, each with its words/s and its ratio to the naive
loop measured in the same run. For a model with a fitted continuous cache, the default
(carried state, sampled) rows are measured with the cache off and on, the ratio of the two
in the same run (`--cache-only`: just those, and the long run with the cache).
"""

import argparse
import json
import time

import numpy as np

from wordlstm.modeldir import load_keras_model
from wordlstm.sampling import SamplingConfig
from wordlstm.writer import Writer


def naive_words_per_s(writer, core, window, words, prompt_ids):
    """The classic loop: predict on the whole window with Keras, take the likeliest word."""
    ctx = list(prompt_ids)
    emb = writer.loaded.weights.embedding

    def predict():
        x = emb[np.array([ctx[-window:]])]
        return core.predict(x, verbose=0)[0, -1]

    predict()  # warm-up / compile
    t0 = time.perf_counter()
    for _ in range(words):
        ctx.append(int(np.argmax(writer.loaded.decoder.logprobs(predict()[None])[0])))
    return words / (time.perf_counter() - t0)


def fast_words_per_s(writer, ids, words, batch, context, greedy, cache=True):
    cfg = SamplingConfig(context=context, greedy=greedy, cache=cache)
    writer.gen.generate([ids] * batch, 5, cfg, seed=0)  # warm-up
    t0 = time.perf_counter()
    writer.gen.generate([ids] * batch, words, cfg, seed=0)
    return batch * words / (time.perf_counter() - t0)


def long_run(writer, ids, words, every=1000, cache=True):
    """Words/s over successive stretches of `every` words of one long stream (default
    settings): constant when the per-word work does not grow with the history. Returns
    (words so far, words/s over the last stretch) for the first stretch, every tenth of the
    run, and the last."""
    marks = []

    def on_step(step, nxt):
        if (step + 1) % every == 0:
            marks.append((step + 1, time.perf_counter()))

    t0 = time.perf_counter()
    writer.gen.generate([ids], words, SamplingConfig(cache=cache), seed=0, on_step=on_step)
    rates, last = [], t0
    for n, t in marks:
        rates.append((n, round(every / (t - last), 1)))
        last = t
    tenth = max(len(rates) // 10, 1)
    keep = {0, len(rates) - 1} | set(range(tenth - 1, len(rates), tenth))
    return [r for i, r in enumerate(rates) if i in keep]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", nargs="?", default=None)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--naive-words", type=int, default=50)
    ap.add_argument("--long", type=int, default=0, help="also one stream of this many words")
    ap.add_argument("--cache-only", action="store_true",
                    help="only the cache on/off comparison (and --long with the cache)")
    args = ap.parse_args()
    writer = Writer.load(args.model_dir)
    from wordlstm.backend import import_keras

    keras = import_keras()
    core = load_keras_model(writer.model_dir)
    window = writer.config.model.window
    ids = writer.encode("宝玉笑道")
    common = {"model": str(writer.model_dir), "vocab": len(writer.vectors), "window": window,
              "backend": keras.backend.backend(), "cache": writer.loaded.cache and
              writer.loaded.cache.to_json()}
    if writer.loaded.cache is not None:
        for batch in (1, 32):
            off, on = [], []
            for _ in range(3):  # interleaved, so that other load on the machine hits both
                off.append(fast_words_per_s(writer, ids, args.words, batch, "carry", False, False))
                on.append(fast_words_per_s(writer, ids, args.words, batch, "carry", False, True))
            print(json.dumps({**common, "config": "numpy step, carry, sampled: cache off / on "
                              "(best of 3 each)", "streams": batch,
                              "words_per_s": [round(max(off), 1), round(max(on), 1)],
                              "on_vs_off": round(max(on) / max(off), 3)}))
    if args.cache_only:
        if args.long:
            rates = long_run(writer, ids, args.long, every=min(1000, args.long))
            print(json.dumps({**common, "config": "one long stream, default sampling (cache "
                              "on), words/s over each 1,000 words", "words_per_s_by_stretch":
                              rates, "last_vs_first": round(rates[-1][1] / rates[0][1], 2)}))
        return
    naive = naive_words_per_s(writer, core, window, args.naive_words, ids)
    print(json.dumps({**common, "config": "naive model.predict loop, greedy", "streams": 1,
                      "words_per_s": round(naive, 1), "ratio": 1.0}))
    for context in ("window", "carry"):
        for batch in (1, 32):
            for greedy in (True, False):
                wps = fast_words_per_s(writer, ids, args.words, batch, context, greedy)
                print(json.dumps({**common, "config": f"numpy step, context={context}, "
                                  f"{'greedy' if greedy else 'sampled'}", "streams": batch,
                                  "words_per_s": round(wps, 1), "ratio": round(wps / naive, 1)}))
    if args.long:
        rates = long_run(writer, ids, args.long, every=min(1000, args.long))
        print(json.dumps({**common, "config": "one long stream, default sampling, words/s "
                          "over each 1,000 words", "words_per_s_by_stretch": rates,
                          "last_vs_first": round(rates[-1][1] / rates[0][1], 2)}))


if __name__ == "__main__":
    main()
