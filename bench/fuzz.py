"""Coverage-guided fuzzing of the word2vec reader and the config.json loader (issue 20).

    python bench/fuzz.py [--seconds 60] [--target all|bin|txt|sniff|config]
                         [--engine auto|atheris|random] [--seed 1] [--findings DIR]

Each input is one file, read as the tool reads it: a vectors file through
`vectors.load_vectors` (named .bin, .txt, or without a known suffix so the format is sniffed),
or a model dir's config.json through `modeldir.read_config`, and then used as `load` uses it
(the model, cache, n-gram and segmenter settings; the decoder when its shapes are small).

The one allowed failure is `UserError` with a one-line message (what the CLI prints as its
`error:` line). Anything else is a finding: another exception, a message of several lines or
of more than 2,000 characters, or one input taking more than 10 s. Findings are printed and
saved under --findings (default bench/fuzz-findings/) as `<target>-<sha1>.bin`; each becomes a
regression test in tests/test_vectors.py or tests/test_modeldir.py. Exit status 1 if any.

Engines:
  atheris  libFuzzer with coverage of the instrumented wordlstm code (`pip install atheris`);
           it runs in a child process, so the time bound and the exit status hold.
  random   a mutation loop guided by line coverage of wordlstm (sys.settrace): byte flips,
           inserts, deletions, splices, word2vec header rewrites and JSON-aware value swaps.
           No dependency; `tests/test_reliability.py` runs it for a few seconds.
  auto     atheris if it imports, else random (said on stderr).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = ("bin", "txt", "sniff", "config")
SUFFIX = {"bin": "v.bin", "txt": "v.txt", "sniff": "v.vectors"}
MAX_MESSAGE = 2000
SLOW_S = 10.0


@dataclass
class Finding:
    target: str
    data: bytes
    problem: str  # one line: what went wrong
    detail: str  # the traceback or the message
    kind: str = ""  # what makes two findings the same (the exception and place, or the rule)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.data).hexdigest()[:16]


# --- seeds -----------------------------------------------------------------------------

def _seed_vectors():
    import numpy as np

    from wordlstm.vectors import EOS, Vectors

    rng = np.random.default_rng(0)
    return Vectors(["的", "了", "宝玉", EOS, "hello"], rng.normal(size=(5, 7)).astype(np.float32))


def seed_config() -> dict:
    """A valid config.json of every section the loader checks (a 5-word, 7-d model)."""
    from wordlstm.model import ModelConfig
    from wordlstm.modeldir import FORMAT, FORMAT_VERSION, vocab_hash
    from wordlstm.segment import SegmenterConfig

    v = _seed_vectors()
    digest = "0" * 64
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": ModelConfig(window=6, units=12, layers=1, dim=v.dim,
                                 vocab_size=len(v)).to_json(),
            "vocab_sha256": vocab_hash(v.words),
            "segmenter": SegmenterConfig().to_json(),
            "training": {"holdout": {"fraction": 0.05, "lines": False, "seed": 1}, "seed": 1},
            "decoder": {"kind": "prior", "tau": 0.1, "prior_scale": 1.0, "cosine_tau": 0.1,
                        "cache": {"size": 100, "theta": 0.3, "weight": 0.1},
                        "dynamic_lr": 0.01, "ngram": {"order": 3, "weight": 0.15}},
            "lines": {"clause_length": 5, "clause_ends": ["，", "。"], "forms": [[4, 5]]},
            "files": {n: digest for n in ("model.keras", "vectors.bin", "prior.npy",
                                          "ngram.npz", "lines.npy")}}


def seeds(target: str) -> list[bytes]:
    if target == "config":
        config = seed_config()
        plain = dict(config, decoder={"kind": "cosine"})
        plain.pop("lines")
        plain["files"] = {k: config["files"][k] for k in ("model.keras", "vectors.bin")}
        return [json.dumps(config, ensure_ascii=False, indent=2).encode(),
                json.dumps(plain).encode()]
    from wordlstm.vectors import save_vectors

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for binary in (True, False):
            path = Path(tmp) / ("v.bin" if binary else "v.txt")
            save_vectors(_seed_vectors(), path, binary=binary)
            out.append(path.read_bytes())
    return out if target == "sniff" else out[:1] if target == "bin" else out[1:]


# --- the check: one input, read as the tool reads it -------------------------------------

class Workdir:
    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="wordlstm-fuzz-")
        self.path = Path(self._tmp.name)
        (self.path / "m").mkdir()

    def close(self):
        self._tmp.cleanup()


def _use_config(config) -> None:
    """What `load` and the generator do with a checked config (modeldir.ModelDirConfig)
    beyond reading files."""
    import numpy as np

    m = config.model
    if m.vocab_size * m.dim <= 100_000:
        from wordlstm.decoding import make_decoder

        matrix = np.ones((m.vocab_size, m.dim), np.float32)
        prior = np.full(m.vocab_size, -np.log(m.vocab_size), np.float32)
        make_decoder(config.decoder.to_json(), matrix, prior, head=m.head)


def run_one(target: str, data: bytes, work: Workdir) -> None:
    """Raises whatever the tool raises for this input."""
    if target == "config":
        from wordlstm.modeldir import read_config

        (work.path / "m" / "config.json").write_bytes(data)
        _use_config(read_config(work.path / "m"))
        return
    from wordlstm.vectors import load_vectors

    path = work.path / SUFFIX[target]
    path.write_bytes(data)
    load_vectors(path)


def check(target: str, data: bytes, work: Workdir) -> Finding | None:
    """None if the input is read, or refused with one clear UserError line."""
    from wordlstm.errors import UserError

    t0 = time.perf_counter()
    try:
        run_one(target, data, work)
    except UserError as err:
        message = str(err)
        if "\n" in message or "\r" in message:
            return Finding(target, data, "a UserError of several lines", message[:3000],
                           "several lines")
        if len(message) > MAX_MESSAGE:
            return Finding(target, data, f"a UserError of {len(message):,} characters",
                           message[:3000], "long message")
        if not message.strip():
            return Finding(target, data, "an empty UserError", repr(message), "empty")
    except Exception as err:  # noqa: BLE001 -- anything else is what we look for
        where = _where(err)
        return Finding(target, data, f"{type(err).__name__} at {where}: "
                       f"{' '.join(str(err).split())[:200]}", traceback.format_exc(),
                       f"{type(err).__name__} at {where}")
    seconds = time.perf_counter() - t0
    if seconds > SLOW_S:
        return Finding(target, data, f"took {seconds:.1f} s", "", "slow")
    return None


def _where(err: BaseException) -> str:
    """The innermost wordlstm frame of a traceback (file:line), else the innermost."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "wordlstm" in f.filename and "bench" not in f.filename]
    f = (ours or frames or [None])[-1]
    return f"{Path(f.filename).name}:{f.lineno}" if f else "?"


