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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import __version__
from .cache import CacheConfig
from .errors import UserError
from .model import ModelConfig, core_weights
from .ngram import NgramConfig
from .numeric import with_unknown_row
from .segment import SegmenterConfig
from .split import HoldOut
from .textio import atomic_output, write_json
from .vectors import Vectors

FORMAT = "wordlstm-model"
FORMAT_VERSION = 2  # 2: every-position models; the embedding lives in vectors.bin
PACKAGE_MODEL = Path(__file__).resolve().parent / "default_model"
PACKAGE_BASE = Path(__file__).resolve().parent / "base_model"
PACKAGE_DINOS = Path(__file__).resolve().parent / "dinos_model"
PACKAGE_TANG = Path(__file__).resolve().parent / "tang_model"
SHIPPED = {"default": (PACKAGE_MODEL, "default"), "base": (PACKAGE_BASE, "base"),
           "dinos": (PACKAGE_DINOS, "dinos"), "tang": (PACKAGE_TANG, "tang")}


def default_model_dir() -> Path:
    """The shipped model: inside the package (regular install) or the repo's models/default."""
    repo = Path(__file__).resolve().parent.parent / "models" / "default"
    for p in (PACKAGE_MODEL, repo):
        if (p / "config.json").is_file():
            return p
    raise UserError("no default model is installed; pass --model DIR")


def resolve_model_dir(model_dir=None) -> Path:
    """A model dir argument: None is the shipped default; "default", "base", "dinos" and
    "tang" name the shipped models unless a directory of that name exists here."""
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


def _one_line(text: object, limit: int = 300) -> str:
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
    config: ModelDirConfig
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
            record = config.files
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


def read_config(model_dir: Path) -> ModelDirConfig:
    """config.json, checked for format, version and every field's type and range (before
    anything is allocated from it), with a clear error for old, foreign or damaged dirs.
    (`load` reads it together with the files it describes: `read_model_files`.)"""
    return read_model_files(model_dir, ()).config


def parse_config(data: bytes, model_dir: Path) -> ModelDirConfig:
    """config.json's bytes, parsed once into typed settings (see ModelDirConfig)."""
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
        return ModelDirConfig.from_json(config)
    except KeyError as err:
        raise UserError(f"{model_dir / 'config.json'}: damaged or edited by hand (a setting "
                        f"is missing: {_one_line(repr(err.args[0]), 80)})") from None
    except (UserError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            RecursionError) as err:
        raise UserError(f"{model_dir / 'config.json'}: damaged or edited by hand "
                        f"({_one_line(err)})") from None


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


