"""Segmentation speed: `wordlstm segment` end to end against plain jieba, same input, same run.

    python bench/segment.py [FILES...] [--repeat-mb N]

Baseline: one process reads the file as UTF-8 and writes " ".join(jieba.lcut(line)) for every
line. wordlstm: the CLI as a user runs it (detect encoding, decode, normalise, segment on all
cores, write atomically). Both are timed as whole processes, so start-up counts too. With
--repeat-mb, a file of that size is made by repeating the inputs (jieba is then timed on the
first 20 MB only and its MB/s used for the ratio; it takes ~1 min per 20 MB) and wordlstm's peak
RSS shows that memory stays flat.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPORA = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora"
NOVELS = [CORPORA / n for n in ("hongloumeng.txt", "sanguoyanyi.txt", "shuihuzhuan.txt")]

BASELINE = """
import sys, jieba, logging
jieba.setLogLevel(logging.WARNING)
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in f:
        out.write(" ".join(jieba.lcut(line.rstrip("\\r\\n"))) + "\\n")
"""


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def peak_rss_mb(cmd):
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], check=True, capture_output=True,
                         text=True)
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", default=[str(p) for p in NOVELS])
    ap.add_argument("--repeat-mb", type=int, default=0)
    ap.add_argument("--jobs", default="0")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wordlstm-segbench-"))
    data = b"".join(Path(f).read_bytes() for f in args.files)
    src = tmp / "input.txt"
    if args.repeat_mb:
        with open(src, "wb") as f:
            while f.tell() < args.repeat_mb * 1e6:
                f.write(data)
        base_src = tmp / "base.txt"
        base_src.write_bytes((data * (1 + int(20e6 // len(data))))[: int(20e6)].rsplit(b"\n", 1)[0])
    else:
        src.write_bytes(data)
        base_src = src
    size = src.stat().st_size / 1e6
    base_mb = base_src.stat().st_size / 1e6
    t_base = timed([sys.executable, "-c", BASELINE, str(base_src), str(tmp / "base.out")])
    cmd = [sys.executable, "-m", "wordlstm.cli", "segment", str(src), "-o", str(tmp / "w.out"),
           "-q", "--jobs", args.jobs]
    t_w = timed(cmd)
    rss = peak_rss_mb(cmd) if args.repeat_mb else None
    base_rate, w_rate = base_mb / t_base, size / t_w
    print(json.dumps({"input_mb": round(size, 1), "jieba_mb": round(base_mb, 1),
                      "jieba_mb_per_s": round(base_rate, 3), "wordlstm_mb_per_s": round(w_rate, 2),
                      "ratio": round(w_rate / base_rate, 1), "jobs": args.jobs,
                      "wordlstm_peak_rss_mb": rss, "cpus": os.cpu_count()}))
    if not args.repeat_mb:  # same tokens on every line (ignoring the empty lines we drop)
        ours = [line for line in (tmp / "w.out").read_text(encoding="utf-8").splitlines()]
        theirs = [" ".join(t for t in line.split(" ") if t.strip())
                  for line in (tmp / "base.out").read_text(encoding="utf-8").splitlines()]
        theirs = [line for line in theirs if line]
        print(json.dumps({"lines": len(ours), "identical_to_jieba": ours == theirs}))


if __name__ == "__main__":
    main()
