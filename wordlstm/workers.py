"""A training job over several machines (workers): joining it, agreeing, and failing cleanly.

Every worker runs the same `wordlstm train ... --devices all`; the engine's own environment
says which job it is in (JAX: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
TensorFlow: TF_CONFIG). Worker 0 alone writes into `-o` (the checkpoint and the model dir);
the others keep their checkpoint in a private temporary directory and, on `--resume`,
receive worker 0's through the job itself (JAX: the coordinator's key-value store;
TensorFlow: an all-reduce of the bytes), so no shared filesystem is needed.

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


def _wait_for(address: str, timeout: float, what: str = "JAX_COORDINATOR_ADDRESS") -> None:
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
            raise UserError(f"cannot reach the coordinator {what}={address} "
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


def _tf_job() -> bool:
    return worker()[1] > 1 and _state.get("strategy") is not None


def _job() -> bool:
    return _jax_job() or _tf_job()


# --- TensorFlow: MultiWorkerMirroredStrategy from TF_CONFIG ---------------------------

def start_tensorflow():
    """The job's MultiWorkerMirroredStrategy, made before TensorFlow runs anything (it must
    configure collectives at program startup), worker 0's address probed first."""
    import tensorflow as tf

    index, count = worker()
    config = json.loads(os.environ["TF_CONFIG"])
    timeout = _seconds(CONNECT_TIMEOUT, 300)
    address = str(config["cluster"]["worker"][0])
    if index:
        _wait_for(address, timeout, "TF_CONFIG's worker 0")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _state["strategy"] = strategy
    _patch_keras_reduce()
    atexit.register(_leave)
    return strategy


def strategy():
    return _state.get("strategy")


def _patch_keras_reduce() -> None:
    """Keras 3.15's TensorFlow trainer reduces a step's scalar logs across workers with
    `axis=0` (keras-team/keras#20585: "Invalid reduction dimension 0"); scalars go with
    axis=None, everything else as Keras does."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "wordlstm", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(
                strategy):
            return original(values, strategy, reduction)

        def mean(v):
            one = v.values[0] if trainer._is_per_replica_instance(v) else v
            return strategy.reduce("MEAN", v, axis=None if one.shape.rank == 0 else 0)

        return tree.map_structure(mean, values)

    reduce_per_replica.wordlstm = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def fix_symbolic_build(model) -> None:
    """Keras 3.15 builds a model under MultiWorkerMirroredStrategy from a batch it first
    averages across workers, which fails on the integer ids (keras-team/keras#20585); one
    replica's rows give the same shapes."""
    if not _tf_job():
        return
    import types

    from keras.src import tree

    def build(self, iterator=None, data_batch=None):
        for _, _, it in iterator or ():
            batch = next(it)
            data_batch = tree.map_structure(
                lambda v: self.distribute_strategy.experimental_local_results(v)[0], batch)
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(build, model)


def _all_sum(array):
    """The sum of `array` over the workers (the first device of each contributes)."""
    import numpy as np
    import tensorflow as tf

    job = _state["strategy"]
    first = worker()[0] * len(job.extended.worker_devices)
    zeros = np.zeros_like(array)
    values = job.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(array if ctx.replica_id_in_sync_group == first else zeros))
    return job.reduce("SUM", values, axis=None).numpy()


def exchange(data: bytes) -> list[bytes]:
    """Every worker's `data`, on every worker (TensorFlow: two all-reduces)."""
    import numpy as np

    index, count = worker()
    lengths = np.zeros(count, np.int64)
    lengths[index] = len(data)
    try:
        lengths = _all_sum(lengths)
        buf = np.zeros(int(lengths.sum()), np.int32)
        at = int(lengths[:index].sum())
        buf[at:at + len(data)] = np.frombuffer(data, np.uint8)
        if len(buf):  # an all-reduce of nothing crashes TensorFlow 2.21 (a segfault)
            buf = _all_sum(buf)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - a worker is gone
        raise lost_error(lost_in(err)) from None
    ends = np.cumsum(lengths)
    return [buf[end - n:end].astype(np.uint8).tobytes() for n, end in zip(lengths, ends)]


def lost_in(err: BaseException) -> list[int]:
    """The workers TensorFlow names in a failed collective's error ([0] if it names none;
    [] when the error is not a collective's: the failure was something else)."""
    import re

    if type(err).__name__ not in ("UnavailableError", "AbortedError", "CancelledError",
                                  "DeadlineExceededError", "InternalError"):
        return []

    found = sorted({int(m) for m in re.findall(r"/job:worker/replica:\d+/task:(\d+)", str(err))}
                   - {worker()[0]})
    return found or [0]


