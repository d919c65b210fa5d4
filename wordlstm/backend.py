"""The one place that imports Keras, and reports which backend and devices it will use.

TensorFlow's C++ runtime writes log lines to the stderr file descriptor before any Python
setting can stop it; those lines are hidden here while Keras imports (errors still raise).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

from .errors import UserError
from .workers import worker


@contextlib.contextmanager
def _native_stderr_hidden():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


PRECISIONS = ("float32", "mixed")  # `train --precision`
VIRTUAL_CPUS = "WORDLSTM_VIRTUAL_CPUS"  # split the CPU into N devices (tests of --devices)


BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": None}


def check_backend() -> str:
    """KERAS_BACKEND (default tensorflow) is one Keras knows and its engine is installed;
    else one line saying what to set or install (Keras itself would raise a traceback)."""
    name = os.environ.get("KERAS_BACKEND", "").strip() or "tensorflow"
    if name not in BACKENDS:
        raise UserError(f"KERAS_BACKEND={name!r} is not a Keras backend; use one of "
                        f"{', '.join(BACKENDS)}")
    module = BACKENDS[name]
    if module is not None and importlib.util.find_spec(module) is None:
        extra = {"jax": "pip install 'wordlstm[jax]'", "torch": "pip install torch"}.get(
            name, f"pip install {module}")
        raise UserError(f"KERAS_BACKEND={name} but {module} is not installed here ({extra}), "
                        "or choose another backend")
    return name


def import_keras():
    """`import keras`, quietly; the backend comes from KERAS_BACKEND as usual."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    check_backend()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    virtual = int(os.environ.get(VIRTUAL_CPUS, "0") or 0)
    if virtual > 1 and os.environ.get("KERAS_BACKEND") == "jax":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={virtual}").strip()
    with _native_stderr_hidden():
        import keras
    if keras.backend.backend() == "jax" and os.environ.get("JAX_COORDINATOR_ADDRESS"):
        _start_jax_workers()  # its errors are native log lines: not hidden
    with _native_stderr_hidden():
        # Keras' saving code imports TensorFlow when it is installed, whatever the backend,
        # and TensorFlow logs natively on import and on its first device probe: do both here.
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow

            cpus = tensorflow.config.list_physical_devices("CPU")
            if virtual > 1 and keras.backend.backend() == "tensorflow" and cpus:
                tensorflow.config.set_logical_device_configuration(
                    cpus[0], [tensorflow.config.LogicalDeviceConfiguration()] * virtual)
            if keras.backend.backend() == "tensorflow" and os.environ.get("TF_CONFIG"):
                _start_tensorflow_workers()  # before TensorFlow runs anything
            tensorflow.config.list_logical_devices()  # starts the runtime (it logs cuInit)
    return keras


def _start_tensorflow_workers() -> None:
    """Join a TF_CONFIG job: tf.distribute.MultiWorkerMirroredStrategy spans its workers."""
    from . import workers

    index, count = worker()
    if count > 1:
        workers.start_tensorflow()


def _start_jax_workers() -> None:
    """Join a multi-host JAX job: afterwards jax.devices() lists every host's devices, so
    `train --devices all` (keras.distribution.DataParallel) spans all machines."""
    from . import workers

    workers.start_jax()


def describe() -> dict:
    """Backend, version, devices, and whether the LSTM will run as a fused cuDNN kernel."""
    keras = import_keras()
    backend = keras.backend.backend()
    info = {"keras": keras.__version__, "backend": backend, "backend_version": "",
            "devices": [], "gpus": 0}
    if backend == "jax":
        import jax

        info["backend_version"] = jax.__version__
        info["devices"] = [f"{d.platform}:{d.id}" for d in jax.devices()]
        info["gpus"] = sum(d.platform == "gpu" for d in jax.devices())
    elif backend == "tensorflow":
        import tensorflow as tf

        info["backend_version"] = tf.__version__
        info["devices"] = [d.name.replace("/physical_device:", "").lower()
                           for d in tf.config.list_physical_devices()]
        info["gpus"] = len(tf.config.list_physical_devices("GPU"))
    elif backend == "torch":
        import torch

        info["backend_version"] = torch.__version__
        info["gpus"] = torch.cuda.device_count()
        info["devices"] = [f"cuda:{i}" for i in range(info["gpus"])] or ["cpu"]
    return info


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def driver_gpus() -> list[str]:
    """The NVIDIA GPUs the driver lists (Linux: /proc/driver/nvidia/gpus), read without
    starting any framework; whether the backend can use them is what `--probe` asks."""
    root = "/proc/driver/nvidia/gpus"
    try:
        return [f"gpu:{i}" for i, _ in enumerate(sorted(os.listdir(root)))]
    except OSError:
        return []