def _str(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UserError(f"{name} must be text, not {value!r}")
    return value


def _object(value, name: str, known=None) -> dict:
    """A JSON object; with `known`, one whose keys are all known (see ModelDirConfig)."""
    if not isinstance(value, dict):
        raise UserError(f"{name} must be an object")
    unknown = sorted(str(k) for k in set(value) - set(known or value))
    if unknown:
        raise UserError(f"{name} has unknown settings ({_one_line(', '.join(unknown), 80)})")
    return value


def _section(name: str, make, *args):
    """`make(*args)` with its error naming the section ("model.units must be ...")."""
    try:
        return make(*args)
    except UserError as err:
        raise UserError(f"{name}.{err}") from None


_DECODER_KINDS = ("prior", "cosine", "softmax")


@dataclass(frozen=True)
class DecoderConfig:
    """config.json "decoder": how the network's outputs become probabilities and the
    test-time parts mixed in, all fitted when training ended (decoding.make_decoder reads
    `to_json()`). None: not fitted (written without it)."""

    kind: str = "cosine"  # "prior", "cosine" or "softmax"
    tau: float | None = None  # cosine temperature of the prior decoding
    prior_scale: float | None = None  # its weight of the log word frequency
    cosine_tau: float | None = None  # the temperature of the plain cosine decoding
    fitted_on: int | None = None  # training positions tau was fitted on
    cache: CacheConfig | None = None  # the continuous cache (cache.NeuralCache)
    dynamic_lr: float | None = None  # dynamic evaluation's learning rate (None, 0: off)
    ngram: NgramConfig | None = None  # the word n-gram mixed in (ngram.WordNgram)

    @property
    def dynamic_rate(self) -> float:
        """Dynamic evaluation's learning rate, 0 where none was fitted."""
        return self.dynamic_lr or 0.0

    def to_json(self) -> dict:
        data: dict[str, Any] = {"kind": self.kind}
        for f in ("tau", "prior_scale", "cosine_tau", "fitted_on", "dynamic_lr"):
            if getattr(self, f) is not None:
                data[f] = getattr(self, f)
        if self.cache is not None:
            data["cache"] = self.cache.to_json()
        if self.ngram is not None:
            data["ngram"] = self.ngram.to_json()
        return data

    @classmethod
    def from_json(cls, dec) -> DecoderConfig:
        known = {f.name for f in fields(cls)}
        dec = _object(dec, "decoder", known)
        if dec.get("kind") not in _DECODER_KINDS:
            raise UserError("decoder.kind must be prior, cosine or softmax")
        taus = {k: _float(dec[k], 0.0, 100.0, f"decoder.{k}")
                for k in ("tau", "cosine_tau", "prior_scale") if k in dec}
        if dec["kind"] == "prior" and "tau" not in dec:
            raise UserError("decoder.tau is missing")
        lr = dec.get("dynamic_lr")
        if lr is not None and lr != 0:
            lr = _float(lr, 0.0, 1.0, "decoder.dynamic_lr")
        fitted = dec.get("fitted_on")
        return cls(dec["kind"], fitted_on=None if fitted is None else _int(
            fitted, 0, 1 << 40, "decoder.fitted_on"), cache=_cache(dec.get("cache")),
            dynamic_lr=lr, ngram=_ngram(dec.get("ngram")), **taus)


def _cache(c) -> CacheConfig | None:
    if c is None:
        return None
    c = _object(c, "decoder.cache", ("size", "theta", "weight", "gap"))
    size = _int(c["size"], 1, 1 << 16, "decoder.cache.size")
    # written before the gap existed: none
    return CacheConfig(size, _float(c["theta"], -1e-9, 1e4, "decoder.cache.theta"),
                       _float(c["weight"], -1e-9, 0.999, "decoder.cache.weight"),
                       _int(c.get("gap", 0), 0, size - 1, "decoder.cache.gap"))


def _ngram(ng) -> NgramConfig | None:
    if ng is None:
        return None
    ng = _object(ng, "decoder.ngram", ("order", "weight"))
    return NgramConfig(_int(ng["order"], 1, 10, "decoder.ngram.order"),
                       _float(ng["weight"], -1e-9, 1.0, "decoder.ngram.weight"))


class VerseForm(NamedTuple):
    """A regular verse form of a line corpus: `clauses` clauses of `length` characters, in
    `share` of its lines."""

    length: int
    clauses: int
    share: float


@dataclass(frozen=True)
class LineInfo:
    """config.json "lines" (line models only: names, poems): what train.line_stats found."""

    clause_length: int = 0  # the commonest clause length (acrostics' default line length)
    clause_ends: tuple[str, ...] = ()  # the commonest clause-ending marks
    count: int | None = None  # training lines
    forms: tuple[VerseForm, ...] = ()  # the regular forms, the commonest first

    def to_json(self) -> dict:
        data = {"clause_length": self.clause_length, "clause_ends": list(self.clause_ends)}
        if self.count is not None:
            data["count"] = self.count
        return data | {"forms": [list(f) for f in self.forms]}

    @classmethod
    def from_json(cls, info) -> LineInfo:
        info = _object(info, "lines", {f.name for f in fields(cls)})
        ends = info.get("clause_ends", [])
        if not isinstance(ends, list) or not all(isinstance(p, str) for p in ends):
            raise UserError("lines.clause_ends must be strings")
        forms = info.get("forms", [])
        if not isinstance(forms, list) or not all(isinstance(f, list) and len(f) >= 2
                                                  for f in forms):
            raise UserError("lines.forms must be [length, clauses, share] lists")
        count = info.get("count")
        return cls(_int(info["clause_length"], 0, 1000, "lines.clause_length"), tuple(ends),
                   None if count is None else _int(count, 0, 1 << 40, "lines.count"),
                   tuple(VerseForm(_int(f[0], 1, 1000, "lines.forms"),
                                   _int(f[1], 1, 1000, "lines.forms"),
                                   float(f[2]) if len(f) > 2 else 1.0) for f in forms))


@dataclass(frozen=True)
class TrainingRecord:
    """config.json "training": how the model was trained (train.TrainConfig's settings) and
    what training measured. A record, not a setting: the keys read anywhere are typed here;
    every other key is kept as written (`extra`) and otherwise ignored. None: not recorded."""

    holdout: HoldOut = HoldOut()  # which lines were held out: every scorer splits the same
    seed: int = 1
    lines: bool = False  # a line model (names, poems)
    carry: bool | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None
    weights_dtype: str | None = None
    corpus: str | None = None  # the segmented file's name
    corpus_file: dict | None = None  # {"file", "bytes", "sha256"} of it (card.corpus_record)
    tokens: int | None = None
    train_tokens: int | None = None
    val_tokens: int | None = None
    unknown_tokens: int | None = None
    best_epoch: int | None = None  # the epoch that ships
    init_from: str | None = None  # the model dir fine-tuned from
    held_out_bits_per_char: float | None = None  # of the saved network alone
    char5_bits_per_char: float | None = None  # a character 5-gram's, on the same split
    command: str | None = None  # as typed
    extra: dict = field(default_factory=dict, compare=False)  # the keys not typed here

    @property
    def train_targets(self) -> int | None:
        """Training targets the model's prior.npy counted (its first token is no target)."""
        return self.train_tokens - 1 if self.train_tokens else None

    def settings(self) -> dict:
        """The optimisation settings recorded (for the card), in their order."""
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "learning_rate", "carry",
                                              "patience", "seed") if getattr(self, k) is not None}

    def to_json(self) -> dict:
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                data[f.name] = value.to_json() if f.name == "holdout" else value
        return data | self.extra

    @classmethod
    def from_json(cls, record) -> TrainingRecord:
        record = _object(record, "training")
        holdout = _object(record.get("holdout", {}), "training.holdout")
        typed: dict[str, Any] = {"holdout": HoldOut(**{k: holdout[k] for k in ("fraction", "lines", "seed")
                                       if k in holdout})}
        kinds = {"seed": int, "lines": bool, "carry": bool, "epochs": int, "batch_size": int,
                 "learning_rate": float, "patience": int, "weights_dtype": str, "corpus": str,
                 "corpus_file": dict, "tokens": int, "train_tokens": int, "val_tokens": int,
                 "unknown_tokens": int, "best_epoch": int, "init_from": str,
                 "held_out_bits_per_char": float, "char5_bits_per_char": float, "command": str}
        for key, kind in kinds.items():
            value = record.get(key)
            if value is None:
                continue
            if kind is bool:
                _bool(value, f"training.{key}")
            elif kind is int:
                _int(value, 0, 1 << 62, f"training.{key}")
            elif kind is float:  # a measurement: any number (NaN too: a run that diverged)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise UserError(f"training.{key} must be a number, not {value!r}")
            elif not isinstance(value, kind):
                raise UserError(f"training.{key} must be {'text' if kind is str else 'an object'}")
            typed[key] = value
        return cls(**typed, extra={k: v for k, v in record.items() if k not in kinds
                                   and k != "holdout"})


