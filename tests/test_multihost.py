"""Training across machines: one `wordlstm train` per host, each host a network namespace
with an address of its own (tests/netns.py), joined by the engine's own environment only.

JAX: JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, CPU collectives over
gloo. TensorFlow: TF_CONFIG (MultiWorkerMirroredStrategy, collectives over gRPC).
Each host works in a directory of its own (as machines with their own disks; the
corpus and vectors at the same absolute paths) and runs the same command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns

pytestmark = pytest.mark.hosts  # they set KERAS_BACKEND=jax themselves: CI runs them once
REPO = Path(__file__).resolve().parent.parent
WHY_NOT = netns.unavailable()
needs_hosts = pytest.mark.skipif(WHY_NOT is not None or importlib.util.find_spec("jax") is None,
                                 reason=f"no network hosts: {WHY_NOT}" if WHY_NOT else "needs jax")
ENGINES = [pytest.param("jax", id="jax"),
           pytest.param("tensorflow", id="tensorflow", marks=pytest.mark.skipif(
               importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow"))]
ARGS = ["--window", "5", "--units", "8", "--layers", "1", "--batch-size", "16", "--seed", "3",
        "--weights-dtype", "float32", "--patience", "0"]
TIMEOUT = 420  # seconds any one job may take here (2 busy cores); each run stops by itself


@pytest.fixture(scope="module")
def hosts():
    if WHY_NOT is not None:
        pytest.skip(f"no network hosts: {WHY_NOT}")
    with netns.Hosts(2) as h:  # the namespaces go, whatever happens in the tests
        yield h


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "TF_CONFIG",
                                                                      "WORDLSTM_VIRTUAL"))}
    return env | {"KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"} | extra


class Worker:
    """`wordlstm ARGS` on host `i`, in `cwd`, stderr collected in a file."""

    def __init__(self, hosts, i: int, port: int, args: list, cwd: Path, count: int = 2,
                 extra: dict | None = None, engine: str = "jax"):
        cwd.mkdir(parents=True, exist_ok=True)
        self.i, self.cwd, self.log = i, cwd, cwd / f"worker{i}.log"
        self.err = open(self.log, "w")  # noqa: SIM115 - open while the worker runs
        if engine == "jax":
            job = {"JAX_COORDINATOR_ADDRESS": f"{hosts.addresses[0]}:{port}",
                   "JAX_NUM_PROCESSES": str(count), "JAX_PROCESS_ID": str(i)}
        else:  # each worker listens at its own host's address
            job = {"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps({
                "cluster": {"worker": [f"{a}:{port}" for a in hosts.addresses[:count]]},
                "task": {"type": "worker", "index": i}})}
        env = _env({**job, **(extra or {})})
        self.proc = subprocess.Popen(hosts.command(i, [sys.executable, "-m", "wordlstm.cli",
                                                       *map(str, args)]),
                                     cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.err.close()

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def _job(hosts, port, args, root: Path, extra=None, corpora=None, engine="jax") -> list[Worker]:
    workers = [Worker(hosts, i, port, [*args] if corpora is None else [*args[:1], corpora[i], *args[2:]],
                      root / f"host{i}", extra=extra, engine=engine) for i in range(2)]
    try:
        for w in workers:
            w.wait()
    finally:
        for w in workers:
            w.stop()
    return workers


def _train_args(segmented, vectors_file, epochs: int) -> list:
    return ["train", segmented, "--vectors", vectors_file, "-o", "m", "--epochs", epochs,
            "--devices", "all", *ARGS]


def _weights(model_dir: Path) -> list[np.ndarray]:
    from wordlstm.modeldir import load

    w = load(model_dir).weights
    return [w.embedding, *w.lstm[0], w.dense_kernel, w.dense_bias]


@needs_hosts
@pytest.mark.parametrize("engine", ENGINES)
def test_two_hosts_train_as_one_job(hosts, segmented, vectors_file, tmp_path, engine):
    port = 24101 if engine == "jax" else 24201
    workers = _job(hosts, port, _train_args(segmented, vectors_file, 2), tmp_path, engine=engine)
    for w in workers:
        assert w.proc.returncode == 0, w.stderr
        # one job: each host sees both hosts' devices, and feeds half of every batch
        assert "data parallel over 2 devices on 2 workers" in w.stderr, w.stderr
        assert f"this is worker {w.i}, with 1 of them" in w.stderr
        if engine == "jax":  # TensorFlow splits each global batch itself
            assert f"worker {w.i} of 2: rows {8 * w.i}-{8 * w.i + 7} of each batch of 16" in w.stderr
    # only worker 0 writes: worker 1's directory holds its log alone
    assert (tmp_path / "host0" / "m" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "host1").iterdir()) == ["worker1.log"]
    assert "m on worker 0: model saved" in workers[1].stderr

    # the same global batches in one process, over two devices of its own: the same numbers
    ref = subprocess.run([sys.executable, "-m", "wordlstm.cli",
                          *map(str, _train_args(segmented, vectors_file, 2))],
                         cwd=tmp_path, env=_env({"WORDLSTM_VIRTUAL_CPUS": "2",
                                                 "KERAS_BACKEND": engine}), check=False,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert ref.returncode == 0, ref.stderr
    assert ("data parallel over 2 devices (keras" if engine == "jax" else
            "data parallel over 2 devices (tf.distribute.MirroredStrategy") in ref.stderr
    job, alone = tmp_path / "host0" / "m", tmp_path / "m"
    for a, b in zip(_weights(job), _weights(alone)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    hist = [json.loads((d / "history.json").read_text())["epochs"] for d in (job, alone)]
    assert [round(r["loss"], 4) for r in hist[0]] == [round(r["loss"], 4) for r in hist[1]]

    out = subprocess.run([sys.executable, "-m", "wordlstm.cli", "continue-text", "老王", "--model",
                          job, "-n", "20", "--seed", "1", "--json"], env=_env({}), check=False,
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert "".join(json.loads(out.stdout)["texts"]).strip()


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def _wait_for_line(worker: Worker, needle: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while needle not in worker.stderr:
        assert worker.proc.poll() is None, worker.stderr
        assert time.monotonic() < deadline, worker.stderr
        time.sleep(0.2)


def _kill_mid_epoch(workers: list[Worker], victim: int, private: set, timeout: float):
    """Kill worker `victim` once epoch 1 is checkpointed; (the other's exit status, seconds
    it took to stop). Worker 1's private copies of the checkpoint made meanwhile are removed."""
    other = workers[1 - victim]
    try:
        _wait_for_line(other, "epoch 1/4: 13")  # epoch 1 checkpointed; epoch 2 runs
        workers[victim].proc.kill()
        killed = time.monotonic()
        rc = other.wait(timeout=timeout)
        return rc, time.monotonic() - killed
    finally:
        for w in workers:
            w.stop()
        for d in set(Path(tempfile.gettempdir()).glob("wordlstm-worker1-*")) - private:
            shutil.rmtree(d, ignore_errors=True)


