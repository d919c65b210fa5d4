"""Issue 4's table for the current code: train each head/loss on one corpus, same split and seed,
then score every model on the same held-out windows with each decoding.

    KERAS_BACKEND=jax python bench/quality.py SEGMENTED VECTORS OUT_DIR [--epochs 1] [--reuse]
        [--only NAME,NAME]

Each configuration is trained with `wordlstm.train.train` into OUT_DIR/NAME (with --reuse, a
finished model dir there is scored again instead of retrained). Windows/s is the training part
of each epoch, as `train` records it. Decodings of a vector head: cosine (plain nearest
neighbour), csls (hubness-corrected, Conneau et al. 2018, k=10 over 20,000 training-window
predictions) and prior (cosine / tau + log word frequency, what `train` ships by default).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from wordlstm.dataset import make_windows, window_starts
from wordlstm.evaluate import held_out, topk_hits
from wordlstm.generate import Decoder, make_decoder
from wordlstm.model import ModelConfig
from wordlstm.segment import SegmenterConfig
from wordlstm.train import TrainConfig, train
from wordlstm.writer import Writer

CONFIGS = {  # name: (ModelConfig settings, TrainConfig settings)
    "softmax": (dict(head="softmax"), {}),
    "contrastive": (dict(loss="contrastive"), {}),  # the product default
    "classic": (dict(loss="cosine", target="raw"), dict(decode="cosine")),
    "cosine": (dict(loss="cosine"), {}),
    "vmf": (dict(loss="vmf"), {}),
    "margin": (dict(loss="margin"), {}),
    "contrastive-finetune": (dict(loss="contrastive", train_embedding=True), {}),
}


def predictions(writer, ids, starts, window, batch=2048):
    out = []
    for i in range(0, len(starts), batch):
        x, _ = make_windows(ids, starts[i:i + batch], window)
        out.append(writer.gen.model.run(x)[0])
    return np.concatenate(out)


def score(scores_fn, y, truth, batch=2048):
    hits = {1: 0, 5: 0, 10: 0}
    for i in range(0, len(y), batch):
        for k, v in topk_hits(scores_fn(y[i:i + batch]), truth[i:i + batch]).items():
            hits[k] += v
    return {f"top{k}": v / len(truth) for k, v in hits.items()}


def csls_scores(decoder, y_fit, k=10):
    """2 cos(y, w) - r(w), r(w) = mean cosine of word w to its k nearest predictions."""
    top = None
    for i in range(0, len(y_fit), 2048):
        c = decoder.cosines(y_fit[i:i + 2048])
        top = c if top is None else np.vstack([top, c])
        top = -np.partition(-top, k - 1, axis=0)[:k]
    hub = top.mean(axis=0)
    return lambda y: 2 * decoder.cosines(y) - hub


def evaluate_dir(model_dir: Path, segmented: str) -> list[dict]:
    w = Writer.load(model_dir)
    m, t = w.config["model"], w.config["training"]
    ids, starts, base = held_out(segmented, w.vectors.index, m["window"], t["val_fraction"],
                                 whole=False)
    truth = ids[starts + m["window"]]
    y = predictions(w, ids, starts, m["window"])
    hist = json.loads((model_dir / "history.json").read_text())["epochs"]
    speed = round(sum(h["windows_per_s"] for h in hist) / len(hist))
    common = {"model": model_dir.name, "windows": int(len(starts)), "windows_per_s": speed,
              "baseline_top1": float((truth == base).mean()), "vocab": len(w.vectors)}
    if m.get("head") == "softmax":
        return [common | {"decode": "softmax"} | score(w.gen.decoder.scores, y, truth)]
    rows = []
    unit = Decoder(w.vectors.target_space(m["target"]))
    rows.append(common | {"decode": "cosine"} | score(unit.scores, y, truth))
    train_starts = window_starts(ids, m["window"], len(w.vectors), t["val_fraction"]).train
    fit = np.random.default_rng(0).choice(train_starts, min(20_000, len(train_starts)),
                                          replace=False)
    y_fit = predictions(w, ids, fit, m["window"])
    rows.append(common | {"decode": "csls"} | score(csls_scores(unit, y_fit), y, truth))
    if (w.config.get("decoder") or {}).get("kind") == "prior":
        prior = make_decoder(w.config, w.vectors, w.gen.decoder.log_prior, "prior")
        rows.append(common | {"decode": "prior", "tau": prior.tau} | score(prior.scores, y, truth))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("segmented")
    ap.add_argument("vectors")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = [n for n in CONFIGS if not args.only or n in args.only.split(",")]
    rows = []
    for name in names:
        mset, tset = CONFIGS[name]
        out = Path(args.out) / name
        if not (args.reuse and (out / "config.json").is_file()):
            print(f"training {name} ...", file=sys.stderr, flush=True)
            train(args.segmented, args.vectors, out, ModelConfig(**mset),
                  TrainConfig(epochs=args.epochs, patience=0, **tset), SegmenterConfig(),
                  verbose=0, log=lambda *a: None)
        for row in evaluate_dir(out, args.segmented):
            print(json.dumps(row), flush=True)
            rows.append(row)
    soft = next((r for r in rows if r["decode"] == "softmax"), None)
    print("\n| model | decoding | top-1 | top-5 | top-10 | training windows/s "
          "| top-1 / softmax | speed / softmax |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        rel = (f"{r['top1'] / soft['top1']:.0%} | {r['windows_per_s'] / soft['windows_per_s']:.2f}x"
               if soft else "– | –")
        print(f"| {r['model']} | {r['decode']} | {r['top1']:.2%} | {r['top5']:.2%} | "
              f"{r['top10']:.2%} | {r['windows_per_s']:,} | {rel} |")
    if rows:
        print(f"| always the most frequent word | – | {rows[0]['baseline_top1']:.2%} | – | – | – "
              "| – | – |")


if __name__ == "__main__":
    main()