def describe_installed() -> dict:
    """`describe()` without importing Keras or its backend (importing TensorFlow alone took
    9-13 s): versions from the installed packages' metadata, the backend KERAS_BACKEND
    names, GPUs as the driver lists them. `probed` False: the backend was not asked."""
    backend = check_backend()
    module = BACKENDS[backend]
    gpus = driver_gpus()
    return {"keras": _version("keras"), "backend": backend,
            "backend_version": _version(module) if module else "",
            "devices": ["cpu"] + gpus, "gpus": len(gpus), "probed": False}


def fused_lstm_reason(layer_config: dict | None = None) -> str | None:
    """Why an LSTM with these settings would NOT use the fused cuDNN kernel (None: it would)."""
    cfg = {"activation": "tanh", "recurrent_activation": "sigmoid", "recurrent_dropout": 0.0,
           "unroll": False, "use_bias": True, **(layer_config or {})}
    if cfg["activation"] != "tanh" or cfg["recurrent_activation"] != "sigmoid":
        return "activation is not tanh/sigmoid"
    if cfg["recurrent_dropout"]:
        return "recurrent dropout is on"
    if cfg["unroll"]:
        return "the LSTM is unrolled"
    if not cfg["use_bias"]:
        return "the LSTM has no bias"
    return None


def summary_line(layer_config: dict | None = None, probe: bool = True) -> str:
    """The one line `wordlstm info` and `train` print (`probe` False: from what is installed,
    without importing the backend; `info --probe` asks it)."""
    info = describe() if probe else describe_installed()
    reason = fused_lstm_reason(layer_config)
    if not info["gpus"]:
        kernel = "LSTM on CPU (no GPU visible)"
    elif reason:
        kernel = f"LSTM NOT fused: {reason}; Keras falls back to a slow loop on the GPU"
    else:
        kernel = "LSTM uses the fused cuDNN kernel"
    if not probe:
        kernel += (" if the backend can use them" if info["gpus"] else "")
        kernel += "; --probe asks the backend itself (it imports it: seconds)"
    return (f"keras {info['keras']}, backend {info['backend']} {info['backend_version']}, "
            f"devices {', '.join(info['devices']) or 'none'}"
            + ("" if probe else " (installed; GPUs as the driver lists them)") + f": {kernel}")


def _training_devices(keras, backend: str) -> list[str]:
    """The devices data-parallel training can use: GPUs if any, else the CPU(s)."""
    if backend == "jax":
        return keras.distribution.list_devices()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return ["cpu"]


