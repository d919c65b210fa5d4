"""Word vectors: train with gensim word2vec, read and write the word2vec C formats.

Vectors live in the word2vec formats only (binary `.bin` or text `.txt`/`.vec`), never in
pickles, so any word2vec file trained elsewhere (e.g. Tencent's 200-d vectors) works wherever
`--vectors` is accepted. Training streams the segmented file, so memory does not grow with
the corpus. Each paragraph ends with the token `</s>`, as in the original word2vec tool, so
the model can learn where paragraphs end.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .numeric import unit_rows
from .textio import atomic_path

EOS = "</s>"
NEIGHBORS = 10  # how many `neighbors` lists


@dataclass
class Word2VecSettings:
    """The classic novel-writer defaults; every field is a `train-vectors` flag."""

    size: int = 200
    window: int = 8
    sg: int = 0  # 0 = CBOW, 1 = skip-gram
    negative: int = 25
    sample: float = 1e-4
    epochs: int = 15
    min_count: int = 3  # rarer words are spelled with their characters (spell_rare)
    workers: int = 0  # 0 = all cores
    seed: int = 1
    spell_rare: bool = True  # rare words -> characters: every character gets a vector
    val_fraction: float = 0.05  # held-out part never seen by word2vec (split.HoldOut)
    lines: bool = False  # held out as a random sample of lines (line corpora)

    def __post_init__(self):
        self.sg = int(self.sg)  # a flag on the command line
        if self.min_count < 1 or self.size < 1 or self.epochs < 1 or self.window < 1:
            raise UserError("--min-count, --size, --epochs and --window must be positive")


class SegmentedCorpus:
    """Restartable iterable over a segmented file: one token list per paragraph, `</s>` last.

    `select` (a boolean per non-empty line) keeps only those lines; with `keep`, words not in
    it are spelled with their characters (see `spell`).
    """

    def __init__(self, path: str | os.PathLike, eos: bool = True, select=None, keep=None):
        self.path = str(path)
        self.eos = eos
        self.select = select
        self.keep = keep

    def __iter__(self):
        i = -1
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                tokens = line.split()
                if not tokens:
                    continue
                i += 1
                if self.select is not None and not self.select[i]:
                    continue
                if self.keep is not None:
                    tokens = spell(tokens, self.keep)
                if self.eos:
                    tokens.append(EOS)
                yield tokens


def spell(tokens: list[str], keep) -> list[str]:
    """Tokens with every word outside `keep` written as its characters."""
    out = []
    for t in tokens:
        if t in keep or len(t) == 1:
            out.append(t)
        else:
            out.extend(t)
    return out


def token_ids(tokens: list[str], index: dict, unk: int) -> list[int]:
    """Ids of tokens; a word outside the vocabulary is spelled with its characters, and only a
    character the vocabulary lacks becomes `unk`. So every `unk` stands for one character."""
    out = []
    for t in tokens:
        i = index.get(t)
        if i is not None:
            out.append(i)
        elif len(t) == 1:
            out.append(unk)
        else:
            out.extend(index.get(c, unk) for c in t)
    return out


@dataclass
class Vectors:
    """A vocabulary and its vectors: `words[i]` has vector `matrix[i]` (float32)."""

    words: list
    matrix: np.ndarray

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unit: tuple[np.ndarray, np.ndarray] | None = None  # (matrix, its unit rows)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def normalized(self) -> np.ndarray:
        """Unit-length rows (zero rows stay zero), C-contiguous float32, for cosine lookups:
        computed once and kept, as gensim keeps its norms (a matrix of 100k words is 80 MB to
        divide; `neighbors` in a loop would do it every call). A new `matrix` is normalised
        anew; the rows are not to be changed in place."""
        if self._unit is None or self._unit[0] is not self.matrix:
            self._unit = (self.matrix, unit_rows(self.matrix))
        return self._unit[1]

    def neighbors(self, word: str, k: int = NEIGHBORS) -> list[tuple[str, float]]:
        if word not in self.index:
            raise UserError(f"{word!r} is not in the vocabulary ({len(self)} words)")
        unit = self.normalized()
        scores = unit @ unit[self.index[word]]
        scores[self.index[word]] = -np.inf
        k = min(k, len(self) - 1)
        top = np.argpartition(-scores, k)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        return [(self.words[i], float(scores[i])) for i in top]


@dataclass(frozen=True)
class Word2VecRun:
    """What a word2vec training read, for `train-vectors`' summary."""

    corpus_words: int  # tokens of the training part, one epoch
    held_out_lines: int  # lines never read (split.training_lines)


def train_word2vec(corpus_path: str, settings: Word2VecSettings, progress=None) -> Vectors:
    """Word2vec vectors of a segmented file's training part (see `_train_word2vec`)."""
    return _train_word2vec(corpus_path, settings, progress)[0]


