"""Word segmentation: jieba's exact default-mode tokens, fast, streamed, on all cores.

Two engines give identical tokens: `jieba` (the reference) and `rjieba` (the jieba-rs
binding, ~20x faster). `auto` picks rjieba when it is installed and the options allow it.
Output is one paragraph a line, tokens separated by single spaces (whitespace tokens are
dropped, since a space is the separator). Input is read in chunks and processed in batches,
so memory stays flat whatever the corpus size.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace

from .errors import UserError
from .punct import normalize_punct
from .textio import ReadStats, iter_blocks, iter_lines, normalize_line

ENGINES = ("auto", "jieba", "rjieba")
UNITS = ("word", "char")
BATCH_LINES = 256  # lines per block when segmenting a stream of lines (names, prompts)
BLOCK_CHARS = 1 << 16  # characters per block sent to a worker


def _has_rjieba() -> bool:
    try:
        import rjieba  # noqa: F401
    except ImportError:
        return False
    return True


# User dictionaries are bounded before jieba sees them: jieba keeps every prefix of every
# entry in memory (one 40,000-character entry took 4.98 GB; entries summing to 2.56 million
# characters, 0.5 GB). jieba's own dictionary: 349,046 entries, 1,016,260 characters, the
# longest 16, 5.1 MB; each limit is above that, the worst case they allow ~250 MB and ~1 s.
MAX_USER_DICT_ENTRY_CHARS = 64  # characters in one entry (real words are short)
MAX_USER_DICT_ENTRIES = 400_000  # entries (lines with a word)
MAX_USER_DICT_CHARS = 1_200_000  # characters of all entries together: the prefixes jieba keeps
MAX_USER_DICT_BYTES = 8 << 20  # size of the file
MAX_USER_DICT_FREQ = 10 ** 12  # a frequency (jieba's whole dictionary counts 6e7)
MAX_USER_DICT_TAG = 16  # letters of a part-of-speech tag (jieba's: nr, ns, vn, eng, ...)

# jieba's user-dictionary line: word [frequency] [POS tag]; the word has no spaces (jieba
# cuts text at them, so it could never match one) and no control characters (binary data).
_USER_DICT_TAG = re.compile(r"[a-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FILE_KINDS = {"S_ISDIR": "a directory", "S_ISFIFO": "a FIFO (named pipe)",
               "S_ISCHR": "a character device", "S_ISBLK": "a block device",
               "S_ISSOCK": "a socket"}


def check_user_dict(path: str) -> list[tuple[str, int | None, str | None]]:
    """The entries (word, frequency or None, tag or None) of a jieba user dictionary, after
    checking it against the limits above; `UserError` naming the file, the line and the limit
    otherwise. Reads at most MAX_USER_DICT_BYTES (+1) and gives jieba nothing: callers load
    what this returns, so a refused dictionary loads nothing."""
    text = _decode_user_dict(path, _read_user_dict(path))
    entries: list[tuple[str, int | None, str | None]] = []
    chars = 0
    for lineno, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}: line {lineno}:"
        word, freq, tag = _user_dict_entry(where, line, parts)
        chars += len(word)
        if chars > MAX_USER_DICT_CHARS:
            raise UserError(f"{where} the entries add up to more than {MAX_USER_DICT_CHARS:,} "
                            "characters, the most a user dictionary may hold (jieba keeps "
                            "every prefix of every entry in memory)")
        if len(entries) >= MAX_USER_DICT_ENTRIES:
            raise UserError(f"{where} more than {MAX_USER_DICT_ENTRIES:,} entries, the most a "
                            "user dictionary may hold")
        entries.append((word, freq, tag))
    return entries


def _read_user_dict(path: str) -> bytes:
    """The bytes of a user dictionary that is a regular file within MAX_USER_DICT_BYTES:
    refused by its size before reading, and again if it grew since, so a huge or endless
    file (a FIFO, a device) is never read whole."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: user dictionary not found") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for f, k in _FILE_KINDS.items() if getattr(stat, f)(st.st_mode)),
                    "not a file")
        raise UserError(f"{path}: user dictionary is not a regular file ({kind})")
    too_big = f"a user dictionary may be at most {MAX_USER_DICT_BYTES:,} bytes"
    if st.st_size > MAX_USER_DICT_BYTES:
        raise UserError(f"{path}: {st.st_size:,} bytes; {too_big}")
    with open(path, "rb") as f:
        data = f.read(MAX_USER_DICT_BYTES + 1)
    if len(data) > MAX_USER_DICT_BYTES:  # it grew since the stat
        raise UserError(f"{path}: more than {MAX_USER_DICT_BYTES:,} bytes; {too_big}")
    return data


