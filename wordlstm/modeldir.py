"""The model directory: everything needed to continue text, self-contained and checked.

    model.keras    the network's core: LSTM layers and head (loaded with safe_mode=True; no
                   pickles anywhere)
    vectors.bin    word2vec C binary: the vocabulary and its vectors, as the model was trained
                   (fine-tuned, with train_embedding): its input and its decoding space
    prior.npy      log word frequencies of the training text (the prior decoder)
    config.json    format version, window, dims, vocab hash, segmenter and training settings
    history.json   per-epoch losses and metrics
    user_dict.txt  the jieba user dictionary used, if any (prompts are segmented the same way)
    lines.npy      line models only: 64-bit hashes of the training lines (for --novel-only)
    checkpoint/    the last finished epoch, for `train --resume`

Generation needs only numpy arrays, so `load_inference` reads them from a cache keyed by the
SHA-256 of model.keras and imports Keras only the first time a model is used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UserError
from .model import ModelConfig, core_weights
from .segment import SegmenterConfig
from .textio import atomic_output, write_json
from .vectors import Vectors

FORMAT = "wordlstm-model"
FORMAT_VERSION = 2  # 2: every-position models; the embedding lives in vectors.bin
PACKAGE_MODEL = Path(__file__).resolve().parent / "default_model"
PACKAGE_BASE = Path(__file__).resolve().parent / "base_model"
PACKAGE_DINOS = Path(__file__).resolve().parent / "dinos_model"
SHIPPED = {"default": (PACKAGE_MODEL, "default"), "base": (PACKAGE_BASE, "base"),
           "dinos": (PACKAGE_DINOS, "dinos")}


def default_model_dir() -> Path:
    """The shipped model: inside the package (regular install) or the repo's models/default."""
    repo = Path(__file__).resolve().parent.parent / "models" / "default"
    for p in (PACKAGE_MODEL, repo):
        if (p / "config.json").is_file():
            return p
    raise UserError("no default model is installed; pass --model DIR")


def resolve_model_dir(model_dir=None) -> Path:
    """A model dir argument: None is the shipped default; "default", "base" and "dinos" name
    the shipped models unless a directory of that name exists here."""
    if model_dir is None:
        return default_model_dir()
    p = Path(model_dir)
    if str(model_dir) in SHIPPED and not (p / "config.json").is_file():
        package, name = SHIPPED[str(model_dir)]
        repo = Path(__file__).resolve().parent.parent / "models" / name
        for c in (package, repo):
            if (c / "config.json").is_file():
                return c
        raise UserError(f"no {name} model is installed (looked in {package} and {repo})")
    return p


def vocab_hash(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(text: str, limit: int = 300) -> str:
    """`text` as one line of at most `limit` characters (messages quote hostile files)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def parse_json(data: bytes, path: Path):
    """JSON from a file's bytes, with one clear error for anything that is not JSON (also
    nesting too deep for the parser, or numbers too long to convert)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        # JSONDecodeError is a ValueError, as is an integer of more than 4,300 digits
        raise UserError(f"{path}: not valid JSON ({_one_line(err, 200)})") from None


def read_json(path: Path) -> dict:
    from .vectors import open_regular

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: missing")
    try:
        with open_regular(path) as f:
            data = f.read()
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror or err})") from None
    return parse_json(data, path)


def versions() -> dict:
    from .backend import import_keras

    keras = import_keras()

    return {"wordlstm": __version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "numpy": np.__version__}


FILES = ("model.keras", "vectors.bin", "prior.npy", "lines.npy", "user_dict.txt", "ngram.npz")


