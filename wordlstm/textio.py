"""Reading real-world text files and writing outputs safely.

Downloaded novels come in UTF-8 (with or without BOM), UTF-16, GB18030/GBK or Big5, with
CRLF line ends and full-width indentation. `iter_lines` detects the encoding from a sample,
then decodes the file in chunks (constant memory), so a bad byte is reported with its exact
file offset and line. `atomic_output` writes to a temporary file and renames it into place,
so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import UserError

CHUNK = 1 << 20
SAMPLE = 256 * 1024
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "gb18030", "big5")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Whitespace that a novel uses for indentation or layout: ASCII, tabs, the ideographic
# space U+3000, no-break and other Unicode spaces, and zero-width ones.
# Control characters (a NUL deep inside a file, an escape sequence) count as spaces: they are
# never text, and must not reach a terminal or become tokens.
_SPACE_RUN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u3000\u00a0\u200b\u200c\u200d\ufeff]+")
MAX_LINE = 1 << 20  # characters: a longer "line" (a file without line breaks) is cut


@dataclass
class ReadStats:
    """What reading one file found: its encoding, size and how many bytes were replaced."""

    path: str
    encoding: str = ""
    bytes: int = 0
    lines: int = 0
    replaced: int = 0
    cut_lines: int = 0  # over-long lines cut into pieces (see MAX_LINE)


DECODE_ERRORS = ("strict", "replace")  # on undecodable bytes: stop, or U+FFFD and count


def normalize_line(line: str) -> str:
    """Strip CR/LF and indentation, and collapse inner whitespace runs to one space."""
    return _SPACE_RUN.sub(" ", line).strip()


def _looks_binary(sample: bytes) -> bool:
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > max(8, len(sample) // 100)


def _cut_incomplete(sample: bytes, encoding: str) -> bytes:
    """Drop a multi-byte character cut off at the end of the sample."""
    dec = codecs.getincrementaldecoder(encoding)("strict")
    try:
        dec.decode(sample, final=False)
    except UnicodeDecodeError:
        return sample
    pending = dec.getstate()[0]
    return sample[: len(sample) - len(pending)] if pending else sample


def _is_common(c: str) -> bool:
    """A character real Chinese text is mostly made of: GB2312 level 1 (the 3,755 most common
    simplified characters), Big5's frequently-used block (5,401 traditional), ASCII, or
    CJK punctuation."""
    if c.isascii() or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef":
        return True
    try:
        b = c.encode("gb2312")
        if len(b) == 2 and 0xB0 <= b[0] <= 0xD7:
            return True
    except UnicodeEncodeError:
        pass
    try:
        b = c.encode("big5")
        return len(b) == 2 and 0xA440 <= (b[0] << 8 | b[1]) <= 0xC67E
    except UnicodeEncodeError:
        return False


def _common_share(text: str) -> float:
    """Share of common characters. Big5 bytes read as GBK (or the other way round) decode to
    rare characters, private-use code points and kana, so this tells them apart on a few KB."""
    chars = [c for c in text if not c.isspace()]
    return sum(map(_is_common, chars)) / len(chars) if chars else 0.0


def detect_encoding(path: str | os.PathLike) -> str:
    """Guess a file's encoding from its first 256 KB; raise UserError if it is not text."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE)
    if not sample:
        raise UserError(f"{path}: file is empty")
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if _looks_binary(sample):
        raise UserError(f"{path}: looks like a binary file, not text")
    candidates = []
    for enc in ("utf-8", "gb18030", "big5"):
        try:
            text = _cut_incomplete(sample, enc).decode(enc)
        except UnicodeDecodeError:
            continue
        if enc == "utf-8":
            return "utf-8"  # valid UTF-8 of any length is almost never another encoding
        candidates.append((_common_share(text), enc))
    if not candidates:
        # Undecodable in every candidate: report it against the most likely one.
        return "gb18030"
    return max(candidates)[1]


def _offset_error(path, err: UnicodeDecodeError, chunk_start: int, pending: int,
                  line: int, encoding: str) -> UserError:
    offset = chunk_start - pending + err.start
    bad = err.object[err.start:err.end].hex(" ")
    return UserError(
        f"{path}: cannot decode byte(s) {bad} at byte offset {offset} (line {line}) as "
        f"{encoding}; pass --encoding to choose another, or --errors replace to keep going"
    )