def _sampling(own) -> dict:
    """config.json "sampling": the model's own generation defaults (generate.SamplingConfig
    fields, e.g. a line model's), checked as SamplingConfig checks them."""
    from .sampling import SamplingConfig

    own = _object(own or {}, "sampling", {f.name for f in fields(SamplingConfig)})
    try:
        SamplingConfig(**own)
    except UserError as err:
        raise UserError(f"sampling: {err}") from None
    return dict(own)


@dataclass(frozen=True)
class ModelDirConfig:
    """config.json, parsed once (`parse_config`) into typed settings: what `LoadedModel`
    carries and every reader uses; nothing else reads config.json's keys.

    The rule for keys this version does not know: in the sections that decide what the
    model computes (model, segmenter, decoder, lines, sampling) they are refused, since
    ignoring one would compute something else than what was saved; in the records
    (training, versions, readers) and at the top level they are kept as written (a later
    rewrite, `fit-cache`, `fit-ngram`, keeps them) and otherwise ignored."""

    model: ModelConfig
    segmenter: SegmenterConfig  # user_dict None here: `user_dict` says if the model has one
    training: TrainingRecord
    decoder: DecoderConfig
    files: dict  # name -> SHA-256 of every file the model uses
    vocab_sha256: str
    user_dict: bool = False  # the model has its own user_dict.txt (prompts segment with it)
    lines: LineInfo | None = None  # line models only
    sampling: dict = field(default_factory=dict)  # SamplingConfig fields: the model's defaults
    versions: dict = field(default_factory=dict)  # of the software that trained it
    readers: dict | None = None  # a reader panel's verdict (bench/readers.py; the card)
    extra: dict = field(default_factory=dict, compare=False)  # unknown top-level keys

    @property
    def acrostic_length(self) -> int:
        """Words per acrostic line unless asked: a line corpus's commonest clause, else 7."""
        return (self.lines.clause_length if self.lines else 0) or 7

    def to_json(self) -> dict:
        """The config.json record (`parse_config` of it gives this config back)."""
        seg = self.segmenter.to_json() | {"user_dict": "user_dict.txt" if self.user_dict else None}
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": self.model.to_json(),
                "vocab_sha256": self.vocab_sha256, "segmenter": seg,
                "training": self.training.to_json(), "versions": self.versions}
        if self.lines is not None:
            data["lines"] = self.lines.to_json()
        data["decoder"] = self.decoder.to_json()
        if self.sampling:
            data["sampling"] = self.sampling
        data["files"] = self.files
        if self.readers is not None:
            data["readers"] = self.readers
        return data | self.extra

    @classmethod
    def from_json(cls, config: dict) -> ModelDirConfig:
        known = {"format", "format_version", "model", "vocab_sha256", "segmenter", "training",
                 "versions", "lines", "decoder", "sampling", "files", "readers"}
        model = _section("model", ModelConfig.from_json, _object(config["model"], "model"))
        if model.vocab_size < 1:
            raise UserError("model.vocab_size must be at least 1")
        seg = _object(config["segmenter"], "segmenter", {f.name for f in fields(SegmenterConfig)})
        missing = [k for k in ("engine", "unit", "hmm", "to_simplified") if k not in seg]
        if missing:  # each is written (normalize_punct came later: old dirs lack it)
            raise KeyError(f"segmenter.{missing[0]}")
        user_dict = seg.get("user_dict")
        if user_dict not in (None, "user_dict.txt"):
            raise UserError("segmenter.user_dict must be the model's own user_dict.txt")
        segmenter = SegmenterConfig(**(seg | {"user_dict": None}))
        decoder = DecoderConfig.from_json(config["decoder"])
        lines = None if config.get("lines") is None else LineInfo.from_json(config["lines"])
        files = config.get("files")
        if not isinstance(files, dict) or not all(
                isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)
                and k in FILES for k, v in files.items()):
            raise UserError("files must map the model's files to SHA-256 digests (a record "
                            "every model dir has since format version 2; copy the whole model "
                            "directory again, or retrain)")
        parsed = cls(model, segmenter, TrainingRecord.from_json(config["training"]), decoder,
                     dict(files), _str(config.get("vocab_sha256"), "vocab_sha256") or "",
                     bool(user_dict), lines, _sampling(config.get("sampling")),
                     _object(config.get("versions") or {}, "versions"),
                     None if config.get("readers") is None
                     else _object(config["readers"], "readers"),
                     {k: v for k, v in config.items() if k not in known})
        parsed.check_files()
        return parsed

    def check_files(self) -> None:
        """Every file the model uses has its SHA-256 in `files`."""
        needed = ["model.keras", "vectors.bin"]
        needed += ["prior.npy"] if self.decoder.kind == "prior" else []
        needed += ["user_dict.txt"] if self.user_dict else []
        needed += ["ngram.npz"] if self.decoder.ngram else []
        needed += ["lines.npy"] if self.lines is not None else []
        unlisted = [n for n in needed if n not in self.files]
        if unlisted:
            raise UserError(f"files does not record {', '.join(unlisted)} (every file the "
                            "model uses has its SHA-256 there); copy the whole model "
                            "directory again")


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
        arrays: dict[str, Any] = {"dense_kernel": kernel, "dense_bias": bias,
                                  "layers": np.array(len(lstm))}
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


