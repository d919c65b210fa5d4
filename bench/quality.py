"""Next-word accuracy of trained model dirs on their held-out split (see bench/RESULTS.md).

    python bench/quality.py SEGMENTED MODEL_DIR [MODEL_DIR ...]
"""

import json
import sys
from pathlib import Path

from wordlstm.evaluate import evaluate, held_out
from wordlstm.generate import StepModel
from wordlstm.modeldir import check_weights, load_inference, load_vectors_checked, read_config


def main(segmented, *dirs):
    for d in dirs:
        d = Path(d)
        config = read_config(d)
        vectors = load_vectors_checked(d, config)
        weights = load_inference(d, config)
        check_weights(d, config, weights)
        m = config["model"]
        ids, starts, base = held_out(segmented, vectors.index, m["window"],
                                     config["training"]["val_fraction"], whole=False)
        space = (None if m.get("head", "vector") == "softmax"
                 else vectors.target_space(m.get("target", "raw")))
        r = evaluate(StepModel(weights), space, ids, starts, m["window"], base)
        hist = json.loads((d / "history.json").read_text())["epochs"]
        r["windows_per_s"] = round(sum(h["windows_per_s"] for h in hist) / len(hist))
        print(json.dumps({"model": str(d), **{k: round(v, 4) if isinstance(v, float) else v
                                              for k, v in r.items()}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
