"""A training job over several machines (workers): joining it, agreeing, and failing cleanly.

Every worker runs the same `wordlstm train ... --devices all`; the engine's own environment
says which job it is in (JAX: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).
Worker 0 alone writes into `-o` (the checkpoint and the model dir); the others keep their
checkpoint in a private temporary directory and, on `--resume`, receive worker 0's through
the coordinator's key-value store, so no shared filesystem is needed.

JAX aborts the process (a native stack trace) when the coordinator cannot be reached or a
worker stops sending heartbeats; the checks here come first and end with one line: the
coordinator is probed before joining, a collective that fails mid-training asks every
worker to answer within `ANSWER_S` seconds and names the ones that do not, and a failed
job leaves the process at once (JAX's exit barrier would wait for the lost worker).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import UserError

CONNECT_TIMEOUT = "WORDLSTM_CONNECT_TIMEOUT"  # seconds to wait for the coordinator (300)
HEARTBEAT = "WORDLSTM_HEARTBEAT"  # seconds of silence before JAX declares a worker lost (60)
ANSWER_S = 5.0  # after a failed collective: how long the workers have to say they are alive
CHUNK = 1 << 20  # checkpoint bytes per key-value entry
_state: dict[str, Any] = {"failed": False, "client": None}


def _env_int(name: str) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{name}={value!r}: a multi-machine JAX job needs JAX_COORDINATOR_ADDRESS, "
                        "JAX_NUM_PROCESSES and JAX_PROCESS_ID (a number) on every worker") from None


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds") from None
    if not value > 0:
        raise UserError(f"{name} must be a positive number of seconds")
    return value


def worker() -> tuple[int, int]:
    """(this worker's index, number of workers); (0, 1) outside a multi-machine job."""
    backend = os.environ.get("KERAS_BACKEND", "").strip() or "tensorflow"
    if backend == "jax" and os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return _env_int("JAX_PROCESS_ID"), _env_int("JAX_NUM_PROCESSES")
    if backend == "tensorflow" and os.environ.get("TF_CONFIG"):
        try:
            config = json.loads(os.environ["TF_CONFIG"])
            return int(config["task"]["index"]), len(config["cluster"]["worker"])
        except (ValueError, KeyError, TypeError):
            raise UserError("TF_CONFIG must be JSON with cluster.worker (the workers' "
                            "host:port) and task.index (this worker's)") from None
    return 0, 1


def is_writer() -> bool:
    """Whether this process writes the outputs: always, except workers 1, 2, … of a job."""
    return worker()[0] == 0


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"JAX_COORDINATOR_ADDRESS={address!r}: give host:port (worker 0's)")
    return host.strip("[]"), int(port)


def _wait_for(address: str, timeout: float) -> None:
    """Return once `address` accepts a TCP connection; else one line after `timeout` s."""
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)):
                return
        except OSError as err:
            last = err.strerror or str(err) or type(err).__name__
        if time.monotonic() >= deadline:
            raise UserError(f"cannot reach the coordinator JAX_COORDINATOR_ADDRESS={address} "
                            f"within {timeout:g} s ({last.lower()}): start worker 0 there, or "
                            f"fix the address (wait longer: {CONNECT_TIMEOUT}=seconds)")
        time.sleep(0.5)


def start_jax() -> None:
    """jax.distributed.initialize from the environment, the coordinator probed first."""
    import jax

    address = os.environ["JAX_COORDINATOR_ADDRESS"]
    index, count = worker()
    if not 0 <= index < count:
        raise UserError(f"JAX_PROCESS_ID={index} with JAX_NUM_PROCESSES={count}: the workers "
                        f"are numbered 0 to {count - 1}")
    _split_address(address)
    timeout = _seconds(CONNECT_TIMEOUT, 300)
    started = time.monotonic()
    if index:
        _wait_for(address, timeout)
    left = max(5, int(timeout - (time.monotonic() - started)))
    jax.distributed.initialize(coordinator_address=address, num_processes=count,
                               process_id=index, initialization_timeout=left,
                               heartbeat_timeout_seconds=int(_seconds(HEARTBEAT, 60)),
                               shutdown_timeout_seconds=int(_seconds(HEARTBEAT, 60)))
    atexit.register(_leave)  # after JAX's own exit hook, so it runs before it


