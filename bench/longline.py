"""Peak memory of `wordlstm segment` on a 50 MB file that is one line, against the same text
with a line break every ~100 characters (the baseline, measured in the same run).

    python bench/longline.py [--mb 50]

Each case runs in a fresh process; its peak RSS comes from getrusage of the child.
Prints one JSON line per case and the ratio to the baseline.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNIT = "宝玉笑道：你来了。他便问黛玉可曾读书，又说了些闲话。".encode("utf-8")


def peak_of_segment(src: Path, out: Path) -> tuple[float, float]:
    code = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "r = subprocess.run([sys.executable, '-m', 'wordlstm.cli', 'segment', sys.argv[1], "
            "'-o', sys.argv[2], '-q', '-j', '1'])\n"
            "assert r.returncode == 0\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    p = subprocess.run([sys.executable, "-c", code, str(src), str(out)], capture_output=True,
                       text=True, check=True)
    seconds, kb = p.stdout.split()
    return float(seconds), int(kb) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    n = args.mb * 1_000_000 // len(UNIT)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"line breaks every ~100 chars (baseline)": b"\n".join([UNIT * 4] * (n // 4)),
                 "one line, no line break": UNIT * n}
        base = None
        for name, data in cases.items():
            src = tmp / "in.txt"
            src.write_bytes(data)
            seconds, peak = peak_of_segment(src, tmp / "out.txt")
            base = base or peak
            print(json.dumps({"case": name, "input_mb": round(len(data) / 1e6, 1),
                              "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1),
                              "vs_baseline": round(peak / base, 2)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
