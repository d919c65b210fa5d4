"""Next-word accuracy of trained model dirs on their held-out split (see bench/RESULTS.md).

    python bench/quality.py SEGMENTED MODEL_DIR [MODEL_DIR ...]
"""

import json
import sys

from wordlstm.evaluate import evaluate, held_out
from wordlstm.writer import Writer


def main(segmented, *dirs):
    for d in dirs:
        w = Writer.load(d)
        m, t = w.config["model"], w.config["training"]
        ids, starts, base = held_out(segmented, w.vectors.index, m["window"], t["val_fraction"],
                                     whole=False, lines=t.get("lines", False))
        r = evaluate(w.gen.model, w.gen.decoder, ids, starts, m["window"], base)
        hist = json.loads((w.model_dir / "history.json").read_text())["epochs"]
        r["windows_per_s"] = round(sum(h["windows_per_s"] for h in hist) / len(hist))
        print(json.dumps({"model": str(d), **{k: round(v, 4) if isinstance(v, float) else v
                                              for k, v in r.items()}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
