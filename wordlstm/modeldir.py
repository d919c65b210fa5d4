"""The model directory: everything needed to continue text, self-contained and checked.

    model.keras    the Keras model (loaded with safe_mode=True; no pickles anywhere)
    vectors.bin    word2vec C binary vectors: the vocabulary and the decoding space
    config.json    format version, window, dims, vocab hash, segmenter and training settings
    history.json   per-epoch losses and metrics
    user_dict.txt  the jieba user dictionary used, if any (prompts are segmented the same way)
    lines.npy      line models only: 64-bit hashes of the training lines (for --novel-only)
    checkpoint/    the last finished epoch, for `train --resume`

Generation needs only numpy arrays, so `load_inference` reads them from a cache keyed by the
SHA-256 of model.keras and imports Keras only the first time a model is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UserError
from .model import ModelConfig
from .segment import SegmenterConfig
from .textio import atomic_output, atomic_path, write_json
from .vectors import Vectors, load_vectors

FORMAT = "wordlstm-model"
FORMAT_VERSION = 1
PACKAGE_MODEL = Path(__file__).resolve().parent / "default_model"


def default_model_dir() -> Path:
    """The shipped model: inside the package (regular install) or the repo's models/default."""
    repo = Path(__file__).resolve().parent.parent / "models" / "default"
    for p in (PACKAGE_MODEL, repo):
        if (p / "config.json").is_file():
            return p
    raise UserError("no default model is installed; pass --model DIR")


def vocab_hash(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def versions() -> dict:
    from .backend import import_keras

    keras = import_keras()

    return {"wordlstm": __version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "numpy": np.__version__}


def save_model_dir(out: Path, model, cfg: ModelConfig, vectors: Vectors,
                   segmenter: SegmenterConfig, training: dict, history: dict,
                   lines: dict | None = None, decoder: dict | None = None,
                   log_prior: np.ndarray | None = None) -> None:
    """Write a complete model dir; each file is written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    seg = segmenter.to_json()
    if segmenter.user_dict:
        shutil.copyfile(segmenter.user_dict, out / "user_dict.txt.part")
        os.replace(out / "user_dict.txt.part", out / "user_dict.txt")
        seg["user_dict"] = "user_dict.txt"
    from .vectors import save_vectors

    save_vectors(vectors, out / "vectors.bin")
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": cfg.to_json(),
        "vocab_sha256": vocab_hash(vectors.words),
        "segmenter": seg,
        "training": training,
        "versions": versions(),
    }
    if lines is not None:  # line-level model: hashes of its training lines, for --novel-only
        with atomic_output(out / "lines.npy", "wb") as f:
            np.save(f, lines["hashes"], allow_pickle=False)
        config["lines"] = {k: v for k, v in lines.items() if k != "hashes"}
    if log_prior is not None:  # word frequencies for the prior decoder (generate.PriorDecoder)
        with atomic_output(out / "prior.npy", "wb") as f:
            np.save(f, np.asarray(log_prior, np.float32), allow_pickle=False)
    config["decoder"] = decoder or {"kind": "cosine"}
    write_json(out / "history.json", history)
    write_json(out / "config.json", config)  # last: a dir with config.json is complete


def read_config(model_dir: Path) -> dict:
    """config.json, checked for format and version, with a clear error for old or foreign dirs."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: no such model directory")
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: not a wordlstm model directory (no config.json; "
                        "`wordlstm train -o DIR` makes one)")
    config = read_json(model_dir / "config.json")
    if config.get("format") != FORMAT:
        raise UserError(f"{model_dir}: not a wordlstm model directory")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{model_dir}: model format version {version}, this wordlstm reads "
                        f"version {FORMAT_VERSION}; retrain it with `wordlstm train`")
    return config


def segmenter_config(model_dir: Path, config: dict) -> SegmenterConfig:
    seg = dict(config["segmenter"])
    if seg.get("user_dict"):
        seg["user_dict"] = str(Path(model_dir) / seg["user_dict"])
    return SegmenterConfig(**seg)


@dataclass
class InferenceWeights:
    """Plain arrays for the numpy generator: embedding, LSTM layers (kernel, recurrent, bias), head."""

    embedding: np.ndarray
    lstm: list
    dense_kernel: np.ndarray
    dense_bias: np.ndarray


def _cache_dir() -> Path:
    base = os.environ.get("WORDLSTM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wordlstm")
    return Path(base)