@needs_hosts
@pytest.mark.parametrize("engine", ENGINES)
def test_a_lost_worker_stops_the_job_and_resume_finishes_it(hosts, segmented, vectors_file,
                                                            tmp_path, engine):
    args = _train_args(segmented, vectors_file, 4)
    port = 24102 if engine == "jax" else 24202
    private = set(Path(tempfile.gettempdir()).glob("wordlstm-worker1-*"))
    workers = [Worker(hosts, i, port, args, tmp_path / f"host{i}", engine=engine)
               for i in range(2)]
    rc, took = _kill_mid_epoch(workers, victim=1, private=private, timeout=60)
    stderr = workers[0].stderr
    assert rc != 0 and took < 30, (took, stderr)
    assert "Traceback" not in stderr and "Check failure" not in stderr, stderr
    (line,) = _errors(stderr)
    assert "lost worker 1 of 2" in line and "--resume" in line, line
    ckpt = tmp_path / "host0" / "m" / "checkpoint"
    state = json.loads((ckpt / "state.json").read_text())
    assert 1 <= state["epoch"] < 4 and all((ckpt / f).is_file() for f in state["files"].values())
    assert not (tmp_path / "host0" / "m" / "config.json").exists()  # no model dir yet

    workers = _job(hosts, port + 1, [*args, "--resume"], tmp_path, engine=engine)
    for w in workers:
        assert w.proc.returncode == 0, w.stderr
        assert f"resuming from epoch {state['epoch']} of 4" in w.stderr
    hist = json.loads((tmp_path / "host0" / "m" / "history.json").read_text())["epochs"]
    assert [r["epoch"] for r in hist] == list(range(1, 5))