def iter_lines(path: str | os.PathLike, encoding: str | None = None, errors: str = "strict",
               stats: ReadStats | None = None) -> Iterator[str]:
    """Yield the decoded lines of a file (without line ends), in constant memory.

    `errors` is "strict" (stop at the first bad byte with its offset) or "replace"
    (substitute U+FFFD and count replacements in `stats.replaced`).
    """
    for block in iter_blocks(path, encoding, errors, stats):
        yield from block.splitlines()


def _count_lines(text: str) -> int:
    """Line breaks in `text`: LF, CRLF and lone CR (three C-level counts, no per-line work)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def iter_blocks(path: str | os.PathLike, encoding: str | None = None, errors: str = "strict",
                stats: ReadStats | None = None) -> Iterator[str]:
    """Yield the decoded text of a file in ~1 MB blocks that end at a line break.

    For readers that split lines elsewhere (segmentation workers): the reading process does
    no per-line work and hands over one string per block. Same checks and errors as iter_lines.
    """
    path = str(path)
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a text file")
    if errors not in DECODE_ERRORS:
        raise UserError(f"--errors must be strict or replace, not {errors!r}")
    try:
        enc = encoding or detect_encoding(path)
        codecs.lookup(enc)
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r}") from None
    stats = stats if stats is not None else ReadStats(path)
    stats.encoding = enc
    handler = "strict"
    if errors == "replace":
        handler = _counting_handler(stats)
    decoder = codecs.getincrementaldecoder(enc)(handler)
    tail = ""
    line_no = 1
    pos = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK)
            final = not data
            pending = len(decoder.getstate()[0])
            try:
                text = tail + decoder.decode(data, final=final)
            except UnicodeDecodeError as err:
                done = err.object[: err.start].decode(enc, "replace")
                raise _offset_error(path, err, pos, pending,
                                    line_no + _count_lines(tail + done), enc) from None
            pos += len(data)
            stats.bytes = pos
            # Keep an unfinished last line for the next block (and a final CR, whose LF
            # may come next).
            cut = len(text) if final else text.rfind("\n") + 1
            if not cut:
                cut = text.rfind("\r", 0, len(text) - 1) + 1
            if not cut and len(text) > MAX_LINE:
                # No line break for a megabyte: cut after the last sentence end (or anywhere),
                # so memory stays bounded however the file is laid out.
                cut = max(text.rfind(m, 0, MAX_LINE) for m in "。！？.!?\u3000 ") + 1 or MAX_LINE
                stats.cut_lines += 1
                text = text[:cut] + "\n" + text[cut:]
                cut += 1
            block, tail = text[:cut], text[cut:]
            if block:
                line_no += _count_lines(block)
                stats.lines = line_no - 1 + (0 if block[-1] in "\r\n" else 1)
                yield block
            if final:
                break


def _counting_handler(stats: ReadStats) -> str:
    """Register a codec error handler that substitutes U+FFFD and counts bad bytes."""
    name = f"wordlstm-replace-{id(stats)}"

    def handler(err: UnicodeDecodeError):
        stats.replaced += err.end - err.start
        return "\ufffd", err.end

    codecs.register_error(name, handler)
    return name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    For libraries that want a file name (gensim, Keras) rather than a stream.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + "".join(path.suffixes), dir=parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as err:
        raise UserError(f"{path}: cannot write here ({err.strerror})") from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temp file next to `path` for writing; it becomes `path` only if the block succeeds."""
    binary = "b" in mode
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if binary else encoding,
                  newline=None if binary else "\n") as f:
            yield f


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> None:
    """Write JSON (UTF-8, readable Chinese) atomically."""
    import json

    with atomic_output(path) as f:
        json.dump(data, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before hours of work) if an output path cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"{path}: cannot write here (directory {probe} is not writable)")



def check_segmented(path: str | os.PathLike) -> None:
    """Fail early on a segmented-text argument that is missing, empty, binary or not UTF-8."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    if p.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    with open(p, "rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise UserError(f"{path}: looks like a binary file, not segmented text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:
            raise UserError(f"{path}: not UTF-8 at byte offset {err.start}; "
                            "segmented files are written by `wordlstm segment`") from None


def check_not_input(output: str | os.PathLike, inputs) -> None:
    """Refuse an output that is one of the inputs (also through links): it would be replaced."""
    out = Path(output)
    for path in inputs:
        same = False
        try:
            same = out.exists() and os.path.samefile(out, path)
        except OSError:
            same = out.resolve() == Path(path).resolve()
        if same or out.resolve() == Path(path).resolve():
            raise UserError(f"{output}: is also an input ({path}); writing it would replace "
                            "that input. Choose another output file")