def _weights_from_keras(model) -> InferenceWeights:
    lstm = [tuple(layer.get_weights()) for layer in model.layers if layer.name.startswith("lstm_")]
    emb = model.get_layer("word_embedding").get_weights()[0]
    kernel, bias = model.layers[-1].get_weights()  # to_vector or to_logits
    return InferenceWeights(emb, lstm, kernel, bias)


def load_keras_model(model_dir: Path, compile: bool = False):
    from .backend import import_keras

    keras = import_keras()

    path = Path(model_dir) / "model.keras"
    if not path.is_file():
        raise UserError(f"{model_dir}: model.keras is missing")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt or foreign file
        raise UserError(f"{path}: cannot load the model ({type(err).__name__}: {err})") from None


def load_inference(model_dir: Path, config: dict) -> InferenceWeights:
    """Weights as numpy arrays, from the cache when model.keras is unchanged, else via Keras."""
    path = Path(model_dir) / "model.keras"
    if not path.is_file():
        raise UserError(f"{model_dir}: model.keras is missing")
    cache = _cache_dir() / f"{file_hash(path)}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                n = int(z["layers"])
                return InferenceWeights(z["embedding"], [(z[f"k{i}"], z[f"r{i}"], z[f"b{i}"])
                                                         for i in range(n)],
                                        z["dense_kernel"], z["dense_bias"])
        except (OSError, KeyError, ValueError):
            pass  # a broken cache entry is rebuilt below
    weights = _weights_from_keras(load_keras_model(model_dir))
    try:
        arrays = {"embedding": weights.embedding, "dense_kernel": weights.dense_kernel,
                  "dense_bias": weights.dense_bias, "layers": np.array(len(weights.lstm))}
        for i, (k, r, b) in enumerate(weights.lstm):
            arrays.update({f"k{i}": k, f"r{i}": r, f"b{i}": b})
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache, "wb") as f:
            np.savez(f, **arrays)
    except OSError:
        pass  # no writable cache: still works, just slower next time
    return weights


def load_vectors_checked(model_dir: Path, config: dict) -> Vectors:
    """The model dir's vectors, verified to be the ones the model was trained with."""
    path = Path(model_dir) / "vectors.bin"
    if not path.is_file():
        raise UserError(f"{model_dir}: vectors.bin is missing")
    vectors = load_vectors(path)
    mcfg = config["model"]
    if vectors.dim != mcfg["dim"] or len(vectors) != mcfg["vocab_size"]:
        raise UserError(f"{model_dir}: vectors.bin is {len(vectors)}x{vectors.dim} but the model "
                        f"was trained on {mcfg['vocab_size']}x{mcfg['dim']}: they do not match")
    if vocab_hash(vectors.words) != config.get("vocab_sha256"):
        raise UserError(f"{model_dir}: vectors.bin has a different vocabulary than the model "
                        "was trained with: they do not match")
    return vectors


def load_log_prior(model_dir: Path, config: dict) -> np.ndarray | None:
    """prior.npy (log word frequencies), checked against the vocabulary; None if absent."""
    path = Path(model_dir) / "prior.npy"
    if not path.is_file():
        if (config.get("decoder") or {}).get("kind") == "prior":
            raise UserError(f"{model_dir}: prior.npy is missing (the model decodes with word "
                            "frequencies); copy the whole model directory")
        return None
    try:
        prior = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read it ({err})") from None
    if prior.shape != (config["model"]["vocab_size"],):
        raise UserError(f"{path}: {prior.shape[0] if prior.ndim else 0} entries for a "
                        f"{config['model']['vocab_size']}-word vocabulary: they do not match")
    return prior


def training_line_hashes(model_dir: Path) -> np.ndarray:
    path = Path(model_dir) / "lines.npy"
    if not path.is_file():
        raise UserError(f"{model_dir}: no lines.npy; --novel-only needs a model trained with --lines")
    return np.load(path, allow_pickle=False)


def check_weights(model_dir: Path, config: dict, weights: InferenceWeights) -> None:
    mcfg = config["model"]
    shape = (mcfg["vocab_size"] + 1, mcfg["dim"])
    outputs = mcfg["vocab_size"] if mcfg.get("head", "vector") == "softmax" else mcfg["dim"]
    if weights.embedding.shape != shape or weights.dense_kernel.shape[1] != outputs:
        raise UserError(f"{model_dir}: model.keras has embedding {weights.embedding.shape}, "
                        f"config.json says {shape}: the model and its vectors do not match")
