"""Vector head against softmax, and the vector head's variants: train each on one corpus with
the same split, seed and epochs, then score each on the held-out part as `wordlstm evaluate`
does (open-vocabulary bits/char, top-k) and report training speed.

    KERAS_BACKEND=jax python bench/quality.py SEGMENTED VECTORS OUT_DIR [--epochs 1]
        [--units 256] [--layers 1] [--dropout 0.0] [--only NAME,NAME] [--reuse]

Each configuration is trained with `wordlstm.train.train` into OUT_DIR/NAME, every epoch
(no early stopping); with --reuse a finished model dir there is scored again instead.
Targets/s is the training part of each epoch as `train` records it (validation excluded).
"""

import argparse
import json
import sys
from pathlib import Path

from wordlstm.dataset import corpus_ids
from wordlstm.evaluate import evaluate
from wordlstm.model import ModelConfig
from wordlstm.modeldir import load
from wordlstm.segment import SegmenterConfig
from wordlstm.train import TrainConfig, train

CONFIGS = {  # name: (ModelConfig settings, TrainConfig settings)
    "softmax": (dict(head="softmax"), {}),
    "contrastive": ({}, {}),  # the product default: fine-tuned vectors, input and target tied
    "contrastive-fixed": (dict(train_embedding=False), {}),  # word2vec's vectors as they are
    "classic": (dict(loss="cosine", target="raw", train_embedding=False), dict(decode="cosine")),
    "cosine": (dict(loss="cosine"), {}),
    "vmf": (dict(loss="vmf"), {}),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("segmented")
    ap.add_argument("vectors")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--only", default="")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(CONFIGS)
    rows = {}
    for name in names:
        model_kw, train_kw = CONFIGS[name]
        out = Path(args.out) / name
        if not (args.reuse and (out / "config.json").is_file()):
            cfg = ModelConfig(window=args.window, units=args.units, layers=args.layers,
                              dropout=args.dropout, **model_kw)
            tcfg = TrainConfig(epochs=args.epochs, patience=0, **train_kw)
            train(args.segmented, args.vectors, out, cfg, tcfg, SegmenterConfig(),
                  verbose=0, log=lambda msg, name=name: print(f"[{name}] {msg}", file=sys.stderr),
                  overwrite=True)  # a rerun without --reuse trains the row again
        m = load(out)
        corpus = corpus_ids(args.segmented, m.vectors.index,
                            m.config.training.holdout)
        result = evaluate(m.step, m.decoder, corpus, m.vectors.words)
        hist = json.loads((out / "history.json").read_text())["epochs"]
        result["targets_per_s"] = sum(h["targets_per_s"] for h in hist) / len(hist)
        result["vocab"] = len(m.vectors)
        rows[name] = result
        print(json.dumps({name: result}, ensure_ascii=False), flush=True)
    base = rows.get("softmax")
    print("\n| model | bits/char | bits/word | top-1 | top-5 | top-10 | targets/s | "
          "bits/char vs softmax | speed vs softmax |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        rel = (f"{r['bits_per_char'] / base['bits_per_char']:.3f}x | "
               f"{r['targets_per_s'] / base['targets_per_s']:.2f}x") if base else " | "
        print(f"| {name} | {r['bits_per_char']:.4f} | {r['bits_per_word']:.3f} | "
              f"{r['top1']:.2%} | {r['top5']:.2%} | {r['top10']:.2%} | "
              f"{r['targets_per_s']:,.0f} | {rel} |")


if __name__ == "__main__":
    main()
