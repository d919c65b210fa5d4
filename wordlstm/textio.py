"""Reading real-world text files and writing outputs safely.

Downloaded novels come in UTF-8 (with or without BOM), UTF-16 (with or without BOM),
GB18030/GBK or Big5 (also Windows cp950 and HKSCS), with CRLF line ends and full-width
indentation. `iter_lines` detects the encoding from a sample (`detect`: the reading most
made of common characters), then decodes the file in chunks (constant memory), so a bad byte
is reported with its exact file offset and line. Inputs must be regular files
(`check_input_file`, `open_input`: a FIFO would hang, a pipe cannot be read twice).
`atomic_output` writes to a temporary file and renames it into place, so an interrupted run
never leaves a half-written file under the final name; an output that exists and is not a
regular file (/dev/stdout, a FIFO) is refused (`check_output_path`), never replaced.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import re
import stat
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

CHUNK = 1 << 20
SAMPLE = 256 * 1024
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
    detection: str = ""  # why the encoding was chosen, where another reading was possible


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


# The encodings a Chinese download is guessed among (UTF-16 is told by its NUL bytes).
# cp950 is Windows Big5: Python's big5 lacks its extension characters 裏 碁 銹 墻 恒 粧 嫺
# (F9D6-F9FE), common in Taiwanese files; big5hkscs adds Hong Kong characters. Earlier
# names win ties, so plain Big5 text keeps the name big5.
GUESSES = ("utf-8", "gb18030", "big5", "cp950", "big5hkscs")
_FAMILY = {"big5": "big5", "cp950": "big5", "big5hkscs": "big5"}
# A run of 6 valid 3- or 4-byte UTF-8 characters: what Chinese UTF-8 text is made of, and
# what GBK or Big5 bytes practically never form (~1e-10 per position): evidence of UTF-8.
_UTF8_RUN = re.compile(rb"(?:[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}){6,}")
UTF16_MIN_SCORE = 0.6  # a UTF-16 reading without BOM is taken from this score on
_LAYOUT = "\t\n\r\x0c\x1b"  # control characters a text file may hold


@functools.lru_cache(maxsize=1)
def _common_chars() -> frozenset:
    """The characters real Chinese text is mostly made of: GB2312 level 1 (the 3,755 most
    common simplified characters), Big5's frequently-used block (5,401 traditional) and
    cp950's extension characters, ASCII, and CJK, full-width and general punctuation."""
    chars = {chr(i) for i in range(0x80)}
    chars |= {chr(i) for i in range(0x3000, 0x3040)} | {chr(i) for i in range(0xFF00, 0xFFF0)}
    chars |= {chr(i) for i in range(0x2010, 0x2028)} | {"\u00b7"}  # “ ” ‘ ’ — … ·
    pairs = [(bytes((lead, trail)), "gb2312") for lead in range(0xB0, 0xD8)
             for trail in range(0xA1, 0xFF)]
    pairs += [(code.to_bytes(2, "big"), "big5") for code in range(0xA440, 0xC67F)]
    pairs += [(code.to_bytes(2, "big"), "cp950") for code in range(0xF9D6, 0xF9FF)]
    for data, enc in pairs:
        try:
            chars.add(data.decode(enc))
        except UnicodeDecodeError:
            pass
    return frozenset(chars)


@dataclass(frozen=True)
class Reading:
    """A sample decoded with one encoding (undecodable bytes replaced), and how it reads."""

    encoding: str
    replaced: int  # U+FFFD characters
    score: float  # share of common characters, less the replaced ones (1.0: all common)
    controls: float  # share of control characters other than layout ones
    share: float  # share of common characters

    @property
    def strict(self) -> bool:
        return self.replaced == 0


