"""Peak memory of `wordlstm segment` on a 50 MB file that is one line, against the same kind of
text with a line break every ~100 characters (the baseline, measured in the same run).

    python bench/longline.py [--mb 50]

Each case runs in a fresh process; its peak RSS comes from getrusage of the child.
Prints one JSON line per case and the ratio to the baseline.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# Varied text (no two lines alike, so nothing is cached): seeded random clauses of these words.
WORDS = ("宝玉 黛玉 宝钗 凤姐 贾母 袭人 笑道 说道 听了 只见 一面 进来 出去 姑娘 太太 老爷 丫头 "
         "屋里 园中 今日 明儿 什么 怎么 这样 那里 不知 只是 便是 果然 忽然 回来 吃茶 说话 "
         "看见 知道 心中 想着 一时 众人 大家 起来 东西 银子 衣裳 花儿 诗社 读书 春天 秋风").split()


def varied_text(n_bytes: int, line_chars: int | None, seed: int = 1) -> bytes:
    import random

    rng = random.Random(seed)
    out, size, line = [], 0, 0
    while size < n_bytes:
        clause = "".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        clause += rng.choice("，，，。。？！")
        line += len(clause)
        if line_chars and line >= line_chars:
            clause += "\n"
            line = 0
        out.append(clause)
        size += len(clause.encode("utf-8"))
    return "".join(out).encode("utf-8")


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
    n = args.mb * 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {"line breaks every ~100 chars (baseline)": varied_text(n, 100),
                 "one line, no line break": varied_text(n, None)}
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