def save(finding: Finding, findings: Path) -> Path:
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{finding.target}-{finding.key}.bin"
    path.write_bytes(finding.data)
    (findings / f"{finding.target}-{finding.key}.txt").write_text(
        f"{finding.problem}\n\n{finding.detail}\n", encoding="utf-8")
    return path


def report(finding: Finding, path: Path | None = None, log=print) -> None:
    shown = base64.b64encode(finding.data[:300]).decode()
    log(f"FINDING [{finding.target}] {finding.problem}"
        + (f" (saved: {path})" if path else "")
        + f"\n  input ({len(finding.data)} bytes, base64 of the first 300): {shown}")


# --- engine: random mutations guided by line coverage ------------------------------------

INTERESTING = [b"0", b"-1", b"4294967296", b"99999999999", b" ", b"\n", b"\r\n", b"\x00",
               b"\xff", b"\xe5\xae", b"nan", b"inf", b"1e309", b"\t", b"  ", b"\xc0\x80"]
EXTREMES = [None, -1, 0, 1, 10 ** 12, 10 ** 30, 1e308, -1e308, float("nan"), float("inf"), "",
            "x\ny", "x" * 5000, [], {}, [[1, 2]], {"a": 1}, True, False, 2.5, "1", "auto",
            "prior", "word", "char", "jieba", [[0, 0]], [["a", 1]], "0" * 64, "user_dict.txt"]