def _read_sample(sample: bytes, encoding: str) -> Reading:
    """Decode `sample` (a multi-byte character cut off at its end is left out) and score it.
    Big5 read as GBK (or the other way round), or UTF-8 read as either, gives rare
    characters, private-use code points and kana: a few KB tell them apart."""
    text = codecs.getincrementaldecoder(encoding)("replace").decode(sample, final=False)
    counts = Counter(text)
    common = _common_chars()
    total = sum(n for c, n in counts.items() if not c.isspace()) or 1
    good = sum(n for c, n in counts.items() if c in common and not c.isspace())
    replaced = counts.get("\ufffd", 0)
    controls = sum(n for c, n in counts.items()
                   if unicodedata.category(c) == "Cc" and c not in _LAYOUT)
    return Reading(encoding, replaced, (good - replaced) / total, controls / total,
                   good / total)


def _decodes(sample: bytes, encoding: str) -> bool:
    """Whether `sample` is valid in `encoding` (but for a character cut off at its end)."""
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_reading(sample: bytes) -> Reading | None:
    """The better UTF-16 (no BOM) reading of a sample, if it reads as text at all."""
    best = max((_read_sample(sample, e) for e in ("utf-16-le", "utf-16-be")),
               key=lambda r: r.score)
    return best if best.controls <= 0.01 else None


def _utf16_hint(sample: bytes) -> str:
    """For a file refused as binary: the UTF-16 encoding it may be in, if any. NUL bytes at
    odd offsets are ASCII in UTF-16-LE (even: BE)."""
    reading = _utf16_reading(sample)
    nuls = [i % 2 for i, b in enumerate(sample) if b == 0]
    if nuls and reading is not None:
        odd = sum(nuls) / len(nuls)
        if odd >= 0.9 or odd <= 0.1:
            return "utf-16-le" if odd >= 0.9 else "utf-16-be"
    return reading.encoding if reading is not None and reading.score >= 0.2 else ""


@dataclass(frozen=True)
class Detection:
    """A detected encoding, and a note saying why where another reading was possible."""

    encoding: str
    note: str = ""


def _choice_note(best: Reading, readings: list[Reading]) -> str:
    """Why `best` was chosen, when another family of encodings also decodes the sample."""
    others = [r for r in readings if r.encoding != best.encoding and r.strict
              and _FAMILY.get(r.encoding, r.encoding) != _FAMILY.get(best.encoding,
                                                                      best.encoding)]
    if not others:
        return ""
    rival = max(others, key=lambda r: r.score)
    verb = "also decodes it" if best.strict else "decodes it without errors"
    return (f"{best.encoding}: {best.share:.0%} common characters"
            + ("" if best.strict else f", {best.replaced:,} undecodable in the first "
               f"{SAMPLE // 1024} KB")
            + f"; {rival.encoding} {verb}, as {rival.share:.0%} common characters")


def detect(path: str | os.PathLike) -> Detection:
    """Guess a file's encoding from its first 256 KB; raise UserError if it is not text.

    Valid UTF-8 is UTF-8. Otherwise every guess decodes the sample (replacing what it cannot
    decode) and the one whose text is most made of common characters wins: a Big5 file with
    one character Python's big5 lacks is still Big5, a UTF-8 file with one GBK line still
    UTF-8 (reading then stops at the real first bad byte, or replaces only it).
    """
    with open_input(path) as f:
        sample = f.read(SAMPLE)
    if not sample:
        raise UserError(f"{path}: file is empty")
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return Detection(name)
    if not _looks_binary(sample) and _decodes(sample, "utf-8"):
        return Detection("utf-8")  # valid UTF-8 of any length is almost never another encoding
    if b"\x00" in sample:  # ASCII (line ends) in UTF-16 are NUL bytes; GBK and Big5 have none
        reading = _utf16_reading(sample)
        if reading is not None and reading.score >= UTF16_MIN_SCORE:
            return Detection(reading.encoding, f"{reading.encoding} (no byte-order mark): "
                                               f"{reading.share:.0%} common characters")
    if _looks_binary(sample):
        hint = _utf16_hint(sample)
        raise UserError(f"{path}: looks like a binary file, not text"
                        + (f"; if it is UTF-16 without a byte-order mark, pass --encoding "
                           f"{hint}" if hint else ""))
    readings = [_read_sample(sample, enc) for enc in GUESSES]
    best = max(readings, key=lambda r: (r.score, -GUESSES.index(r.encoding)))
    family = [r for r in readings if _FAMILY.get(r.encoding) == _FAMILY.get(best.encoding, "")]
    if family:  # Big5's supersets only where they decode more: plain Big5 stays big5
        best = min(family, key=lambda r: r.replaced)
    utf8 = _UTF8_RUN.search(sample)
    if best.encoding != "utf-8" and utf8:
        raise UserError(
            f"{path}: mixes UTF-8 text (at byte offset {utf8.start():,}) with text in "
            f"another encoding (most likely {best.encoding}); convert it to one encoding, "
            f"or pass --encoding {best.encoding} or --encoding utf-8 (with --errors replace) "
            "to read it anyway")
    return Detection(best.encoding, _choice_note(best, readings))


