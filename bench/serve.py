"""`wordlstm serve` under load: N concurrent clients over loopback for a bounded time.

Each client streams continuations (POST /api/continue, stream=true) one after another with
fresh seeds; a 503 is honoured by waiting its Retry-After. Reported per run: requests/s,
words/s, p50/p99 time to first word and to completion, 503s (all with Retry-After?), other
failures, and the server's peak RSS (a fresh server per run, so peaks are per run). Batched
generation (the default) is compared with --no-batch (each request alone in a thread) in
the same run.

    python bench/serve.py [--model DIR] [--seconds 20] [--length 100] [--clients 1,8,32]
                          [--prompt-words 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def start_server(model, extra):
    args = [sys.executable, "-m", "wordlstm.cli", "serve", "--port", "0", "--quiet", *extra]
    if model:
        args += ["--model", model]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    line = proc.stdout.readline()
    if "http://" not in line:
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    host_port = line.split("http://")[1].split("/")[0]
    host, port = host_port.rsplit(":", 1)
    return proc, host, int(port)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client(host, port, prompt, length, until, stats, lock):
    rng = random.Random()
    while time.monotonic() < until:
        body = json.dumps({"prompt": prompt, "length": length, "stream": True,
                           "seed": rng.randrange(2**31)})
        t0 = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=120)
            conn.request("POST", "/api/continue", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            if r.status == 503:
                retry = r.getheader("Retry-After")
                r.read()
                conn.close()
                with lock:
                    stats["busy"] += 1
                    stats["busy_without_retry_after"] += retry is None
                time.sleep(float(retry or 1))
                continue
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
            first = None
            words = 0
            kind = None
            for raw in r:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                    if kind == "word":
                        words += 1
                        if first is None:
                            first = time.monotonic() - t0
                    elif kind in ("done", "error"):
                        break
            rest = r.readline()  # the event's data line
            conn.close()
            if kind != "done":
                raise RuntimeError(f"ended with {kind}: {rest[:200]!r}")
            with lock:
                stats["ttfw"].append(first)
                stats["done"].append(time.monotonic() - t0)
                stats["words"] += words
        except Exception as err:  # noqa: BLE001 - counted and shown, the run goes on
            with lock:
                stats["failed"] += 1
                stats["errors"].append(str(err)[:200])


def run(model, extra, n, seconds, length, prompt):
    proc, host, port = start_server(model, extra)
    try:
        # Warm-up: one request, so start-up costs are not in the figures.
        warm = {"ttfw": [], "done": [], "words": 0, "busy": 0, "busy_without_retry_after": 0,
                "failed": 0, "errors": []}
        client(host, port, prompt, 5, time.monotonic() + 0.01, warm, threading.Lock())
        stats = {"ttfw": [], "done": [], "words": 0, "busy": 0, "busy_without_retry_after": 0,
                 "failed": 0, "errors": []}
        lock = threading.Lock()
        t0 = time.monotonic()
        until = t0 + seconds
        threads = [threading.Thread(target=client, args=(host, port, prompt, length, until,
                                                         stats, lock)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 180)
        hung = sum(t.is_alive() for t in threads)
        elapsed = time.monotonic() - t0
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    done = np.array(stats["done"]) if stats["done"] else np.array([np.nan])
    ttfw = np.array(stats["ttfw"]) if stats["ttfw"] else np.array([np.nan])
    return {"clients": n, "requests": len(stats["done"]), "req_s": len(stats["done"]) / elapsed,
            "words_s": stats["words"] / elapsed,
            "ttfw_p50": float(np.percentile(ttfw, 50)), "ttfw_p99": float(np.percentile(ttfw, 99)),
            "done_p50": float(np.percentile(done, 50)), "done_p99": float(np.percentile(done, 99)),
            "busy_503": stats["busy"], "busy_without_retry_after": stats["busy_without_retry_after"],
            "failed": stats["failed"], "hung": hung, "peak_rss_mb": rss,
            "errors": stats["errors"][:3]}


def cowrite(model, prompt, clicks=50):
    """Co-writing latency: /api/next after the text, then after each click on the likeliest
    word. The first call reads the whole text; later ones only what the click added."""
    proc, host, port = start_server(model, [])

    def ask(text):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("POST", "/api/next", json.dumps({"text": text, "k": 5}),
                     {"Content-Type": "application/json"})
        got = json.loads(conn.getresponse().read())
        conn.close()
        return got, time.monotonic() - t0

    try:
        ask("宝玉")  # warm-up (segmenter and first-call costs), not counted
        times, text = [], prompt
        for _ in range(clicks + 1):
            got, seconds = ask(text)
            times.append(seconds)
            text += got["words"][0]["text"]
    finally:
        proc.terminate()
        proc.wait(10)
    later = np.array(times[1:])
    return {"chars": len(prompt), "first_s": times[0], "click_p50_s": float(np.median(later)),
            "click_p99_s": float(np.percentile(later, 99)), "clicks": clicks}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--seconds", type=float, default=20.0, help="load time per run")
    ap.add_argument("--length", type=int, default=100, help="words per request")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--prompt", default="宝玉笑道")
    ap.add_argument("--prompt-words", type=int, default=0,
                    help="a longer prompt, as co-writing sends: this many words the model "
                         "writes after --prompt (seed 0), so no novel text is needed")
    ap.add_argument("--limited", default="--max-active 8 --max-waiting 8",
                    help="server options for the extra run above the concurrency limit")
    ap.add_argument("--cowrite-only", action="store_true", help="only the co-writing latency")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    if args.prompt_words:
        from wordlstm.sampling import SamplingConfig
        from wordlstm.writer import Request, Writer

        made = Writer.load(args.model).write(Request(prompt=args.prompt, length=args.prompt_words,
                                                     seed=0), SamplingConfig())
        args.prompt = made.texts[0]
    runs = []
    for label, extra in () if args.cowrite_only else (("batched", []), ("no-batch", ["--no-batch"])):
        for n in clients:
            runs.append({"server": label, **run(args.model, extra, n, args.seconds, args.length,
                                                args.prompt)})
            print(f"  {label} N={n}: {runs[-1]['req_s']:.1f} req/s", file=sys.stderr)
    if not args.cowrite_only:
        runs.append({"server": "batched " + args.limited,
                     **run(args.model, args.limited.split(), max(clients), args.seconds,
                           args.length, args.prompt)})
    co = cowrite(args.model, args.prompt)
    if args.json:
        print(json.dumps({"runs": runs, "cowrite": co}, indent=1))
        return
    if runs:
        table(runs, args)
    print(f"\nco-writing (/api/next, one client, a {co['chars']}-character text): first call "
          f"{co['first_s'] * 1000:.1f} ms; each of {co['clicks']} clicks after it p50 "
          f"{co['click_p50_s'] * 1000:.1f} ms, p99 {co['click_p99_s'] * 1000:.1f} ms "
          f"({co['first_s'] / co['click_p50_s']:.0f}x faster at p50)")


def table(runs, args):
    print(f"{args.length} words a request, streamed, after a prompt of {len(args.prompt)} "
          f"characters; {args.seconds:g} s per run\n")
    print("| server | clients | requests | req/s | words/s | first word p50 / p99 (s) | "
          "completion p50 / p99 (s) | 503 (with Retry-After) | failed | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        busy = f"{r['busy_503']} ({r['busy_503'] - r['busy_without_retry_after']})"
        print(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['req_s']:.1f} | "
              f"{r['words_s']:,.0f} | {r['ttfw_p50']:.3f} / {r['ttfw_p99']:.3f} | "
              f"{r['done_p50']:.3f} / {r['done_p99']:.3f} | {busy} | "
              f"{r['failed'] + r['hung']} | {r['peak_rss_mb']:.0f} |")
    for r in runs:
        for e in r["errors"]:
            print(f"error ({r['server']}, N={r['clients']}): {e}")


if __name__ == "__main__":
    main()