def load_vectors_checked(model_dir: Path, config: ModelDirConfig) -> Vectors:
    """The model dir's vectors, verified to be the ones the model was trained with (read
    once: the bytes hashed are the bytes parsed)."""
    data = _read_model_file(model_dir, "vectors.bin")
    _check_digest(Path(model_dir), "vectors.bin", data, config.files.get("vectors.bin"))
    return _checked_vectors(Path(model_dir), config, data)


def _checked_vectors(model_dir: Path, config: ModelDirConfig, data: bytes) -> Vectors:
    from .vectors import parse_vectors

    vectors = parse_vectors(data, Path(model_dir) / "vectors.bin")
    mcfg = config.model
    if vectors.dim != mcfg.dim or len(vectors) != mcfg.vocab_size:
        raise UserError(f"{model_dir}: vectors.bin is {len(vectors)}x{vectors.dim} but the model "
                        f"was trained on {mcfg.vocab_size}x{mcfg.dim}: they do not match")
    if vocab_hash(vectors.words) != config.vocab_sha256:
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


def load_log_prior(model_dir: Path, config: ModelDirConfig,
                   data: bytes | None) -> np.ndarray | None:
    """prior.npy's bytes (log word frequencies), checked against the vocabulary; None if
    there is none."""
    path = Path(model_dir) / "prior.npy"
    if data is None:
        if config.decoder.kind == "prior":
            raise UserError(f"{model_dir}: prior.npy is missing (the model decodes with word "
                            "frequencies); copy the whole model directory")
        return None
    prior = _npy(data, path)
    if prior.shape != (config.model.vocab_size,) or prior.dtype.kind != "f":
        raise UserError(f"{path}: {prior.shape[0] if prior.ndim else 0} entries for a "
                        f"{config.model.vocab_size}-word vocabulary: they do not match")
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