def _train_word2vec(corpus_path: str, settings: Word2VecSettings,
                    progress=None) -> tuple[Vectors, Word2VecRun]:
    """Train word2vec on a segmented file's training part, streaming it once per epoch.

    The held-out part (split.held_out_lines, the same lines `train` holds out) is never read,
    nor copies of its lines elsewhere in the file (split.training_lines).
    With `spell_rare`, words seen fewer than `min_count` times are spelled with their
    characters, and every character keeps a vector: the vocabulary is the frequent words
    plus all characters, so a model can write, and score, any text made of known characters.
    """
    from collections import Counter

    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from .split import HoldOut, training_lines

    workers = settings.workers or (os.cpu_count() or 1)
    holdout = HoldOut(settings.val_fraction, settings.lines)
    select = training_lines(corpus_path, holdout)
    keep, min_count = None, settings.min_count
    if settings.spell_rare:
        counts: Counter[str] = Counter()
        for tokens in SegmentedCorpus(corpus_path, select=select):
            counts.update(tokens)
        # A word a vectors file cannot hold (longer than MAX_WORD_BYTES) is spelled too.
        keep = {w for w, c in counts.items() if c >= settings.min_count and word_fits(w)}
        min_count = 1  # what remains is frequent words and characters

    class _Progress(CallbackAny2Vec):
        def on_epoch_end(self, model):
            if progress is not None:
                progress.update(1)

    corpus = SegmentedCorpus(corpus_path, select=select, keep=keep)
    model = Word2Vec(vector_size=settings.size, window=settings.window, sg=settings.sg,
                     negative=settings.negative, sample=settings.sample,
                     min_count=min_count, workers=workers, seed=settings.seed)
    model.build_vocab(corpus_iterable=corpus, trim_rule=_trim_unwritable)
    if len(model.wv) == 0:
        raise UserError(f"{corpus_path}: no word occurs {settings.min_count} times; "
                        "lower --min-count or use a larger corpus")
    model.train(corpus_iterable=corpus, total_examples=model.corpus_count,
                epochs=settings.epochs, callbacks=[_Progress()])
    vectors = Vectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, np.float32))
    return vectors, Word2VecRun(int(model.corpus_total_words), int((~select).sum()))


def _trim_unwritable(word, count, min_count):
    """gensim's vocabulary rule: a word no vectors file can hold (`word_fits`) is left out
    (with spell_rare it never gets here: it is spelled with its characters)."""
    from gensim import utils

    return utils.RULE_DEFAULT if word_fits(word) else utils.RULE_DISCARD


def resolve_vectors_path(path: str | os.PathLike) -> Path:
    """Accept a file, a prefix (`models/x/vectors` -> `.bin`/`.txt`) or a dir with vectors.bin."""
    p = Path(path)
    candidates = [p, p.with_name(p.name + ".bin"), p.with_name(p.name + ".txt"),
                  p / "vectors.bin", p / "vectors.txt"]
    for c in candidates:
        if c.is_file():
            return c
    raise UserError(f"{path}: no word vectors there (expected a word2vec .bin or .txt file)")


def output_paths(output: str | os.PathLike, text: bool = False) -> tuple[Path, Path]:
    """(vectors file, JSON summary) for `train-vectors -o`: a prefix, or a .bin/.txt name
    whose suffix is replaced (the inverse of `resolve_vectors_path`)."""
    prefix = Path(output)
    if prefix.suffix in (".bin", ".txt"):
        prefix = prefix.with_suffix("")
    return (prefix.with_name(prefix.name + (".txt" if text else ".bin")),
            prefix.with_name(prefix.name + ".json"))