def detect_encoding(path: str | os.PathLike) -> str:
    """The encoding `detect` guesses for a file."""
    return detect(path).encoding


def check_text_inputs(paths, encoding: str | None = None) -> None:
    """Fail before any work on a text input that is missing, not a regular file, empty, or
    binary or undecidable (detected here when `encoding` is None), or on an `encoding` that
    is not a text encoding."""
    if encoding:
        check_encoding(encoding)
    for path in paths:
        if encoding:
            check_input_file(path)
        else:
            detect(path)


def check_encoding(name: str) -> str:
    """The codec's name for a text encoding given by the user; UserError for an unknown one
    or one that does not decode bytes to text (rot13, base64, zlib: they would fail in a
    worker with a TypeError)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        raise UserError(f"unknown encoding {name!r}; give one such as utf-8, gb18030, big5 "
                        "or utf-16-le") from None
    ok = getattr(info, "_is_text_encoding", True)
    if ok:
        try:
            ok = isinstance(codecs.getincrementaldecoder(name)("strict").decode(b"", True), str)
        except Exception:  # noqa: BLE001 - any failure on no input: not a usable text codec
            ok = False
    if not ok:
        raise UserError(f"{name!r} is not a text encoding (it does not decode bytes to text); "
                        "give one such as utf-8, gb18030, big5 or utf-16-le")
    return info.name


def _offset_error(path, err: UnicodeDecodeError, chunk_start: int, pending: int,
                  line: int, encoding: str, note: str = "") -> UserError:
    offset = chunk_start - pending + err.start
    bad = err.object[err.start:err.end].hex(" ")
    return UserError(
        f"{path}: cannot decode byte(s) {bad} at byte offset {offset} (line {line}) as "
        f"{encoding}{f' (detected; {note})' if note else ''}; pass --encoding to choose "
        "another, or --errors replace to keep going"
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
    check_input_file(path)
    if errors not in DECODE_ERRORS:
        raise UserError(f"--errors must be strict or replace, not {errors!r}")
    detection = Detection(check_encoding(encoding)) if encoding else detect(path)
    enc = detection.encoding
    stats = stats if stats is not None else ReadStats(path)
    stats.encoding = enc
    stats.detection = detection.note
    handler = "strict"
    if errors == "replace":
        handler = _counting_handler(stats)
    decoder = codecs.getincrementaldecoder(enc)(handler)
    tail = ""
    line_no = 1
    pos = 0
    with open_input(path) as f:
        while True:
            data = f.read(CHUNK)
            final = not data
            pending = len(decoder.getstate()[0])
            try:
                text = tail + decoder.decode(data, final=final)
            except UnicodeDecodeError as err:
                done = err.object[: err.start].decode(enc, "replace")
                raise _offset_error(path, err, pos, pending,
                                    line_no + _count_lines(tail + done), enc,
                                    detection.note) from None
            except (UnicodeError, ValueError, TypeError) as err:  # codecs such as idna
                raise UserError(f"{path}: cannot decode it as {enc} near byte offset {pos} "
                                f"({err}); pass --encoding to choose another") from None
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

    def handler(err: UnicodeError) -> tuple[str, int]:
        assert isinstance(err, UnicodeDecodeError)
        stats.replaced += err.end - err.start
        return "\ufffd", err.end

    codecs.register_error(name, handler)
    return name


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device (such as /dev/null, /dev/stdout or a terminal)"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(path, mode: int) -> str:
    """What a path that is not a regular file is, in words."""
    if stat.S_ISFIFO(mode):
        with contextlib.suppress(OSError):
            if os.readlink(path).startswith("pipe:"):  # /dev/fd/N of <(...) or a shell pipe
                return "a pipe (such as <(...) or /dev/stdin in a pipeline)"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_input_file(path: str | os.PathLike, what: str = "", ok_missing: bool = False):
    """The `os.stat` of an input that must be a regular file; UserError saying what it is
    otherwise. Inputs are read twice (the encoding is detected from a sample), and a FIFO
    or a device would hang or be misread, so they are refused before they are opened.
    `ok_missing`: None for a path that does not exist (a dangling link is still an error)."""
    label = f"{path}: {what + ' ' if what else ''}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise UserError(f"{label}is a broken symbolic link (to {os.readlink(os.fspath(path))})") from None
        if ok_missing:
            return None
        raise UserError(f"{label}no such file") from None
    except NotADirectoryError:
        raise UserError(f"{label}no such file (a part of the path is not a directory)") from None
    except OSError as err:
        raise UserError(f"{label}cannot read it ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(path, st.st_mode)
        advice = ("give a file" if stat.S_ISDIR(st.st_mode)
                  else "save the text to a file and give that")
        raise UserError(f"{label}is {kind}, not a regular file; {advice}")
    return st


def open_input(path: str | os.PathLike, what: str = ""):
    """Open an input file for reading bytes, refusing anything but a regular file.

    Opened without blocking (a FIFO with no writer would hang `open`) and checked on the
    open descriptor, so what is read is what was checked."""
    check_input_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced since the check
            raise UserError(f"{path}: is {_kind(path, st.st_mode)}, not a regular file")
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse an output that exists and is not a regular file (a directory, /dev/stdout,
    /dev/null, a FIFO, or a link to one): outputs are written to a temporary file renamed
    onto the name, which would replace the device or pipe with a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # a new file (or a dangling link, replaced like a file)
    except NotADirectoryError:
        raise UserError(f"{path}: cannot write here (a part of the path is not a "
                        "directory)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot write here ({err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path}: is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: exists and is {_kind(path, st.st_mode)}, not a regular file; "
                        "writing would replace it with a file. Give the name of a file")


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
    check_output_path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + "".join(path.suffixes),
                                   dir=parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as err:
        raise UserError(f"{path}: cannot write here ({err.strerror})") from None
    try:
        yield tmp
        check_output_path(path)  # it may have become a device or FIFO while we worked
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temp file next to `path` for writing; it becomes `path` only if the block succeeds."""
    binary = "b" in mode
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if binary else encoding,
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
    check_output_path(path)
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"{path}: cannot write here (directory {probe} is not writable)")