def _decode_user_dict(path: str, data: bytes) -> str:
    """A user dictionary's text (UTF-8, a BOM allowed); not UTF-8 is refused naming the line,
    so the person can find the bad bytes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[:err.start]
        lineno = len(before.splitlines()) + (not before or before.endswith((b"\n", b"\r")))
        raise UserError(f"{path}: line {lineno}: not UTF-8 (byte {err.start:,} of the file); "
                        "save the user dictionary as UTF-8") from None


def _user_dict_entry(where: str, line: str,
                     parts: list[str]) -> tuple[str, int | None, str | None]:
    """One line's (word, frequency or None, tag or None), checked against the per-entry
    limits; `where` ("PATH: line N:") starts the message of a refusal."""
    word = parts[0]
    if len(word) > MAX_USER_DICT_ENTRY_CHARS:
        raise UserError(f"{where} an entry of {len(word):,} characters; user dictionary "
                        f"entries are words of at most {MAX_USER_DICT_ENTRY_CHARS} characters")
    freq = tag = None
    rest = parts[1:]
    if rest and rest[0].isascii() and rest[0].isdigit() and len(rest[0]) <= 13:
        freq = int(rest.pop(0))
    if rest and len(rest[0]) <= MAX_USER_DICT_TAG and _USER_DICT_TAG.fullmatch(rest[0]):
        tag = rest.pop(0)
    if rest or (freq is not None and freq > MAX_USER_DICT_FREQ) or _CONTROL.search(word):
        why = "control characters (binary data?)" if _CONTROL.search(word) else \
            f"frequency a whole number up to {MAX_USER_DICT_FREQ:,}, tag up to " \
            f"{MAX_USER_DICT_TAG} lowercase letters"
        raise UserError(f"{where} not 'word [frequency] [tag]' ({why}): {line.strip()[:40]!r}")
    return word, freq, tag


def resolve_engine(engine: str, user_dict: str | None, unit: str = "word") -> str:
    """Pick the concrete engine (the one place it is decided): "char" for character units,
    else rjieba when installed and exact for these options, else jieba.

    Without a user dictionary rjieba matched jieba on every line of 红楼梦, 三国演义 and 水浒传.
    With one (even fed jieba's own frequencies) it breaks exact score ties differently
    (measured: 1 line in 11,044), so `auto` keeps jieba there; `--engine rjieba` still may.
    """
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "rjieba" and not _has_rjieba():
        raise UserError("engine rjieba is not installed: pip install rjieba")
    if unit == "char":
        return "char"
    if engine in ("jieba", "rjieba"):
        return engine
    return "rjieba" if _has_rjieba() and not user_dict else "jieba"


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything that decides the tokens; stored in a model dir so prompts match training."""

    engine: str = "auto"
    user_dict: str | None = None
    hmm: bool = True
    unit: str = "word"
    to_simplified: bool = False  # OpenCC t2s before segmenting: Big5 and GB novels share words
    normalize_punct: bool = False  # standard full-width marks first (punct.normalize_punct);
    # `segment` turns it on for word units, and old model dirs, which lack it, mean False

    def __post_init__(self):
        # Checked where the setting is made (segment, train, a model dir's or a checkpoint's
        # copy), before any work; each error names the field. Whether rjieba is installed is
        # the machine's, not the setting's: resolve_engine says it when segmenting.
        if self.engine not in ENGINES:
            raise UserError(f"segmenter engine {self.engine!r} is unknown; choose one of "
                            f"{', '.join(ENGINES)}")
        if self.unit not in UNITS:
            raise UserError(f"segmenter unit {self.unit!r} is unknown; choose word or char")
        for name in ("hmm", "to_simplified", "normalize_punct"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"segmenter {name} must be true or false, not "
                                f"{getattr(self, name)!r}")
        if self.user_dict is not None and not isinstance(self.user_dict, str):
            raise UserError(f"segmenter user_dict must be a file name, not {self.user_dict!r}")
        # A missing file is left to the command that needs it (its own message).
        if self.user_dict and os.path.lexists(self.user_dict):
            check_user_dict(self.user_dict)

    def to_json(self) -> dict:
        return asdict(self)


class Segmenter:
    """Callable: normalised line (see textio.normalize_line) -> list of tokens, never a space."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()):
        # read and checked here; _build gives jieba exactly these entries (no second read)
        self._user_entries = check_user_dict(config.user_dict) if config.user_dict else []
        self.config = config
        self.engine = resolve_engine(config.engine, config.user_dict, config.unit)
        # rjieba's own cut (no user dictionary): it also cuts whole blocks of lines at once
        self._plain_rjieba = self.engine == "rjieba" and not config.user_dict
        self._cut: Callable[[str], list[str]] | None = None
        self._convert = None
        if config.to_simplified:
            try:
                import opencc  # the official OpenCC binding: fast (C++), standard t2s tables
            except ImportError:
                raise UserError("--to-simplified needs OpenCC: pip install opencc") from None
            self._convert = opencc.OpenCC("t2s").convert

    def simplify(self, text: str) -> str:
        """Traditional -> simplified if configured (line breaks are kept)."""
        return self._convert(text) if self._convert else text

    def prepare(self, line: str) -> str:
        """A normalised line as the tokens are cut from it: simplified, punctuation standard."""
        line = self.simplify(line)
        return normalize_punct(line) if self.config.normalize_punct else line

    def _build(self):
        if self.engine == "char":
            return lambda line: [c for c in line if c != " "]
        hmm = self.config.hmm
        if self._plain_rjieba:
            import rjieba

            def cut(line, _cut=rjieba.cut):
                words = _cut(line, hmm)
                return [t for t in words if t != " "] if " " in line else words

            return cut
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tk = jieba.Tokenizer()
        tk.initialize()
        if self.config.user_dict:
            entries = self._user_entries
            for word, freq, tag in entries:
                tk.add_word(word, freq, tag)  # what jieba's load_userdict does, line by line
            if self.engine == "rjieba":
                import rjieba

                fast = rjieba.Jieba()
                for word, _, tag in entries:
                    fast.add_word(word, tk.FREQ[word], tag)  # jieba's own (suggested) frequency
                return lambda line: [t for t in fast.cut(line, hmm) if t != " "]
        return lambda line: [t for t in tk.lcut(line, HMM=hmm) if t != " "]

    def block_cutter(self):
        """A function cutting many newline-joined lines in one call, or None.

        jieba (and jieba-rs) treat a newline as a separator, so cutting "line1\nline2" gives
        line1's tokens, "\n", line2's tokens: one call per block instead of per line.
        """
        if not self._plain_rjieba:
            return None
        import rjieba

        hmm = self.config.hmm
        return lambda text: rjieba.cut(text, hmm)

    def cut(self, line: str) -> list[str]:
        """Tokens of a line that is already normalised (and converted)."""
        if self._cut is None:
            self._cut = self._build()
        cut = self._cut
        return cut(line)

    def __call__(self, line: str) -> list[str]:
        """Tokens of a normalised line, converted to simplified characters if configured."""
        return self.cut(self.prepare(line))


@dataclass
class SegmentStats:
    """The summary printed at the end of `wordlstm segment`."""

    files: list = field(default_factory=list)
    lines: int = 0
    tokens: int = 0
    distinct: int = 0
    bytes: int = 0
    seconds: float = 0.0
    replaced: int = 0
    engine: str = ""
    chapters: list = field(default_factory=list)  # (output line number, heading)
    boilerplate: list = field(default_factory=list)  # [{"line", "count"}] dropped as banners
    dropped: int = 0
    other_scripts: dict = field(default_factory=dict)  # script -> its distinct letters, for
    # letters of scripts other than the text's main one (encoding debris, usually)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / max(self.seconds, 1e-9)

    def to_json(self) -> dict:
        d = asdict(self)
        d["mb_per_s"] = round(self.mb_per_s, 3)
        d["seconds"] = round(self.seconds, 3)
        return d


# Chapter headings such as 第一回, 第十二章, 第3节, 卷二: kept as their own lines and reported.
CHAPTER = re.compile(r"^(第[0-9一二三四五六七八九十百千零〇两]+[回章节卷集部篇]"
                     r"|卷[0-9一二三四五六七八九十百千]+)")


# Download-site banners: a URL, or the words such sites put in their lines.
BOILERPLATE = re.compile(
    r"(https?://|www\.|\.(com|net|org|cn|cc|info|me)\b|[a-z0-9-]+\.(com|net|org)|txt|TXT|"
    r"小说网|小说下载|免费下载|下载站|本书来自|首发|更新最快|最新章节|手机阅读|请记住|书友|网址|"
    r"电子书|全集下载|天天看小说|看书网|书库)")
BOILERPLATE_MIN_REPEATS = 3


def find_boilerplate(lines: Iterable[str]) -> dict[str, int]:
    """Normalised lines that look like site banners and repeat at least 3 times, with counts.

    Only lines matching BOILERPLATE are counted, so memory stays small on any corpus.
    """
    counts: dict[str, int] = {}
    for raw in lines:
        line = normalize_line(raw)
        if line and BOILERPLATE.search(line):
            counts[line] = counts.get(line, 0) + 1
    return {line: n for line, n in counts.items() if n >= BOILERPLATE_MIN_REPEATS}


def is_chapter_heading(line: str) -> bool:
    """第一回 …, 第十二章 …: short, and no sentence punctuation (unlike prose that cites one)."""
    return bool(CHAPTER.match(line)) and len(line) <= 60 and not any(p in line for p in "，。．！？；,")


@dataclass
class BlockResult:
    """One worker's output for a block of raw lines."""

    text: bytes  # UTF-8, one segmented paragraph a line
    lines: int
    tokens: int
    distinct: set
    chapters: list  # (line number within the block's output, heading text)
    dropped: int = 0


def segment_block(seg: Segmenter, raw_lines: list[str], drop: frozenset = frozenset()) -> BlockResult:
    """Normalise and segment raw lines; drop empty ones and those in `drop`; return the text."""
    out: list[str] = []
    chapters: list = []
    block_words: list = []
    tokens = dropped = 0
    lines = [normalize_line(raw) for raw in raw_lines]
    if seg.config.to_simplified:  # one call per block: OpenCC keeps the line breaks
        lines = seg.simplify("\n".join(lines)).split("\n")
    if seg.config.normalize_punct:
        lines = [normalize_punct(line) for line in lines]
    block_cut = seg.block_cutter()
    if block_cut is not None:
        return _segment_block_at_once(block_cut, lines, drop)
    cut = seg.cut
    for line in lines:
        if not line:
            continue
        if line in drop:
            dropped += 1
            continue
        words = cut(line)
        if not words:
            continue
        if is_chapter_heading(line):
            chapters.append((len(out), line))
        out.append(" ".join(words))
        tokens += len(words)
        block_words.append(words)
    distinct = set(itertools.chain.from_iterable(block_words))
    return BlockResult(("\n".join(out) + "\n").encode("utf-8") if out else b"", len(out), tokens,
                       distinct, chapters,
                       dropped)


def _segment_block_at_once(block_cut, lines: list[str], drop: frozenset) -> BlockResult:
    """segment_block for engines that cut many lines in one call; string ops do the rest."""
    kept = list(filter(None, lines))  # C-level passes: this runs once per block of ~64k chars
    dropped = 0
    if drop:
        dropped = len(kept)
        kept = [line for line in kept if line not in drop]
        dropped -= len(kept)
    if not kept:
        return BlockResult(b"", 0, 0, set(), [], dropped)
    joined = "\n".join(kept)
    words = block_cut(joined)
    # Normalised lines hold single spaces only, so a space token shows as three spaces.
    text = (" ".join(words).replace(" \n ", "\n").replace("   ", " ") + "\n").encode("utf-8")
    distinct = set(words)
    distinct.discard("\n")
    distinct.discard(" ")
    chapters = [(i, line) for i, line in enumerate(kept) if is_chapter_heading(line)]
    # Each output line holds its tokens separated by single spaces.
    return BlockResult(text, len(kept), text.count(b" ") + len(kept), distinct, chapters, dropped)


_worker: Segmenter | None = None
_drop: frozenset = frozenset()


def _init_worker(config: SegmenterConfig, drop: frozenset = frozenset()) -> None:
    global _worker, _drop, _reported
    _drop = drop
    _reported = set()
    if _worker is None or _worker.config != config:
        _worker = Segmenter(config)
        _worker("预热")  # load the dictionary once per process


_reported: set = set()


def _segment_block_in_worker(text: str) -> BlockResult:
    """Worker side: split a block of text into lines and segment them; send back UTF-8 bytes
    and only words not sent before (so the main process does no per-line work, encodes no
    text and merges no large sets)."""
    assert _worker is not None, "the pool's initializer sets it"
    result = segment_block(_worker, text.splitlines(), _drop)
    result.distinct -= _reported
    _reported.update(result.distinct)
    return result


def _line_blocks(lines: Iterable[str], size: int) -> Iterator[str]:
    """Lines (without line ends) joined into text blocks of `size` lines."""
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield "\n".join(batch)
            batch = []
    if batch:
        yield "\n".join(batch)


def _split_blocks(blocks: Iterable[str], size: int) -> Iterator[str]:
    """Cut large text blocks at line breaks into pieces of about `size` characters, so that
    every worker gets work even from one small file."""
    for block in blocks:
        start = 0
        while len(block) - start > size:
            cut = block.find("\n", start + size) + 1
            if not cut:
                break
            yield block[start:cut]
            start = cut
        if start < len(block):
            yield block[start:]


def segment_blocks(blocks: Iterable[str], config: SegmenterConfig, jobs: int = 1,
                   drop: frozenset = frozenset()) -> Iterator[BlockResult]:
    """Segment blocks of text (whole lines) in order, on `jobs` processes."""
    _init_worker(config, drop)  # validates options; forked workers inherit the dictionary
    batches = _split_blocks(blocks, BLOCK_CHARS)
    if jobs <= 1:
        for batch in batches:
            yield _segment_block_in_worker(batch)
        return
    import multiprocessing as mp

    # fork is fastest (workers inherit the loaded dictionary), but forking a process whose
    # JAX, TensorFlow or PyTorch runtime threads are running can deadlock (JAX warns so):
    # a fresh interpreter per worker then (forkserver), which loads the dictionary itself.
    threaded = any(m in sys.modules for m in ("jax", "tensorflow", "torch"))
    ctx = mp.get_context("fork" if hasattr(os, "fork") and not threaded else
                         "forkserver" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(config, drop)) as pool:
        yield from pool.imap(_segment_block_in_worker, batches, chunksize=1)


def segment_lines(lines: Iterable[str], config: SegmenterConfig, jobs: int = 1) -> Iterator[list[str]]:
    """Token lists of raw lines, in order; lines empty after normalising are skipped."""
    for block in segment_blocks(_line_blocks(lines, BATCH_LINES), config, jobs):
        for line in block.text.decode("utf-8").splitlines():
            yield line.split(" ")


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def segment_files(paths: list[str], out, config: SegmenterConfig = SegmenterConfig(), *,
                  encoding: str | None = None, errors: str = "strict", jobs: int = 1,
                  progress=None, strip_boilerplate: bool = False) -> SegmentStats:
    """Segment text files into `out` (a text stream), one paragraph a line.

    With `strip_boilerplate`, a first pass finds repeated site banners (find_boilerplate) and
    the second drops them; they are listed in `stats.boilerplate`.
    """
    stats = SegmentStats(engine=resolve_engine(config.engine, config.user_dict, config.unit))
    reads: list[ReadStats] = []
    distinct: set = set()
    started = time.perf_counter()

    def raw_blocks() -> Iterator[str]:
        for path in paths:
            rs = ReadStats(str(path))
            reads.append(rs)
            last = 0
            for block in iter_blocks(path, encoding=encoding, errors=errors, stats=rs):
                if progress is not None and rs.bytes != last:
                    progress.update(rs.bytes - last)
                    last = rs.bytes
                yield block
            if progress is not None:
                progress.update(rs.bytes - last)

    drop: frozenset[str] = frozenset()
    if strip_boilerplate:
        found = find_boilerplate(line for path in paths
                                 for line in iter_lines(path, encoding=encoding, errors=errors))
        stats.boilerplate = [{"line": line, "count": n} for line, n in
                             sorted(found.items(), key=lambda kv: -kv[1])]
        drop = frozenset(found)
    binary = getattr(out, "buffer", None)
    if binary is not None:
        out.flush()
    for block in segment_blocks(raw_blocks(), config, jobs, drop):
        if binary is not None:
            binary.write(block.text)  # already UTF-8, one paragraph a line
        else:
            out.write(block.text.decode("utf-8"))
        stats.dropped += block.dropped
        stats.chapters.extend((stats.lines + i + 1, title) for i, title in block.chapters)
        stats.lines += block.lines
        stats.tokens += block.tokens
        distinct |= block.distinct
    stats.seconds = time.perf_counter() - started
    stats.bytes = sum(r.bytes for r in reads)
    stats.replaced = sum(r.replaced for r in reads)
    stats.distinct = len(distinct)
    stats.other_scripts = other_scripts(distinct)
    stats.files = [{"path": r.path, "encoding": r.encoding, "detection": r.detection,
                    "bytes": r.bytes, "replaced": r.replaced} for r in reads]
    if stats.tokens == 0:
        raise UserError(f"{', '.join(map(str, paths))}: no text found (empty after normalising)")
    return stats


def other_scripts(words) -> dict[str, str]:
    """The letters of `words` in scripts other than the main one (the script with the most
    distinct letters), by script: a Chinese download with Cyrillic or kana letters in it has
    encoding debris (readers saw "贾е" in a model's text)."""
    from .guards import script

    letters: dict[str, set] = {}
    for w in words:
        for c in w:
            s = script(c)
            if s is not None:
                letters.setdefault(s, set()).add(c)
    if not letters:
        return {}
    main = max(letters, key=lambda k: len(letters[k]))
    return {k: "".join(sorted(v)) for k, v in sorted(letters.items(), key=lambda kv: -len(kv[1]))
            if k != main}


def sidecar_path(segmented: str) -> str:
    """`novel.seg.txt` -> `novel.seg.txt.json`: how that file was segmented."""
    return str(segmented) + ".json"


def recorded_config(segmented: str, **overrides) -> SegmenterConfig:
    """The settings `wordlstm segment` recorded next to its output, with `overrides` (those
    not None) on top; defaults where nothing was recorded."""
    import json

    recorded = SegmenterConfig()
    path = sidecar_path(segmented)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                recorded = SegmenterConfig(**json.load(f)["segmenter"])
        except (ValueError, KeyError, TypeError):
            pass  # not ours or damaged: defaults and the command line apply
    return replace(recorded, **{k: v for k, v in overrides.items() if v is not None})


def segment_to_file(inputs: list[str], output: str, config: SegmenterConfig, *,
                    encoding: str | None = None, errors: str = "strict", jobs: int | None = None,
                    strip_boilerplate: bool = False, progress=None) -> tuple[SegmentStats, dict]:
    """`wordlstm segment`: check the inputs and the output (before any work), segment into
    `output` atomically and record the settings next to it (`sidecar_path`, which `train`
    reads). `progress(total_bytes)` may return a progress bar. Returns (stats, summary)."""
    from .textio import (
        atomic_output,
        check_not_input,
        check_text_inputs,
        check_writable,
        write_json,
    )

    check_writable(output)
    check_writable(sidecar_path(output))
    check_not_input(output, inputs)
    check_not_input(sidecar_path(output), inputs)
    check_text_inputs(inputs, encoding)  # bad inputs or encoding fail here, before any work
    total = sum(os.path.getsize(p) for p in inputs)
    bar = progress(total) if progress is not None else None
    try:
        with atomic_output(output) as out:
            stats = segment_files(list(inputs), out, config, encoding=encoding, errors=errors,
                                  jobs=jobs or default_jobs(), progress=bar,
                                  strip_boilerplate=strip_boilerplate)
    finally:
        if bar is not None:
            bar.close()
    summary = stats.to_json() | {"output": output, "segmenter": config.to_json()}
    write_json(sidecar_path(output), summary, indent=1)
    return stats, summary
