"""The one place that imports Keras, and reports which backend and devices it will use.

TensorFlow's C++ runtime writes log lines to the stderr file descriptor before any Python
setting can stop it; those lines are hidden here while Keras imports (errors still raise).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys


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


def import_keras():
    """`import keras`, quietly; the backend comes from KERAS_BACKEND as usual."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_hidden():
        import keras

        # Keras' saving code imports TensorFlow when it is installed, whatever the backend,
        # and TensorFlow logs natively on import and on its first device probe: do both here.
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow

            tensorflow.config.list_physical_devices()
    return keras