def _mutate_bytes(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(9)
        pos = rng.randrange(len(b) + 1)
        if kind == 0 and b:  # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and b:  # set a byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 2:  # insert an interesting token
            b[pos:pos] = rng.choice(INTERESTING)
        elif kind == 3:  # insert random bytes
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif kind == 4:  # delete a range
            del b[pos:pos + rng.randint(1, 64)]
        elif kind == 5 and b:  # duplicate a range
            n = rng.randint(1, 128)
            b[pos:pos] = b[pos:pos + n] * rng.randint(1, 4)
        elif kind == 6:  # truncate
            del b[pos:]
        elif kind == 7 and others:  # splice with another input
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[cut:])
        elif kind == 8:  # rewrite a word2vec header's numbers
            nl = b.find(b"\n")
            head = b"%d %d" % (rng.choice([0, 1, 2, 4, 5, 6, 7, 10 ** rng.randint(1, 12)]),
                               rng.choice([0, 1, 6, 7, 8, 10_000, 10_001, 10 ** 9]))
            b = bytearray(head) + (b[nl:] if nl >= 0 else b"\n" + b)
    return bytes(b)


def _mutate_json(data: bytes, rng: random.Random) -> bytes | None:
    """One value of a JSON document replaced (or a key removed, or a section nested deep)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    paths = []

    def walk(node, path):
        if len(paths) > 500:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + [k])
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append(path + [i])
                walk(v, path + [i])

    walk(doc, [])
    if not paths:
        return json.dumps(rng.choice(EXTREMES)).encode()
    path = rng.choice(paths)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    kind = rng.randrange(4)
    if kind == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == 1:
        parent[path[-1]] = "@DEEP@"  # nested deeper than a parser may recurse: made as text
    else:
        parent[path[-1]] = rng.choice(EXTREMES)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    n = rng.choice([10, 1000, 100_000])
    text = text.replace('"@DEEP@"', "[" * n + "0" + "]" * n)
    if rng.random() < 0.1:  # an integer too long to convert
        text = text.replace("1", "1" + "0" * 5000, 1)
    return text.encode()


class _Coverage:
    """Lines of wordlstm run (sys.settrace), for keeping inputs that reach new code."""

    def __init__(self):
        self.package = str(ROOT / "wordlstm")
        self.lines: set = set()

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename.startswith(self.package):
            return self._local
        return None

    def run(self, fn):
        self.lines = set()
        sys.settrace(self._global)
        try:
            return fn()
        finally:
            sys.settrace(None)


def run_random(seconds: float, seed: int = 1, targets=TARGETS, findings: Path | None = None,
               log=print, max_execs: int | None = None) -> list[Finding]:
    """The coverage-guided mutation loop for `seconds`; returns its findings (one per
    problem and place)."""
    rng = random.Random(seed)
    corpus = {t: seeds(t) for t in targets}
    covered: set = set()
    coverage = _Coverage()
    work = Workdir()
    found: dict[str, Finding] = {}
    execs = kept = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and (max_execs is None or execs < max_execs):
            target = targets[execs % len(targets)]
            pool = corpus[target]
            parent = rng.choice(pool)
            data = None
            if target == "config" and rng.random() < 0.5:
                data = _mutate_json(parent, rng)
            if data is None:
                data = _mutate_bytes(parent, rng, pool)
            finding = coverage.run(lambda t=target, d=data: check(t, d, work))
            execs += 1
            new = coverage.lines - covered
            if new:
                covered |= new
                if len(pool) < 2000:
                    pool.append(data)
                    kept += 1
            if finding is not None:
                place = f"{finding.target} {finding.kind}"
                if place not in found:
                    found[place] = finding
                    report(finding, save(finding, findings) if findings else None, log)
    finally:
        work.close()
    log(f"random engine: {execs:,} inputs in {seconds:g} s, {len(covered):,} lines of wordlstm "
        f"covered, {kept:,} inputs kept, {len(found)} finding(s)")
    return list(found.values())


# --- engine: atheris (libFuzzer) ---------------------------------------------------------

def _atheris_child(seconds: int, targets: list[str], findings: Path) -> None:
    """Runs inside the child process; never returns (libFuzzer exits)."""
    import importlib

    import atheris

    with atheris.instrument_imports(include=["wordlstm"]):
        for name in ("cache", "decoding", "modeldir", "ngram", "vectors"):
            importlib.import_module(f"wordlstm.{name}")

    work = Workdir()
    seen: set = set()

    def one_input(raw: bytes) -> None:
        if not raw:
            return
        target = targets[raw[0] % len(targets)]
        finding = check(target, raw[1:], work)
        if finding is not None:
            place = f"{finding.target} {finding.kind}"
            if place not in seen:
                seen.add(place)
                report(finding, save(finding, findings), lambda m: print(m, flush=True))

    corpus = Path(tempfile.mkdtemp(prefix="wordlstm-fuzz-corpus-"))
    for i, target in enumerate(targets):
        for j, s in enumerate(seeds(target)):
            (corpus / f"seed-{target}-{j}").write_bytes(bytes([i]) + s)
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-timeout=10",
                   "-rss_limit_mb=4096", "-print_final_stats=1", "-max_len=65536",
                   f"-artifact_prefix={findings}/libfuzzer-", str(corpus)], one_input)
    atheris.Fuzz()


def run_atheris(seconds: int, targets, findings: Path, log=print) -> int:
    """libFuzzer in a child process for `seconds`; the number of findings it saved."""
    findings.mkdir(parents=True, exist_ok=True)
    before = set(findings.glob("*.bin"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--engine", "atheris-child",
           "--seconds", str(int(seconds)), "--target", ",".join(targets),
           "--findings", str(findings)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True,
                       timeout=seconds + 120)
    for line in p.stdout.splitlines():
        log(line)
    stats = [x for x in p.stderr.splitlines() if x.startswith(("stat::", "#", "Done"))]
    log("\n".join(stats[-8:]))
    crashes = list(findings.glob("libfuzzer-*"))
    new = set(findings.glob("*.bin")) - before
    if p.returncode != 0 and not crashes and not new:
        log(p.stderr[-3000:])
        raise SystemExit(f"the atheris run failed (exit status {p.returncode})")
    return len(new) + len(crashes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--target", default="all", help="all, or a comma list of " + ", ".join(TARGETS))
    ap.add_argument("--engine", default="auto",
                    choices=["auto", "atheris", "random", "atheris-child"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--findings", type=Path, default=Path(__file__).resolve().parent
                    / "fuzz-findings")
    args = ap.parse_args(argv)
    targets = list(TARGETS) if args.target == "all" else args.target.split(",")
    if any(t not in TARGETS for t in targets):
        ap.error(f"--target: choose from {', '.join(TARGETS)}")
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # nothing here needs a framework
    if args.engine == "atheris-child":
        _atheris_child(int(args.seconds), targets, args.findings)
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            print("atheris is not installed: using the random engine", file=sys.stderr)
            engine = "random"
    if engine == "atheris":
        n = run_atheris(int(args.seconds), targets, args.findings)
    else:
        n = len(run_random(args.seconds, args.seed, targets, args.findings))
    print(f"{n} finding(s)" + (f"; inputs in {args.findings}" if n else ""))
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