def failed(message: str) -> UserError:
    """The job cannot go on: the error to raise, and the process leaves at exit."""
    _state["failed"] = True
    return UserError(message)


def check_same_inputs(segmented, state: dict) -> None:
    """Every worker must train on the same corpus, vectors and settings (else their
    gradients would mix two trainings): each publishes its digests and settings (`state`:
    train's checkpoint state) and compares everyone's with worker 0's; a difference is
    refused by every worker."""
    if not _job():
        return
    from .modeldir import file_hash

    record = {"corpus": file_hash(Path(segmented)), "epoch": state["epoch"],
              **{k: state[k] for k in ("vocab_sha256", "vectors_sha256", "model", "training",
                                       "segmenter")}}
    index, count = worker()
    text = json.dumps(record, sort_keys=True)
    if _tf_job():
        records = dict(enumerate(json.loads(b) for b in exchange(text.encode("utf-8"))))
    else:
        records = _gathered_jax(text, index, count)
    for k in range(1, count):
        differ = sorted(key for key in set(records[0]) | set(records[k])
                        if records[0].get(key) != records[k].get(key))
        if differ:
            raise UserError(f"worker {k} has another {', '.join(differ)} than worker 0 "
                            f"({_short(records[k], differ[0])} vs {_short(records[0], differ[0])}): "
                            "every worker needs the same corpus, vectors and options")


def _gathered_jax(text: str, index: int, count: int) -> dict:
    client = _client()
    client.key_value_set(f"wordlstm/inputs/{index}", text)
    wait_ms = int(_seconds(CONNECT_TIMEOUT, 300) * 1000)
    records = {}
    for k in range(count):
        try:
            records[k] = json.loads(client.blocking_key_value_get(f"wordlstm/inputs/{k}", wait_ms))
        except Exception:  # noqa: BLE001 - the engine's error types are not public
            raise failed(f"worker {k} did not start training within "
                         f"{wait_ms / 1000:g} s; start the same command on every worker") from None
    return records


def _short(record: dict, key: str) -> str:
    value = record.get(key)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] if isinstance(value, str) else text[:60]


def checkpoint_dir(ckpt: Path, resume: bool) -> Path:
    """Where this worker keeps its checkpoint: `ckpt` on worker 0 (and alone); elsewhere a
    private temporary copy, filled on `resume` with worker 0's checkpoint."""
    if not _job():
        return ckpt
    index, _ = worker()
    if index == 0:
        if resume and _tf_job():
            exchange(_packed(ckpt))
        elif resume:
            _publish(_client(), ckpt)
        return ckpt
    mine = Path(tempfile.mkdtemp(prefix=f"wordlstm-worker{index}-")) / "checkpoint"
    atexit.register(shutil.rmtree, mine.parent, True)
    _state["private"] = mine.parent  # _leave removes it too
    if resume and _tf_job():
        _unpacked(exchange(b"")[0], mine)
    elif resume:
        _receive(_client(), mine)
    return mine


def _checkpoint_files(ckpt: Path) -> list[str]:
    return sorted(p.name for p in ckpt.iterdir() if p.is_file() and not p.name.endswith(
        ".part")) if (ckpt / "state.json").is_file() else []


def _packed(ckpt: Path) -> bytes:
    """The checkpoint's files as one byte string: a JSON listing of names and sizes, a
    newline, then the files' bytes in that order."""
    names = _checkpoint_files(ckpt)
    blobs = [(ckpt / name).read_bytes() for name in names]
    head = json.dumps([[name, len(b)] for name, b in zip(names, blobs)]).encode("utf-8")
    return b"\n".join([head, b"".join(blobs)])


def _unpacked(data: bytes, mine: Path) -> None:
    mine.mkdir(parents=True)
    if not data:
        return
    head, _, body = data.partition(b"\n")
    at = 0
    for name, size in json.loads(head):
        (mine / name).write_bytes(body[at:at + size])
        at += size


def _publish(client, ckpt: Path) -> None:
    names = _checkpoint_files(ckpt)
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
    if _tf_job():
        return bool(exchange(b"1" if value else b"0")[0] == b"1")
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
    if _tf_job():
        exchange(b"")  # a barrier: worker 0 reaches it once the model dir is written
        return
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