def check_segmented(path: str | os.PathLike) -> None:
    """Fail early on a segmented-text argument that is missing, not a regular file, empty,
    binary or not UTF-8 anywhere: the whole file is checked (at UTF-8 decoding speed), since
    every reader after this one trusts it and a bad byte deep inside would be a traceback."""
    with open_input(path) as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise UserError(f"{path}: file is empty")
        _check_utf8_text(f, path)


def _check_utf8_text(f, path) -> None:
    """Read a binary stream to its end: UserError at the first NUL byte or invalid UTF-8,
    with its byte offset and line."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pos = 0
    lines = 1
    while True:
        data = f.read(CHUNK)
        nul = data.find(b"\x00")
        if nul >= 0:
            line = lines + data.count(b"\n", 0, nul)
            raise UserError(f"{path}: looks like a binary file, not segmented text (a NUL byte "
                            f"at byte offset {pos + nul}, line {line})")
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            offset = pos - pending + err.start
            line = lines + data.count(b"\n", 0, max(0, offset - pos))
            what = ("ends inside a character (cut short?)" if not data
                    else f"is not UTF-8 at byte offset {offset}")
            raise UserError(f"{path}: {what} (byte offset {offset}, line {line}); segmented "
                            "files are UTF-8, written by `wordlstm segment`") from None
        if not data:
            return
        pos += len(data)
        lines += data.count(b"\n")


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
