"""wordlstm: learn the style of a Chinese novel and continue text in it.

The package is import-light on purpose: nothing here imports Keras or TensorFlow, and the
names below load their modules only when first used, so `wordlstm segment` and `--help`
start in well under a second. From Python (README, "Use it from Python"):

    from wordlstm import Writer, Request, SamplingConfig
    writer = Writer.load()  # the shipped 红楼梦 model; Writer.load("models/mine"), "base"
    writer.write(Request(prompt="宝玉笑道", length=40, seed=7), SamplingConfig()).texts[0]
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it: the library's public names, loaded on first use.
_EXPORTS = {
    "Writer": "writer",  # a loaded model and everything that turns prompts into text
    "Request": "writer",  # what to write: prompt, length, seed, samples, lines, acrostic, ...
    "Generation": "writer",  # what was written: texts, word counts, prompt words spelled
    "SamplingConfig": "sampling",  # how each next word is chosen (temperature, min-p, DRY, ...)
    "load_model": "modeldir",  # modeldir.load: a model dir read once and checked
    "evaluate_file": "evaluate",  # held-out bits/char of a segmented file
    "segment_to_file": "segment",  # a downloaded novel -> one paragraph a line, words spaced
    "SegmenterConfig": "segment",
    "UserError": "errors",  # every problem the user can fix; str() is the one-line message
}
__all__ = [
    "Generation",
    "Request",
    "SamplingConfig",
    "SegmenterConfig",
    "UserError",
    "Writer",
    "__version__",
    "evaluate_file",
    "load_model",
    "segment_to_file",
]
assert set(__all__) == {"__version__", *_EXPORTS}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'wordlstm' has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
    value = getattr(module, "load" if name == "load_model" else name)
    globals()[name] = value
    return value
