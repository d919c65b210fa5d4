"""Generation speed: the naive loop (model.predict on the whole window per word) against the
numpy step generator, window and carried-state modes, 1 stream and a batch of 32.

    python bench/generation.py [MODEL_DIR] [--words N]

Prints one JSON line per configuration, each with its words/s and its ratio to the naive
loop measured in the same run.
"""

import argparse
import json
import time

import numpy as np

from wordlstm.generate import SamplingConfig
from wordlstm.modeldir import load_keras_model
from wordlstm.writer import Writer


def naive_words_per_s(model, window, words, prompt_ids, decoder):
    """The classic loop: predict on the full window, nearest neighbour, append, repeat."""
    ctx = list(prompt_ids)
    model.predict(np.array([ctx[-window:]], dtype="int32"), verbose=0)  # warm-up / compile
    t0 = time.perf_counter()
    for _ in range(words):
        y = model.predict(np.array([ctx[-window:]], dtype="int32"), verbose=0)[0]
        ctx.append(int(np.argmax(decoder.scores(y[None])[0])))
    return words / (time.perf_counter() - t0)


def fast_words_per_s(writer, ids, words, batch, context, greedy):
    cfg = SamplingConfig(context=context, greedy=greedy)
    writer.gen.generate([ids] * batch, 5, cfg, seed=0)  # warm-up
    t0 = time.perf_counter()
    writer.gen.generate([ids] * batch, words, cfg, seed=0)
    return batch * words / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", nargs="?", default=None)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--naive-words", type=int, default=50)
    args = ap.parse_args()
    writer = Writer.load(args.model_dir)
    from wordlstm.backend import import_keras

    keras = import_keras()
    model = load_keras_model(writer.model_dir)
    window = writer.config["model"]["window"]
    ids = writer.encode("宝玉笑道")
    ids = [writer.eos] * (window - len(ids)) + ids
    naive = naive_words_per_s(model, window, args.naive_words, ids, writer.gen.decoder)
    common = {"model": str(writer.model_dir), "vocab": len(writer.vectors), "window": window,
              "backend": keras.backend.backend()}
    print(json.dumps({**common, "config": "naive model.predict loop, greedy", "streams": 1,
                      "words_per_s": round(naive, 1), "ratio": 1.0}))
    for context in ("window", "carry"):
        for batch in (1, 32):
            for greedy in (True, False):
                wps = fast_words_per_s(writer, ids, args.words, batch, context, greedy)
                print(json.dumps({**common, "config": f"numpy step, context={context}, "
                                  f"{'greedy' if greedy else 'sampled'}", "streams": batch,
                                  "words_per_s": round(wps, 1), "ratio": round(wps / naive, 1)}))


if __name__ == "__main__":
    main()