@needs_hosts
@pytest.mark.parametrize("engine", ENGINES)
def test_a_worker_with_another_corpus_is_refused_by_every_worker(hosts, segmented, vectors_file,
                                                                 tmp_path, engine):
    other = tmp_path / "other.seg.txt"
    other.write_text(Path(segmented).read_text(encoding="utf-8") + "老王 笑道 。\n", encoding="utf-8")
    args = _train_args(segmented, vectors_file, 2)
    started = time.monotonic()
    workers = _job(hosts, 24104 if engine == "jax" else 24204, args, tmp_path,
                   corpora=[segmented, other], engine=engine)
    assert time.monotonic() - started < TIMEOUT
    for w in workers:
        assert w.proc.returncode == 1, w.stderr
        (line,) = _errors(w.stderr)
        assert "worker 1 has another corpus than worker 0" in line, line
        assert "Traceback" not in w.stderr
    assert not (tmp_path / "host0" / "m").exists()


@needs_hosts
@pytest.mark.parametrize("engine", ENGINES)
def test_an_unreachable_coordinator_is_one_error_in_bounded_time(hosts, segmented, vectors_file,
                                                                 tmp_path, engine):
    started = time.monotonic()  # worker 1 alone: nothing listens at worker 0's address
    port = 24105 if engine == "jax" else 24205
    w = Worker(hosts, 1, port, _train_args(segmented, vectors_file, 1), tmp_path / "host1",
               extra={"WORDLSTM_CONNECT_TIMEOUT": "3"}, engine=engine)
    assert w.wait(timeout=90) == 1, w.stderr
    assert time.monotonic() - started < 90
    (line,) = _errors(w.stderr)
    what = "JAX_COORDINATOR_ADDRESS" if engine == "jax" else "TF_CONFIG's worker 0"
    assert f"cannot reach the coordinator {what}={hosts.addresses[0]}:{port}" in line
    assert "within 3 s" in line and "Traceback" not in w.stderr


JAX_ABORTS = ("JAX's client aborts the process natively (SIGABRT, a C++ stack trace) within "
              "0.1 s of losing the coordination service; its missed_heartbeat_callback, the one "
              "hook, fails with std::bad_cast when given a Python function (jaxlib 0.10.2)")


@needs_hosts
@pytest.mark.parametrize("engine", [pytest.param("jax", id="jax", marks=pytest.mark.xfail(
    reason=JAX_ABORTS, strict=True)), *ENGINES[1:]])
def test_losing_worker_0_stops_the_others_in_one_line(hosts, segmented, vectors_file, tmp_path,
                                                      engine):
    args = _train_args(segmented, vectors_file, 4)
    port = 24106 if engine == "jax" else 24206
    private = set(Path(tempfile.gettempdir()).glob("wordlstm-worker1-*"))
    workers = [Worker(hosts, i, port, args, tmp_path / f"host{i}", engine=engine,
                      extra={"WORDLSTM_HEARTBEAT": "5"}) for i in range(2)]
    rc, took = _kill_mid_epoch(workers, victim=0, private=private, timeout=90)  # the coordinator
    stderr = workers[1].stderr
    assert rc == 1 and took < 60, (rc, took, stderr)
    assert "Traceback" not in stderr and "Check failure" not in stderr, stderr
    (line,) = _errors(stderr)
    assert "lost worker 0 (the coordinator) of 2" in line and "--resume" in line, line