def _leave() -> None:
    """At exit of a failed job: leave at once (JAX's exit barrier waits for every worker)."""
    if _state["failed"]:
        if _state.get("private"):
            shutil.rmtree(_state["private"], ignore_errors=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _client():
    from jax._src.distributed import global_state

    if global_state.client is None:
        raise UserError("not in a multi-machine JAX job")
    return global_state.client


def _jax_job() -> bool:
    return worker()[1] > 1 and (os.environ.get("KERAS_BACKEND") or "") == "jax"


def failed(message: str) -> UserError:
    """The job cannot go on: the error to raise, and the process leaves at exit."""
    _state["failed"] = True
    return UserError(message)


def check_same_inputs(segmented, state: dict) -> None:
    """Every worker must train on the same corpus, vectors and settings (else their
    gradients would mix two trainings): each publishes its digests and settings (`state`:
    train's checkpoint state) and compares everyone's with worker 0's; a difference is
    refused by every worker."""
    if not _jax_job():
        return
    from .modeldir import file_hash

    record = {"corpus": file_hash(Path(segmented)), "epoch": state["epoch"],
              **{k: state[k] for k in ("vocab_sha256", "vectors_sha256", "model", "training",
                                       "segmenter")}}
    index, count = worker()
    client = _client()
    text = json.dumps(record, sort_keys=True)
    client.key_value_set(f"wordlstm/inputs/{index}", text)
    wait_ms = int(_seconds(CONNECT_TIMEOUT, 300) * 1000)
    records = {}
    for k in range(count):
        try:
            records[k] = json.loads(client.blocking_key_value_get(f"wordlstm/inputs/{k}", wait_ms))
        except Exception:  # noqa: BLE001 - the engine's error types are not public
            raise failed(f"worker {k} did not start training within "
                         f"{wait_ms / 1000:g} s; start the same command on every worker") from None
    for k in range(1, count):
        differ = sorted(key for key in set(records[0]) | set(records[k])
                        if records[0].get(key) != records[k].get(key))
        if differ:
            raise UserError(f"worker {k} has another {', '.join(differ)} than worker 0 "
                            f"({_short(records[k], differ[0])} vs {_short(records[0], differ[0])}): "
                            "every worker needs the same corpus, vectors and options")


def _short(record: dict, key: str) -> str:
    value = record.get(key)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] if isinstance(value, str) else text[:60]


def checkpoint_dir(ckpt: Path, resume: bool) -> Path:
    """Where this worker keeps its checkpoint: `ckpt` on worker 0 (and alone); elsewhere a
    private temporary copy, filled on `resume` with worker 0's checkpoint."""
    if not _jax_job():
        return ckpt
    index, _ = worker()
    client = _client()
    if index == 0:
        if resume:
            _publish(client, ckpt)
        return ckpt
    mine = Path(tempfile.mkdtemp(prefix=f"wordlstm-worker{index}-")) / "checkpoint"
    atexit.register(shutil.rmtree, mine.parent, True)
    _state["private"] = mine.parent  # _leave removes it too
    if resume:
        _receive(client, mine)
    return mine


def _publish(client, ckpt: Path) -> None:
    names = sorted(p.name for p in ckpt.iterdir() if p.is_file() and not p.name.endswith(
        ".part")) if (ckpt / "state.json").is_file() else []
    listing = {}
    for name in names:
        data = (ckpt / name).read_bytes()
        chunks = range(0, max(len(data), 1), CHUNK)
        for i, at in enumerate(chunks):
            client.key_value_set_bytes(f"wordlstm/ckpt/{name}/{i}", data[at:at + CHUNK])
        listing[name] = len(chunks)
    client.key_value_set("wordlstm/ckpt", json.dumps(listing))


def _receive(client, mine: Path) -> None:
    wait_ms = int(_seconds(CONNECT_TIMEOUT, 300) * 1000)
    try:
        listing = json.loads(client.blocking_key_value_get("wordlstm/ckpt", wait_ms))
        mine.mkdir(parents=True)
        for name, chunks in listing.items():
            data = b"".join(client.blocking_key_value_get_bytes(f"wordlstm/ckpt/{name}/{i}",
                                                                wait_ms) for i in range(chunks))
            (mine / name).write_bytes(data)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - the engine's error types are not public
        raise failed("worker 0 did not share its checkpoint: run the same command, with "
                     "--resume, on every worker") from None


def agreed(value: bool) -> bool:
    """Worker 0's `value` on every worker (a decision from its clock, e.g. the time limit:
    workers that decide apart would wait for each other for ever)."""
    if not _jax_job():
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(value)))


def lost_workers() -> list[int]:
    """After a failed collective: the workers that do not say they are alive within
    ANSWER_S seconds ([] when every worker answers: the failure was something else)."""
    index, count = worker()
    try:
        client = _client()
        client.key_value_set(f"wordlstm/alive/{index}", "1", allow_overwrite=True)
        deadline = time.monotonic() + ANSWER_S
        while True:
            alive = {int(k.rsplit("/", 1)[-1]) for k, _ in client.key_value_dir_get("wordlstm/alive/")}
            if len(alive) == count or time.monotonic() >= deadline:
                return sorted(set(range(count)) - alive)
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - the coordinator itself is gone
        return [0]


def lost_error(lost: list[int]) -> UserError:
    index, count = worker()
    names = ", ".join(map(str, lost))
    what = "worker 0 (the coordinator)" if lost == [0] else f"worker{'s' * (len(lost) > 1)} {names}"
    return failed(f"lost {what} of {count} during training (this is worker {index}): the job "
                  "stops; run the same command with --resume on every worker to continue from "
                  "the last checkpoint (worker 0's -o)")


def finished() -> None:
    """The end of a successful job: worker 0 says it has written the model dir; the others
    wait for that before leaving (the coordinator lives in worker 0)."""
    if not _jax_job():
        return
    client = _client()
    if worker()[0] == 0:
        client.key_value_set("wordlstm/done", "1")
        return
    try:
        client.blocking_key_value_get("wordlstm/done", 24 * 3600 * 1000)
    except Exception:  # noqa: BLE001 - worker 0 failed while writing
        raise failed("worker 0 stopped before writing the model dir; see its messages") from None