def train_vectors_file(segmented: str, output: str | os.PathLike, settings: dict,
                       text: bool = False, progress=None) -> dict:
    """`wordlstm train-vectors`: check the corpus, the `settings` (Word2VecSettings fields)
    and the output, train, and write the vectors and a JSON summary next to them.
    `progress(epochs)` may return a progress bar. Returns the summary."""
    import time

    from .textio import check_not_input, check_segmented, check_writable, write_json

    check_segmented(segmented)
    cfg = Word2VecSettings(**settings)
    path, summary_path = output_paths(output, text)
    check_writable(path)
    check_writable(summary_path)  # the .json summary too, before hours of training
    check_not_input(path, [segmented])
    check_not_input(summary_path, [segmented])
    bar = progress(cfg.epochs) if progress is not None else None
    t0 = time.perf_counter()
    try:
        vectors, trained = _train_word2vec(segmented, cfg, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    save_vectors(vectors, path, binary=not text)
    tokens = trained.corpus_words
    spread = mean_cosine(vectors)
    summary: dict[str, Any] = {"output": str(path), "words": len(vectors), "dim": vectors.dim,
               "seconds": round(seconds, 2),
               "words_per_s": round(tokens * cfg.epochs / seconds),
               "settings": asdict(cfg), "corpus": str(segmented),
               "held_out_lines": trained.held_out_lines,
               "mean_cosine": round(spread, 4), "warnings": []}
    if spread > COLLAPSED:
        epochs = max(cfg.epochs + 1, math.ceil(UPDATES_NEEDED / max(tokens, 1)))
        summary["warnings"].append(
            f"the vectors did not separate (two random words' mean cosine {spread:.4f}: every "
            f"neighbour scores about 1): {tokens:,} tokens x {cfg.epochs} epochs is too "
            f"little training for word2vec; try --epochs {epochs}, more text, or "
            "`train --from base` (no vectors needed)")
    write_json(summary_path, summary)
    return summary


# Measured on slices of 水浒传 with the default settings (README, "How much text"): two
# random frequent words' mean cosine was 0.9996 at 83k tokens x 15 epochs, 0.984 at 172k, 0.37
# at 456k, and 0.22 at 83k x 60 epochs: what counts is tokens x epochs, about 5M.
COLLAPSED = 0.9  # mean cosine above which the vectors have not separated
UPDATES_NEEDED = 5_000_000  # training tokens x epochs that separated them


def mean_cosine(vectors: Vectors, top: int = 1000, pairs: int = 2000) -> float:
    """The mean cosine of random pairs of the `top` most frequent words (gensim orders them
    so): about 0.2-0.4 for trained vectors, near 1 when training has barely moved them."""
    n = min(top, len(vectors))
    if n < 2:
        return 0.0
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    i, j = i[i != j], j[i != j]
    m = vectors.matrix[:n].astype(np.float64)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return float((m[i] * m[j]).sum(axis=1).mean())


MAX_WORD_BYTES = 1000  # the longest word (UTF-8 bytes) a vectors file may hold, read or written
MAX_DIM = 10_000
_BREAKS = (" ", "\n", "\r")  # characters that would end a word in the file: never in one


def word_fits(word: str) -> bool:
    """Whether `word` can be a word of a vectors file (written and read back as itself)."""
    try:
        size = len(word.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return 0 < size <= MAX_WORD_BYTES and not any(c in word for c in _BREAKS)


def open_regular(path: str | os.PathLike):
    """`path` opened for reading in binary, refused with a clear error if it is not a regular
    file (textio.open_input: a FIFO would block, a directory cannot be read)."""
    from .textio import open_input

    return open_input(path)


def _is_binary(path: Path, data: bytes) -> bool:
    if path.suffix in (".bin",):
        return True
    if path.suffix in (".txt", ".vec"):
        return False
    nl = data.find(b"\n")
    body = data[nl + 1:nl + 1 + 4096] if nl >= 0 else b""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(body) - 4  # a cut-off character at the end is fine
    return False


def _read_header(path: Path, data: bytes) -> tuple[int, int, int]:
    """(words, dimensions, where the first word starts) from the first line."""
    nl = data.find(b"\n", 0, 200)
    parts = data[:nl].split() if nl >= 0 else []
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 12 for p in parts) \
            or int(parts[1]) == 0:
        raise UserError(f"{path}: not a word2vec file (its first line must be '<words> <dims>')")
    return int(parts[0]), int(parts[1]), nl + 1


def _check_header(path: Path, count: int, dim: int, binary: bool, size: int) -> None:
    """The header's claim against the file's size, before anything is allocated from it."""
    if count < 1 or not 1 <= dim <= MAX_DIM:
        raise UserError(f"{path}: header says {count} words of {dim} dimensions; not a usable "
                        "word2vec file")
    least = count * (dim * 4 + 2) if binary else count * (dim * 2 + 1)  # "w " + the numbers
    if least > size:
        raise UserError(f"{path}: header says {count:,} words of {dim} dimensions, which needs "
                        f"at least {least:,} bytes; the file has {size:,} (truncated or not "
                        "word2vec)")


def _finish(path: Path, words: list, matrix: np.ndarray) -> Vectors:
    if not np.isfinite(matrix).all():
        raise UserError(f"{path}: holds vectors that are not finite numbers (NaN or inf)")
    if len(set(words)) != len(words):
        raise UserError(f"{path}: the same word appears twice; not a valid vectors file")
    return Vectors(words, matrix)


def _read_binary(path: Path, raw: bytes, pos: int, count: int, dim: int) -> Vectors:
    """Parse word2vec C binary with numpy: ~20x faster to start than importing gensim."""
    words: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32)
    width = 4 * dim
    for i in range(count):
        while pos < len(raw) and raw[pos] in b"\n\r":
            pos += 1  # a line end after the previous vector (optional in the format)
        end = raw.find(b" ", pos, pos + MAX_WORD_BYTES + 1)
        if end <= pos or end + 1 + width > len(raw):
            long = end < 0 and len(raw) - pos > MAX_WORD_BYTES + width
            raise UserError(f"{path}: not a valid word2vec binary file (truncated or corrupt "
                            f"at word {i + 1} of {count}, byte offset {pos}"
                            + (f": no word ends within {MAX_WORD_BYTES} bytes, the longest "
                               "a word may be" if long else "") + ")")
        try:
            words.append(raw[pos:end].decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path}: word {i + 1} is not UTF-8 (byte offset {pos})") from None
        matrix[i] = np.frombuffer(raw, dtype="<f4", count=dim, offset=end + 1)
        pos = end + 1 + width
    if raw[pos:].strip():
        raise UserError(f"{path}: holds more than the {count:,} vectors its header says "
                        "(a damaged header); not a valid word2vec file")
    return _finish(path, words, matrix)


