"""Baseline figures of the whole pipeline on a novel (issue 2), each stage as its own process.

    python bench/pipeline.py [../shared/corpora/hongloumeng.txt] [--train-lines N] [--backend B]

Prints one JSON line per stage: segmentation MB/s, word2vec words/s, training windows/s,
generation words/s, each with the peak RSS of its process. Training runs one epoch on the
first --train-lines paragraphs (windows/s is steady after the first batches).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(cmd, env=None):
    """Run a command; return (seconds, peak RSS in MB of that child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: run the stages in order of
    # increasing memory, or read it as an upper bound.
    return seconds, max(peak, before) / 1024, out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("novel", nargs="?",
                    default=str(HERE.parent.parent / "shared" / "corpora" / "hongloumeng.txt"))
    ap.add_argument("--train-lines", type=int, default=600)
    ap.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wordlstm-bench-"))
    w = [sys.executable, "-m", "wordlstm.cli"]
    size = os.path.getsize(args.novel)

    s, rss, out = run(w + ["segment", args.novel, "-o", tmp / "seg.txt", "--json", "-q"])
    seg = json.loads(out)
    print(json.dumps({"stage": "segment", "engine": seg["engine"], "mb": round(size / 1e6, 2),
                      "mb_per_s_inner": seg["mb_per_s"], "mb_per_s_process": round(size / 1e6 / s, 2),
                      "peak_rss_mb": round(rss)}))

    s, rss, out = run(w + ["train-vectors", tmp / "seg.txt", "-o", tmp / "vectors", "--json", "-q"])
    vec = json.loads(out)
    print(json.dumps({"stage": "train-vectors", "words_per_s": vec["words_per_s"],
                      "seconds": vec["seconds"], "peak_rss_mb": round(rss)}))

    lines = (tmp / "seg.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp / "part.txt").write_text("".join(lines[: args.train_lines]), encoding="utf-8")
    s, rss, _ = run(w + ["train", tmp / "part.txt", "--vectors", tmp / "vectors", "-o", tmp / "m",
                         "--epochs", "1", "-q"],
                    env={"KERAS_BACKEND": args.backend})
    hist = json.loads((tmp / "m" / "history.json").read_text())["epochs"][0]
    print(json.dumps({"stage": "train", "backend": args.backend, "paragraphs": args.train_lines,
                      "targets_per_s": hist["targets_per_s"], "epoch_seconds": hist["seconds"],
                      "peak_rss_mb": round(rss)}))

    run(w + ["continue-text", "宝玉笑道", "--model", tmp / "m", "-n", "5", "-q"])  # fills the cache
    s, rss, out = run(w + ["continue-text", "宝玉笑道", "--model", tmp / "m", "-n", "2000",
                           "--seed", "1", "--json"])
    gen = json.loads(out)
    print(json.dumps({"stage": "continue-text", "words": sum(gen["words"]),
                      "words_per_s": round(sum(gen["words"]) / gen["seconds"]),
                      "process_seconds": round(s, 2)}))


if __name__ == "__main__":
    main()
