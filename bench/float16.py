"""Does storing the network in float16 cost anything? Held-out bits/char of a model's network
alone (no cache, no adaptation), with its weights as stored and rounded to float16.

    python bench/float16.py SEGMENTED --model DIR [--model DIR2 ...]

The vectors stay float32 (word2vec's binary format); only the LSTM and head weights, what
model.keras stores, are rounded. The decoding is the model's own, fitted to its weights.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from wordlstm.dataset import corpus_ids
from wordlstm.evaluate import evaluate
from wordlstm.modeldir import InferenceWeights, load
from wordlstm.stepmodel import StepModel


def _half(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float16).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("segmented")
    ap.add_argument("--model", action="append", required=True)
    args = ap.parse_args()
    rows = []
    for model_dir in args.model:
        m = load(model_dir)
        holdout = m.config.training.holdout
        corpus = corpus_ids(args.segmented, m.vectors.index, holdout)
        w = m.weights
        half = StepModel(InferenceWeights(w.embedding, [tuple(_half(x) for x in layer)
                                                        for layer in w.lstm],
                                          _half(w.dense_kernel), _half(w.dense_bias)))
        row = {"model": model_dir}
        for name, step in (("as_stored", m.step), ("float16", half)):
            row[name] = round(evaluate(step, m.decoder, corpus, m.vectors.words)
                              ["bits_per_char"], 5)
        row["difference"] = round(row["float16"] - row["as_stored"], 5)
        rows.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