def distribution_scope(devices: str, log=lambda msg: None):
    """(A factory of contexts to build, compile and fit the model in, number of devices).

    `devices` is "all" or a count. JAX uses keras.distribution.DataParallel, TensorFlow
    tf.distribute.MirroredStrategy; each splits every batch across the devices and averages
    the gradients. PyTorch has no Keras data-parallel path, so it trains on one device.
    """
    keras = import_keras()
    backend = keras.backend.backend()
    available = _training_devices(keras, backend)
    if devices == "all":
        n = len(available)
    else:
        try:
            n = int(devices)
        except ValueError:
            raise UserError(f"--devices must be 'all' or a number, not {devices!r}") from None
        if n < 1 or n > len(available):
            raise UserError(f"--devices {n}: the {backend} backend sees {len(available)} device(s)")
    index, workers = worker()
    if workers > 1 and backend == "jax":
        if n != len(available):
            raise UserError(f"--devices {devices}: a job of {workers} workers trains on every "
                            f"device of every worker ({len(available)}); use --devices all")
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=available, auto_shard_dataset=False))  # worker_batches shards
        log(f"data parallel over {n} devices on {workers} workers (keras.distribution."
            f"DataParallel; this is worker {index}, with {n_local_devices()} of them)")
        return contextlib.nullcontext, n
    if workers > 1 and backend == "tensorflow":
        from .workers import strategy

        job = strategy()
        if n != len(available):
            raise UserError(f"--devices {devices}: a job of {workers} workers trains on every "
                            f"device of every worker; use --devices all")
        total = job.num_replicas_in_sync
        log(f"data parallel over {total} devices on {workers} workers (tf.distribute."
            f"MultiWorkerMirroredStrategy; this is worker {index}, with "
            f"{len(job.extended.worker_devices)} of them)")
        return job.scope, total
    if n <= 1:
        return contextlib.nullcontext, 1
    chosen = available[:n]
    if backend == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
        log(f"data parallel over {n} devices (keras.distribution.DataParallel)")
        return contextlib.nullcontext, n
    if backend == "tensorflow":
        import tensorflow as tf

        log(f"data parallel over {n} devices (tf.distribute.MirroredStrategy)")
        return tf.distribute.MirroredStrategy(devices=chosen).scope, n
    raise UserError(f"--devices {n}: data-parallel training needs the jax or tensorflow backend")


def n_local_devices() -> int:
    import jax

    return jax.local_device_count()


def worker_batches(dataset, log=lambda msg: None):
    """In a multi-machine JAX job, the rows of every global batch that this worker feeds
    (its devices' share; JAX assembles the global batch from every worker's rows). Every
    worker builds the same global batches, from the same seed, and keeps its own slice."""
    index, workers = worker()
    if workers == 1 or import_keras().backend.backend() != "jax":
        return dataset
    keras = import_keras()

    class Share(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.told = False

        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            batch = dataset[i]
            rows = len(batch[0])
            if rows % workers:
                raise UserError(f"a batch of {rows} sequences does not split over {workers} "
                                "workers; use a --batch-size that is a multiple of the devices")
            share = rows // workers
            if not self.told:
                self.told = True
                log(f"worker {index} of {workers}: rows {index * share}-{(index + 1) * share - 1}"
                    f" of each batch of {rows} sequences")
            return tuple(part[index * share:(index + 1) * share] for part in batch)

        def on_epoch_end(self):
            dataset.on_epoch_end()

    return Share()


def set_precision(precision: str, log=lambda msg: None) -> None:
    """float32, or mixed precision (float16 compute on GPUs, bfloat16 on CPUs)."""
    keras = import_keras()
    if precision == "float32":
        keras.mixed_precision.set_global_policy("float32")
        return
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be float32 or mixed, not {precision!r}")
    if describe()["gpus"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        log("note: mixed precision on a CPU uses bfloat16 and is usually slower than float32")
        keras.mixed_precision.set_global_policy("mixed_bfloat16")


def _job_failed(err: BaseException) -> None:
    """In a multi-machine job, training stopped here: this process leaves at once when it
    exits (the others cannot go on without it), and a failure that is not this worker's own
    is most often a lost worker (its connections closed): raise the line that names it."""
    from . import workers

    backend = import_keras().backend.backend()
    if worker()[1] == 1 or backend not in ("jax", "tensorflow"):
        return
    workers.failed("")
    if not isinstance(err, (UserError, KeyboardInterrupt)):
        lost = workers.lost_workers() if backend == "jax" else workers.lost_in(err)
        if lost:
            raise workers.lost_error(lost) from None


def end_distribution() -> None:
    keras = import_keras()
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)


@contextlib.contextmanager
def training_scope(precision: str = "float32", devices: str = "1", log=lambda msg: None):
    """Keras set up to train with `precision` on `devices`, and put back afterwards (float32,
    no distribution), whatever happens inside. Yields (a factory of contexts to build,
    compile and fit the model in, number of devices): see `distribution_scope`."""
    set_precision(precision, log)
    try:
        yield distribution_scope(devices, log)
    except BaseException as err:
        _job_failed(err)
        raise
    finally:
        end_distribution()
        set_precision("float32")