def check_weights(model_dir: Path, config: ModelDirConfig, weights: InferenceWeights) -> None:
    mcfg = config.model
    outputs = mcfg.vocab_size if mcfg.head == "softmax" else mcfg.dim
    first_in = weights.lstm[0][0].shape[0] if weights.lstm else -1
    if first_in != mcfg.dim or weights.dense_kernel.shape[1] != outputs \
            or len(weights.lstm) != mcfg.layers:
        raise UserError(f"{model_dir}: model.keras reads {first_in}-d vectors and writes "
                        f"{weights.dense_kernel.shape[1]} outputs, config.json says "
                        f"{mcfg.dim} and {outputs}: the model and its vectors do not match")


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
    config: ModelDirConfig
    vectors: Vectors
    weights: InferenceWeights
    log_prior: np.ndarray | None
    decode: str | None = None
    files: dict = field(default_factory=dict, repr=False)  # name -> checked bytes

    @property
    def window(self) -> int:
        return self.config.model.window

    @functools.cached_property
    def step(self):
        from .stepmodel import StepModel

        return StepModel(self.weights)

    @functools.cached_property
    def decoder(self):
        from .decoding import make_decoder

        return make_decoder(self.config.decoder.to_json(), self.vectors.matrix, self.log_prior,
                            head=self.config.model.head, kind=self.decode)

    @functools.cached_property
    def cache(self):
        """The continuous cache fitted for this model (cache.CacheConfig), or None."""
        return self.config.decoder.cache

    def _file(self, name: str) -> bytes | None:
        """A file of this model as `load` checked it (or, for a LoadedModel made otherwise,
        read now and checked against this model's record); None if the model has none."""
        if name in self.files:
            return self.files[name]
        expected = self.config.files.get(name)
        if expected is None:
            return None
        data = _read_model_file(self.model_dir, name)
        _check_digest(self.model_dir, name, data, expected)
        return data

    @functools.cached_property
    def ngram(self):
        """(ngram.NgramConfig, ngram.WordNgram) fitted for this model, or None: from the
        ngram.npz bytes `load` checked."""
        from .ngram import WordNgram

        cfg = self.config.decoder.ngram
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
        from dataclasses import replace

        if not self.config.user_dict:
            return self.config.segmenter
        data = self._file("user_dict.txt")
        if data is None:
            raise UserError(f"{self.model_dir}: user_dict.txt is missing; copy the whole "
                            "model directory")
        return replace(self.config.segmenter, user_dict=_private_copy(
            data, hashlib.sha256(data).hexdigest(), "user_dict.txt"))


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
    embedding = with_unknown_row(vectors.matrix)
    weights = InferenceWeights(embedding, lstm, kernel, bias)
    check_weights(model_dir, config, weights)
    prior = load_log_prior(model_dir, config, data.pop("prior.npy", None))
    return LoadedModel(model_dir, config, vectors, weights, prior, decode,
                       files={name: data[name] for name in LAZY if name in data})