def save_model_dir(out: Path, core, cfg: ModelConfig, vectors: Vectors,
                   segmenter: SegmenterConfig, training: dict, history: dict,
                   line_info: dict | None = None, decoder: dict | None = None,
                   log_prior: np.ndarray | None = None, ngram=None,
                   sampling: dict | None = None) -> None:
    """Write a complete model dir (`core`: the Keras core model) as one step.

    Everything is written into a new sibling directory, with each file's SHA-256 in
    config.json, which then replaces `out` by renames: a reader sees the old model or the new
    one, never a mix of their files (a kill leaves the old one, or the new one complete).
    """
    from .vectors import save_vectors

    out = Path(out)
    new = out.parent / f".{out.name}.new-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    try:
        seg = segmenter.to_json()
        if segmenter.user_dict:
            shutil.copyfile(segmenter.user_dict, new / "user_dict.txt")
            seg["user_dict"] = "user_dict.txt"
        save_vectors(vectors, new / "vectors.bin")
        core.save(new / "model.keras")
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": cfg.to_json(),
            "vocab_sha256": vocab_hash(vectors.words),
            "segmenter": seg,
            "training": training,
            "versions": versions(),
        }
        if line_info is not None:  # a line model: hashes of its training lines (--novel-only)
            with open(new / "lines.npy", "wb") as f:
                np.save(f, line_info["hashes"], allow_pickle=False)
            config["lines"] = {k: v for k, v in line_info.items() if k != "hashes"}
        if log_prior is not None:  # word frequencies for the prior decoder (PriorDecoder)
            with open(new / "prior.npy", "wb") as f:
                np.save(f, np.asarray(log_prior, np.float32), allow_pickle=False)
        if ngram is not None:  # the word n-gram mixed with the network (ngram.WordNgram)
            ngram.save(new / "ngram.npz")
        config["decoder"] = decoder or {"kind": "cosine"}
        if sampling:  # the model's own generation defaults (Writer.sampling)
            config["sampling"] = sampling
        config["files"] = {name: file_hash(new / name) for name in FILES if (new / name).is_file()}
        write_json(new / "history.json", history)
        write_json(new / "config.json", config)
        from .card import write_card

        write_card(new, name=out.name)  # README.md: the model card (not a model file)
        replace_dir(new, out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(new: Path, out: Path) -> None:
    """Put directory `new` in the place of `out` (which may not exist): one atomic swap where
    the system has it, else two renames (a moment without `out`, never a mix)."""
    if out.exists() and _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # now the old model
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def check_output_dir(out: Path) -> None:
    """`train -o DIR` replaces DIR at the end: refuse a DIR that holds anything else than a
    wordlstm model (or its checkpoint), so nothing of the user's is ever deleted."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    names = {p.name for p in out.iterdir()}
    ours = set(FILES) | {"config.json", "history.json", "checkpoint", LOCK}
    card = out / "README.md"  # the model card train wrote (card.CARD), not a user's README
    if card.is_file() and card.stat().st_size < 1 << 20 and \
            "A wordlstm model:" in card.read_text(encoding="utf-8", errors="replace"):
        ours.add("README.md")
    if names - ours:
        raise UserError(f"{out}: holds other files than a wordlstm model "
                        f"({', '.join(sorted(names - ours)[:3])}); the model directory is "
                        "replaced when training ends, so choose a new or empty directory")


LOCK = ".lock"  # inside the model dir being written: where a kill leaves its checkpoint too


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold an exclusive lock on writing `out` (`train -o`, `fit-ngram`): a second run into
    the same directory is refused, and says which process holds it.

    The lock is `out/.lock`, so nothing is ever left beside the model dirs: the finished
    model replaces `out` without it, a run that fails before training leaves no `out` it
    made, and a killed run's lock (no longer held: the kernel drops it) lies only next to
    the checkpoint it left. Leftovers of killed runs beside `out` (the `.lock` files of
    earlier versions, half-written `.new-PID` dirs) are removed here."""
    import fcntl

    out = Path(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    while True:
        f = open(path, "a+")  # noqa: SIM115 -- held open across the yield below
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise UserError(f"{out}: another `wordlstm train` is writing it ({holder}); wait "
                            "for it or choose another directory") from None
        if _is_file_at(f, path):
            break
        f.close()  # its holder removed it as we opened it: lock the one at the path now
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        _remove_leftovers(out)
        try:
            yield
        finally:
            if _is_file_at(f, path):  # (the model that replaced `out` has none)
                path.unlink()  # while held: a run that opened it meanwhile sees it went
            if made:
                with contextlib.suppress(OSError):
                    out.rmdir()  # only if empty: a run that failed before writing anything
    finally:
        f.close()


def _is_file_at(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _remove_leftovers(out: Path) -> None:
    """What killed runs into `out` left beside it: an earlier version's unheld
    `.NAME.lock`, and the `.NAME.new-PID` / `.NAME.old-PID` dirs of processes gone."""
    import fcntl

    legacy = out.parent / f".{out.name}.lock"
    if legacy.is_file():
        with contextlib.suppress(OSError), open(legacy, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a run still holds it
            legacy.unlink()
    for kind in ("new", "old"):
        for p in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = p.name.rsplit("-", 1)[1]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: it exists
        return True
    return True


class _Vanished(UserError):
    """The directory, its config.json or a file it records is not there: perhaps replaced
    (replace_dir) while being read, so the read is tried again."""


READ_ATTEMPTS = 3  # reads of a model dir that keeps vanishing (being replaced) before giving up


@dataclass
class ModelFiles:
    """A model dir read once: its checked config.json and the bytes of its files (`data`),
    each checked against config.json's SHA-256 record (`digests`). Everything is parsed
    from these bytes, never reopened by name: a directory replaced meanwhile cannot mix
    models (time of check = time of use)."""

    model_dir: Path
    config: dict
    data: dict
    digests: dict


def read_model_files(model_dir: Path, wanted=FILES) -> ModelFiles:
    """config.json and the `wanted` files of a model dir, read through one descriptor of the
    directory (all opened before any is read, so a directory swapped by `replace_dir` is
    read whole from one model), and checked: every `wanted` file there must be in the
    record, and match its SHA-256; every recorded one must be there."""
    import time

    model_dir = Path(model_dir)
    for attempt in range(READ_ATTEMPTS):
        try:
            return _read_model_files(model_dir, tuple(wanted))
        except _Vanished:
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _open_in(dir_fd, model_dir: Path, name: str):
    """`name` in the directory (a binary file object), None if it is not there."""
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the load
    try:
        if dir_fd is None:
            fd = os.open(model_dir / name, flags)
        else:
            fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UserError(f"{model_dir / name}: cannot read it ({err.strerror or err})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{model_dir / name}: not a regular file")
    return os.fdopen(fd, "rb")


def _read_model_files(model_dir: Path, wanted: tuple) -> ModelFiles:
    dir_fd = None
    if os.open in os.supports_dir_fd:
        try:
            dir_fd = os.open(model_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            raise _Vanished(f"{model_dir}: no such model directory") from None
        except NotADirectoryError:
            raise UserError(f"{model_dir}: no such model directory (it is a file)") from None
        except OSError as err:
            raise UserError(f"{model_dir}: cannot read it ({err.strerror or err})") from None
    elif not model_dir.is_dir():
        raise _Vanished(f"{model_dir}: no such model directory")
    handles = {}
    try:
        for name in ("config.json", *wanted):  # all opened first: one directory's files
            f = _open_in(dir_fd, model_dir, name)
            if f is not None:
                handles[name] = f
        if "config.json" not in handles:
            raise _Vanished(f"{model_dir}: not a wordlstm model directory (no config.json; "
                            "`wordlstm train -o DIR` makes one)")
        try:
            config = parse_config(handles["config.json"].read(), model_dir)
            record = config["files"]
            for name in wanted:
                if name in handles and name not in record:
                    raise UserError(f"{model_dir}: {name} is not in config.json's record of the "
                                    "model's files: it does not belong to this model; copy "
                                    "the whole model directory again")
                if name in record and name not in handles:
                    raise _Vanished(f"{model_dir}: {name} is missing; copy the whole model "
                                    "directory")
            data, digests = {}, {}
            for name in wanted:
                if name not in handles:
                    continue
                data[name] = handles[name].read()
                digests[name] = hashlib.sha256(data[name]).hexdigest()
                if digests[name] != record[name]:
                    raise UserError(f"{model_dir}: {name} is not the file this model was saved "
                                    "with (its SHA-256 differs from config.json's): the files "
                                    "do not belong together; copy the whole model directory "
                                    "again")
        except OSError as err:
            raise UserError(f"{model_dir}: cannot read it ({err.strerror or err})") from None
        return ModelFiles(model_dir, config, data, digests)
    finally:
        for f in handles.values():
            f.close()
        if dir_fd is not None:
            os.close(dir_fd)


def read_config(model_dir: Path) -> dict:
    """config.json, checked for format, version and every field's type and range (before
    anything is allocated from it), with a clear error for old, foreign or damaged dirs.
    (`load` reads it together with the files it describes: `read_model_files`.)"""
    return read_model_files(model_dir, ()).config


def parse_config(data: bytes, model_dir: Path) -> dict:
    """config.json's bytes, parsed and checked (see read_config)."""
    model_dir = Path(model_dir)
    config = parse_json(data, model_dir / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{model_dir}: not a wordlstm model directory")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{model_dir}: model format version {_one_line(repr(version), 40)}, "
                        f"this wordlstm reads version {FORMAT_VERSION}; retrain it with "
                        "`wordlstm train`")
    try:
        validate_config(config)
    except KeyError as err:
        raise UserError(f"{model_dir / 'config.json'}: damaged or edited by hand (a setting "
                        f"is missing: {_one_line(repr(err.args[0]), 80)})") from None
    except (UserError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            RecursionError) as err:
        raise UserError(f"{model_dir / 'config.json'}: damaged or edited by hand "
                        f"({_one_line(err)})") from None
    return config


def _int(value, lo: int, hi: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
    return value


def _float(value, lo: float, hi: float, name: str) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not lo < value <= hi:
        raise UserError(f"{name} must be a number in ({lo}, {hi}], not {value!r}")
    return float(value)


def _bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{name} must be true or false, not {value!r}")
    return value


def validate_config(config: dict) -> None:
    """Every field a reader relies on, checked against its type and limits."""
    from .segment import ENGINES, UNITS
    from .split import HoldOut

    m = config["model"]
    if not isinstance(m, dict):
        raise UserError("model must be an object")
    ModelConfig.from_json(m)  # types and ranges of the architecture
    _int(m["dim"], 1, 4096, "model.dim")
    _int(m["vocab_size"], 1, 5_000_000, "model.vocab_size")
    _int(m["units"], 1, 65536, "model.units")
    _int(m["layers"], 1, 64, "model.layers")
    _int(m["window"], 1, 100_000, "model.window")
    seg = config["segmenter"]
    if not isinstance(seg, dict) or seg.get("engine") not in ENGINES \
            or seg.get("unit") not in UNITS:
        raise UserError("segmenter must name an engine and a unit")
    from dataclasses import fields

    unknown = sorted(str(k) for k in set(seg) - {f.name for f in fields(SegmenterConfig)})
    if unknown:
        raise UserError(f"segmenter has unknown settings ({_one_line(', '.join(unknown), 80)})")
    for key in ("hmm", "to_simplified"):
        _bool(seg[key], f"segmenter.{key}")
    if "normalize_punct" in seg:
        _bool(seg["normalize_punct"], "segmenter.normalize_punct")
    if seg.get("user_dict") not in (None, "user_dict.txt"):
        raise UserError("segmenter.user_dict must be the model's own user_dict.txt")
    dec = config["decoder"]
    if not isinstance(dec, dict) or dec.get("kind") not in ("prior", "cosine", "softmax"):
        raise UserError("decoder.kind must be prior, cosine or softmax")
    for key in ("tau", "cosine_tau", "prior_scale"):
        if key in dec:
            _float(dec[key], 0.0, 100.0, f"decoder.{key}")
    if dec["kind"] == "prior" and "tau" not in dec:
        raise UserError("decoder.tau is missing")
    if "dynamic_lr" in dec and dec["dynamic_lr"] != 0:
        _float(dec["dynamic_lr"], 0.0, 1.0, "decoder.dynamic_lr")
    if dec.get("cache") is not None:
        from .cache import CacheConfig

        c = dec["cache"]
        if not isinstance(c, dict):
            raise UserError("decoder.cache must be an object")
        _int(c["size"], 1, 1 << 16, "decoder.cache.size")
        CacheConfig(c["size"], _float(c["theta"], -1e-9, 1e4, "decoder.cache.theta"),
                    _float(c["weight"], -1e-9, 0.999, "decoder.cache.weight"))
    training = config["training"]
    if not isinstance(training, dict):
        raise UserError("training must be an object")
    holdout = training.get("holdout", {})
    if not isinstance(holdout, dict):
        raise UserError("training.holdout must be an object")
    HoldOut(**{k: holdout[k] for k in ("fraction", "lines", "seed") if k in holdout})
    line_info = config.get("lines")
    if line_info is not None:
        _int(line_info["clause_length"], 0, 1000, "lines.clause_length")
        if not all(isinstance(p, str) for p in line_info.get("clause_ends", [])):
            raise UserError("lines.clause_ends must be strings")
        for form in line_info.get("forms", []):
            _int(form[0], 1, 1000, "lines.forms")
            _int(form[1], 1, 1000, "lines.forms")
    if dec.get("ngram") is not None:
        from .ngram import NgramConfig

        ng = dec["ngram"]
        if not isinstance(ng, dict):
            raise UserError("decoder.ngram must be an object")
        NgramConfig(_int(ng["order"], 1, 10, "decoder.ngram.order"),
                    _float(ng["weight"], -1e-9, 1.0, "decoder.ngram.weight"))
    files = config.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)
            and k in FILES for k, v in files.items()):
        raise UserError("files must map the model's files to SHA-256 digests (a record every "
                        "model dir has since format version 2; copy the whole model directory "
                        "again, or retrain)")
    needed = ["model.keras", "vectors.bin"]
    needed += ["prior.npy"] if dec["kind"] == "prior" else []
    needed += ["user_dict.txt"] if seg.get("user_dict") else []
    needed += ["ngram.npz"] if dec.get("ngram") else []
    needed += ["lines.npy"] if line_info is not None else []
    unlisted = [n for n in needed if n not in files]
    if unlisted:
        raise UserError(f"files does not record {', '.join(unlisted)} (every file the model "
                        "uses has its SHA-256 there); copy the whole model directory again")


def segmenter_config(model_dir: Path, config: dict) -> SegmenterConfig:
    seg = dict(config["segmenter"])
    if seg.get("user_dict"):
        seg["user_dict"] = str(Path(model_dir) / seg["user_dict"])
    return SegmenterConfig(**seg)


@dataclass
class InferenceWeights:
    """Plain arrays for the numpy generator: embedding (vocabulary rows, then a zero UNK row),
    LSTM layers (kernel, recurrent, bias), head (kernel, bias)."""

    embedding: np.ndarray
    lstm: list
    dense_kernel: np.ndarray
    dense_bias: np.ndarray


def _cache_dir() -> Path:
    base = os.environ.get("WORDLSTM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wordlstm")
    return Path(base)


def _read_model_file(model_dir: Path, name: str) -> bytes:
    """One file of a model dir, read once (no check: see read_model_files)."""
    from .vectors import open_regular

    path = Path(model_dir) / name
    if not path.exists():
        raise UserError(f"{model_dir}: {name} is missing")
    try:
        with open_regular(path) as f:
            return f.read()
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror or err})") from None


def _check_digest(model_dir: Path, name: str, data: bytes, expected: str | None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise UserError(f"{model_dir}: {name} is not the file this model was saved with (its "
                        "SHA-256 differs from config.json's): the files do not belong "
                        "together; copy the whole model directory again")
    return digest


def load_keras_model(model_dir: Path, compile: bool = False):
    """The Keras core of a model dir (for training and benches; `load` needs no Keras when
    its weights are cached)."""
    return _keras_model_from(_read_model_file(model_dir, "model.keras"),
                             Path(model_dir) / "model.keras", compile)


def _keras_model_from(data: bytes, path: Path, compile: bool = False):
    """A Keras model from model.keras's bytes (the bytes that were checked), through a private
    temporary copy: Keras reads a path."""
    import tempfile

    from .backend import import_keras

    keras = import_keras()
    tmp = tempfile.mkdtemp(prefix="wordlstm-model-")
    try:
        copy = Path(tmp) / "model.keras"
        with open(copy, "wb") as f:
            f.write(data)
        return keras.saving.load_model(copy, compile=compile, safe_mode=True)
    except OSError as err:
        raise UserError(f"{path}: cannot load the model ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 -- Keras raises many types for a bad file
        raise UserError(f"{path}: cannot load the model ({type(err).__name__}: "
                        f"{_one_line(err)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_core_weights(model_dir: Path, digest: str | None = None):
    """The core's weights as numpy arrays, from a cache keyed by model.keras's SHA-256 (no
    Keras import), else via Keras. model.keras is read once: the bytes hashed are the bytes
    loaded (`digest`, if given, must be theirs)."""
    data = _read_model_file(model_dir, "model.keras")
    digest = _check_digest(Path(model_dir), "model.keras", data, digest)
    return _core_weights(Path(model_dir) / "model.keras", data, digest)


def _core_weights(path: Path, data: bytes, digest: str):
    cache = _cache_dir() / f"{digest}.v2.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                n = int(z["layers"])
                return ([(z[f"k{i}"], z[f"r{i}"], z[f"b{i}"]) for i in range(n)],
                        z["dense_kernel"], z["dense_bias"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a broken cache entry is rebuilt below
    lstm, kernel, bias = core_weights(_keras_model_from(data, path))
    try:
        arrays = {"dense_kernel": kernel, "dense_bias": bias, "layers": np.array(len(lstm))}
        for i, (k, r, b) in enumerate(lstm):
            arrays.update({f"k{i}": k, f"r{i}": r, f"b{i}": b})
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache, "wb") as f:
            np.savez(f, **arrays)
    except (OSError, UserError):
        pass  # no writable cache: still works, just slower next time
    return lstm, kernel, bias


def load_vectors_of(model_dir=None) -> Vectors:
    """Only the vectors of a model dir (default: the shipped model), checked against its
    config.json (for `neighbors`: no network, no Keras)."""
    files = read_model_files(resolve_model_dir(model_dir), ("vectors.bin",))
    return _checked_vectors(files.model_dir, files.config, files.data["vectors.bin"])


def load_vectors_checked(model_dir: Path, config: dict) -> Vectors:
    """The model dir's vectors, verified to be the ones the model was trained with (read
    once: the bytes hashed are the bytes parsed)."""
    data = _read_model_file(model_dir, "vectors.bin")
    _check_digest(Path(model_dir), "vectors.bin", data, (config.get("files") or {}).get(
        "vectors.bin"))
    return _checked_vectors(Path(model_dir), config, data)


def _checked_vectors(model_dir: Path, config: dict, data: bytes) -> Vectors:
    from .vectors import parse_vectors

    vectors = parse_vectors(data, Path(model_dir) / "vectors.bin")
    mcfg = config["model"]
    if vectors.dim != mcfg["dim"] or len(vectors) != mcfg["vocab_size"]:
        raise UserError(f"{model_dir}: vectors.bin is {len(vectors)}x{vectors.dim} but the model "
                        f"was trained on {mcfg['vocab_size']}x{mcfg['dim']}: they do not match")
    if vocab_hash(vectors.words) != config.get("vocab_sha256"):
        raise UserError(f"{model_dir}: vectors.bin has a different vocabulary than the model "
                        "was trained with: they do not match")
    return vectors


def _npy(data: bytes, path: Path) -> np.ndarray:
    """An array from a .npy file's bytes (no pickles)."""
    import io

    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path}: cannot read it ({_one_line(err)})") from None


def load_log_prior(model_dir: Path, config: dict, data: bytes | None) -> np.ndarray | None:
    """prior.npy's bytes (log word frequencies), checked against the vocabulary; None if
    there is none."""
    path = Path(model_dir) / "prior.npy"
    if data is None:
        if (config.get("decoder") or {}).get("kind") == "prior":
            raise UserError(f"{model_dir}: prior.npy is missing (the model decodes with word "
                            "frequencies); copy the whole model directory")
        return None
    prior = _npy(data, path)
    if prior.shape != (config["model"]["vocab_size"],) or prior.dtype.kind != "f":
        raise UserError(f"{path}: {prior.shape[0] if prior.ndim else 0} entries for a "
                        f"{config['model']['vocab_size']}-word vocabulary: they do not match")
    return prior


def _line_hashes(model_dir: Path, data: bytes | None) -> np.ndarray:
    if data is None:
        raise UserError(f"{model_dir}: no lines.npy; --novel-only needs a model trained with "
                        "--lines")
    hashes = _npy(data, Path(model_dir) / "lines.npy")
    if hashes.ndim != 1 or hashes.dtype.kind not in "iu":
        raise UserError(f"{model_dir}/lines.npy: not a list of line hashes; copy the whole "
                        "model directory")
    return hashes


def training_line_hashes(model_dir: Path) -> np.ndarray:
    """lines.npy, checked against the dir's config.json (a LoadedModel has its own:
    `LoadedModel.line_hashes`, the file checked when it was loaded)."""
    files = read_model_files(model_dir, ("lines.npy",))
    return _line_hashes(files.model_dir, files.data.get("lines.npy"))


def _private_copy(data: bytes, digest: str, name: str) -> str:
    """A file holding `data` (SHA-256 `digest`) for a library that reads a path (jieba's user
    dictionary): in the cache, by content, so a model dir replaced after `load` does not
    change what is read."""
    import atexit
    import tempfile

    path = _cache_dir() / "files" / digest / name
    try:
        if not (path.is_file() and file_hash(path) == digest):
            with atomic_output(path, "wb") as f:
                f.write(data)
        return str(path)
    except (OSError, UserError):  # no writable cache: a temporary file, for this process
        tmp = tempfile.mkdtemp(prefix="wordlstm-")
        atexit.register(shutil.rmtree, tmp, True)
        with open(Path(tmp) / name, "wb") as f:
            f.write(data)
        return str(Path(tmp) / name)


def check_weights(model_dir: Path, config: dict, weights: InferenceWeights) -> None:
    mcfg = config["model"]
    outputs = mcfg["vocab_size"] if mcfg.get("head", "vector") == "softmax" else mcfg["dim"]
    first_in = weights.lstm[0][0].shape[0] if weights.lstm else -1
    if first_in != mcfg["dim"] or weights.dense_kernel.shape[1] != outputs \
            or len(weights.lstm) != mcfg.get("layers", len(weights.lstm)):
        raise UserError(f"{model_dir}: model.keras reads {first_in}-d vectors and writes "
                        f"{weights.dense_kernel.shape[1]} outputs, config.json says "
                        f"{mcfg['dim']} and {outputs}: the model and its vectors do not match")


@dataclass
class LoadedModel:
    """A model directory read once and checked (`load`): what generation, evaluation and the
    benches use. The model as trained is apart from what it writes, as gensim keeps Word2Vec
    apart from KeyedVectors: `step` is the network as numpy, `decoder` turns its outputs into
    log-probabilities (the model's own decoding, or `decode`: "prior" or "cosine").
    Files used later (the n-gram, the training lines, the user dictionary) are kept as the
    bytes `load` checked (`files`), so they are this model's even if the directory is
    replaced meanwhile."""

    model_dir: Path
    config: dict
    vectors: Vectors
    weights: InferenceWeights
    log_prior: np.ndarray | None
    decode: str | None = None
    files: dict = field(default_factory=dict, repr=False)  # name -> checked bytes

    @property
    def window(self) -> int:
        return int(self.config["model"]["window"])

    @functools.cached_property
    def step(self):
        from .stepmodel import StepModel

        return StepModel(self.weights)

    @functools.cached_property
    def decoder(self):
        from .decoding import make_decoder

        return make_decoder(self.config["decoder"], self.vectors.matrix, self.log_prior,
                            head=self.config["model"].get("head", "vector"), kind=self.decode)

    @functools.cached_property
    def cache(self):
        """The continuous cache fitted for this model (cache.CacheConfig), or None."""
        from .cache import CacheConfig

        return CacheConfig.from_json((self.config.get("decoder") or {}).get("cache"))

    def _file(self, name: str) -> bytes | None:
        """A file of this model as `load` checked it (or, for a LoadedModel made otherwise,
        read now and checked against this model's record); None if the model has none."""
        if name in self.files:
            return self.files[name]
        expected = (self.config.get("files") or {}).get(name)
        if expected is None:
            return None
        data = _read_model_file(self.model_dir, name)
        _check_digest(self.model_dir, name, data, expected)
        return data

    @functools.cached_property
    def ngram(self):
        """(ngram.NgramConfig, ngram.WordNgram) fitted for this model, or None: from the
        ngram.npz bytes `load` checked."""
        from .ngram import NgramConfig, WordNgram

        cfg = NgramConfig.from_json((self.config.get("decoder") or {}).get("ngram"))
        if cfg is None:
            return None
        data = self._file("ngram.npz")
        if data is None:
            raise UserError(f"{self.model_dir}: ngram.npz is missing; copy the whole model "
                            "directory")
        return cfg, WordNgram.load(self.model_dir / "ngram.npz", len(self.vectors), data=data)

    def line_hashes(self) -> np.ndarray:
        """The training lines' hashes (lines.npy as `load` checked it), for --novel-only."""
        return _line_hashes(self.model_dir, self._file("lines.npy"))

    def segmenter_config(self) -> SegmenterConfig:
        """How prompts are segmented; the user dictionary is the one `load` checked (a
        private copy of its bytes: the segmenter reads a path)."""
        seg = dict(self.config["segmenter"])
        if seg.get("user_dict"):
            data = self._file("user_dict.txt")
            if data is None:
                raise UserError(f"{self.model_dir}: user_dict.txt is missing; copy the whole "
                                "model directory")
            seg["user_dict"] = _private_copy(data, hashlib.sha256(data).hexdigest(),
                                             "user_dict.txt")
        return SegmenterConfig(**seg)


LAZY = ("ngram.npz", "lines.npy", "user_dict.txt")  # read at load, used later


def load(model_dir=None, decode: str | None = None) -> LoadedModel:
    """Read and check a model dir (default: the shipped model); `decode` overrides its
    decoding ("prior" or "cosine"), to compare them. Every file is read once, through one
    descriptor of the directory, and parsed from the bytes whose SHA-256 was checked."""
    files = read_model_files(resolve_model_dir(model_dir))
    model_dir, config, data = files.model_dir, files.config, files.data
    vectors = _checked_vectors(model_dir, config, data.pop("vectors.bin"))
    lstm, kernel, bias = _core_weights(model_dir / "model.keras", data.pop("model.keras"),
                                       files.digests["model.keras"])
    embedding = np.vstack([vectors.matrix, np.zeros((1, vectors.dim), np.float32)])
    weights = InferenceWeights(embedding, lstm, kernel, bias)
    check_weights(model_dir, config, weights)
    prior = load_log_prior(model_dir, config, data.pop("prior.npy", None))
    return LoadedModel(model_dir, config, vectors, weights, prior, decode,
                       files={name: data[name] for name in LAZY if name in data})