def _read_text(path: Path, f, count: int, dim: int) -> Vectors:
    """Parse word2vec text (`f` after its header line): one line per word, the word and `dim`
    numbers, space-separated. Streamed: memory is the matrix, not the file."""
    words: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32)
    for lineno, raw in enumerate(f, 2):
        try:
            line = raw.decode("utf-8").rstrip("\r\n").rstrip(" ")
        except UnicodeDecodeError:
            raise UserError(f"{path}: not a valid word2vec text file (line {lineno:,} is not "
                            "UTF-8)") from None
        if not line.strip():
            continue
        if len(words) == count:
            raise UserError(f"{path}: holds more than the {count:,} vectors its header says "
                            "(a damaged header); not a valid word2vec file")
        parts = line.split(" ")
        if len(parts) != dim + 1 or not word_fits(parts[0]):
            raise UserError(f"{path}: not a valid word2vec text file (line {lineno:,}: "
                            f"expected a word of at most {MAX_WORD_BYTES} bytes and {dim} "
                            "numbers)")
        try:
            matrix[len(words)] = [float(x) for x in parts[1:]]
        except ValueError:
            raise UserError(f"{path}: not a valid word2vec text file (line {lineno:,}: not "
                            "numbers)") from None
        words.append(parts[0])
    if len(words) != count:
        raise UserError(f"{path}: header says {count:,} words but the file holds "
                        f"{len(words):,}")
    return _finish(path, words, matrix)


def _parse(f, size: int, path: Path, data: bytes | None = None) -> Vectors:
    head = f.read(200 + 4096)  # the header line and a sample after it
    count, dim, pos = _read_header(path, head)
    binary = _is_binary(path, head)
    _check_header(path, count, dim, binary, size)
    if binary:
        if data is None:
            f.seek(0)
            data = f.read()
        return _read_binary(path, data, pos, count, dim)
    f.seek(pos)
    return _read_text(path, f, count, dim)


def parse_vectors(data: bytes, path: str | os.PathLike) -> Vectors:
    """Vectors from a word2vec file's bytes (`path`: its name, for the format and messages),
    with one clear error for anything else."""
    import io

    return _parse(io.BytesIO(data), len(data), Path(path), data)


def load_vectors(path: str | os.PathLike) -> Vectors:
    """Read word2vec binary or text vectors (one open file, read once), with one clear error
    for anything else."""
    p = resolve_vectors_path(path)
    try:
        with open_regular(p) as f:
            return _parse(f, os.fstat(f.fileno()).st_size, p)
    except OSError as err:
        raise UserError(f"{p}: cannot read it ({err.strerror or err})") from None


def save_vectors(vectors: Vectors, path: str | os.PathLike, binary: bool = True) -> Path:
    """Write word2vec C format atomically (binary by default: exact and compact). Every word
    must be one `load_vectors` reads back (`word_fits`)."""
    from gensim.models import KeyedVectors

    bad = next((w for w in vectors.words if not word_fits(w)), None)
    if bad is not None:
        shown = bad[:20] + ("…" if len(bad) > 20 else "")
        raise UserError(f"{path}: cannot write the word {shown!r} ({len(bad):,} characters): "
                        f"a vectors file's words are 1 to {MAX_WORD_BYTES} bytes of UTF-8 "
                        "without spaces or line breaks")

    kv = KeyedVectors(vectors.dim, dtype=np.float32)
    kv.add_vectors(vectors.words, vectors.matrix)
    path = Path(path)
    with atomic_path(path) as tmp:
        kv.save_word2vec_format(str(tmp), binary=binary)
    return path
