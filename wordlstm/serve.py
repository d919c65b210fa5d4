"""`wordlstm serve`: the co-writing page and a JSON API over models loaded once.

FastAPI (on Starlette, served by uvicorn) because it is the well-kept ASGI stack that turns
typed request bodies into validation and an OpenAPI schema with no extra code, and streams
responses (Server-Sent Events) natively; uvicorn is its reference server.

Requests never name files (and answers never show them): models are chosen at start-up and
named by id. `HostCheck` answers only to this server's own names (loopback ones when bound
to loopback), against DNS rebinding. Every request that generates passes `Admission` (at
most `max_active` at once, `max_waiting` queued, the rest get 503 with Retry-After) and a
time budget that counts from when it generates; a client that goes away stops its request,
queued or generating. Continuations are batched across requests by one `Batcher` thread per
model, other modes run in a thread pool, so the event loop only moves bytes.
"""

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import math
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import __version__
from .budget import Budget, Cancelled, Stopped
from .errors import UserError, say_fields
from .sampling import MAX_NATS, SamplingConfig
from .writer import Generation, Request, Writer, printable

STATIC = Path(__file__).with_name("static")
FORM = re.compile(r"([0-9]+)[xX]([0-9]+)")  # a verse form: characters a clause x clauses
MAX_LINE_LENGTH = 50  # words of an acrostic line, characters of a verse form's clause
MAX_CLAUSES = 50  # clauses of a verse form (as writer.Writer.verse_form takes them)
MAX_BIAS = MAX_NATS  # nats of a bias or penalty: the library's bounds (sampling.py)


@dataclass
class ServeConfig:
    """How `wordlstm serve` listens and what one request may ask for."""

    host: str = "127.0.0.1"  # loopback only; 0.0.0.0 serves every interface (warned)
    port: int = 8000  # 0: any free port (printed)
    max_length: int = 2000  # words a request may generate (per sample or line)
    max_samples: int = 16  # samples or lines a request may ask for
    max_prompt: int = 4000  # characters of prompt plus prefix
    max_acrostic: int = 32  # characters of an acrostic's heads
    max_top: int = 50  # next words /api/next may list
    time_limit: float = 60.0  # seconds a request may generate before it is stopped
    max_active: int = 32  # requests generating at once (continuations share one batch)
    max_waiting: int = 32  # requests queued for a slot; beyond that, 503 + Retry-After
    max_wait: float = 30.0  # seconds a queued request waits before it gets 503
    batch: bool = True  # batch concurrent continuations into one network step
    max_body: int = 65536  # bytes of a request body
    # Host names the server answers to besides loopback ones (and IP addresses when not bound
    # to loopback): a page on another site whose name resolves here (DNS rebinding) gets 421.
    # "*": any name (behind a proxy that checks them).
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self):
        if not (0 <= self.port <= 65535):
            raise UserError("--port must be 0-65535")
        for name in ("max_length", "max_samples", "max_prompt", "max_active", "max_top"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_waiting < 0:
            raise UserError("--max-waiting must not be negative")
        if not (math.isfinite(self.time_limit) and self.time_limit > 0):
            raise UserError("--time-limit must be a positive number of seconds")
        if not (math.isfinite(self.max_wait) and self.max_wait >= 0):
            raise UserError("--max-wait must be a number of seconds >= 0")
        names = []
        for name in self.allowed_hosts:
            clean = str(name).strip().lower().rstrip(".")
            if clean != "*" and _host_name(clean) != clean:
                raise UserError(f"--allow-host {name!r}: give a host name (example.org) or *, "
                                "without a scheme, port or path")
            names.append(clean)
        self.allowed_hosts = tuple(names)


class Busy(Exception):
    """No generation slot: the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """At most `max_active` requests generate at once and `max_waiting` wait for a slot (first
    come, first served); the rest are turned away at once (503, Retry-After), never left
    hanging.

    Deciding and counting are one step with no `await` between them, so requests arriving
    together cannot all see the same free slot; a freed slot is handed to the first in line,
    not left for whoever asks next. Every method runs on the event loop's thread."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.active = 0  # slots held
        self._queue: collections.deque[asyncio.Future] = collections.deque()
        self._seconds = 1.0  # running mean of a request's time in its slot

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._queue if not f.done())

    def retry_after(self) -> int:
        queued = self.waiting + max(self.active - self.config.max_active + 1, 0)
        return max(1, math.ceil(self._seconds * (1 + queued / self.config.max_active)))

    async def acquire(self) -> float:
        """Take a slot, or wait in line for one (or raise Busy); returns when it was taken,
        for `release`."""
        if self.active < self.config.max_active and not self.waiting:
            self.active += 1
            return time.monotonic()
        if self.waiting >= self.config.max_waiting:
            raise Busy(f"the server is busy ({self.active} requests generating, "
                       f"{self.waiting} waiting); try again shortly", self.retry_after())
        loop = asyncio.get_running_loop()
        slot = loop.create_future()  # True: a slot was handed over; False: timed out
        self._queue.append(slot)

        def time_out() -> None:
            if not slot.done():
                slot.set_result(False)

        timer = loop.call_later(self.config.max_wait, time_out)
        try:
            handed = await slot
        except asyncio.CancelledError:  # the client went away, the server stops
            if slot.done() and not slot.cancelled() and slot.result():
                self._hand_on()  # handed a slot just as it gave up: the next in line gets it
            else:
                slot.cancel()
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._queue.remove(slot)
        if not handed:
            raise Busy(f"no generation slot came free within {self.config.max_wait:g} s; "
                       "try again shortly", self.retry_after())
        return time.monotonic()

    def release(self, taken: float) -> None:
        self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - taken)
        self._hand_on()

    def _hand_on(self) -> None:
        """A slot came free: it goes to the first one waiting, or back to the pool."""
        while self._queue:
            slot = self._queue.popleft()
            if not slot.done():
                slot.set_result(True)
                return
        self.active -= 1


class Clock(Budget):
    """A request's Budget whose time limit starts when it begins generating (`start`), not
    while it waits for a slot, a thread or a place in the batch."""

    def __init__(self, seconds: float):
        super().__init__(None)
        self.limit = seconds

    def start(self) -> None:
        if self.deadline is None:
            self.seconds = self.limit
            self.deadline = time.monotonic() + self.limit


class ServedModel:
    """One model loaded for serving: its Writer, its batcher, the facts the page shows, and
    its card and training history (the page's model view)."""

    def __init__(self, model_id: str, writer: Writer, batch: bool):
        from .batcher import Batcher

        self.id, self.writer = model_id, writer
        self.batcher = Batcher(writer.gen) if batch else None
        self.history = _read_history(writer.model_dir)
        self.card = _read_card(writer.model_dir)
        config = writer.config
        best = config.training.best_epoch
        bits = [e.get("val_bits_per_char") for e in self.history if e.get("epoch") == best]
        corpus = config.training.corpus
        self.facts = {
            "id": model_id,
            "title": novel_title(self.card, corpus),
            "unit": writer.unit,
            "vocabulary": len(writer.vectors),
            "head": config.model.head,
            "layers": config.model.layers,
            "units": config.model.units,
            "corpus": corpus,
            "held_out_bits_per_char": round(bits[0], 4) if bits and bits[0] else None,
            "lines": config.training.lines,
            "forms": [f"{f.length}x{f.clauses}" for f in config.lines.forms] if config.lines else [],
            "best_epoch": best,
        }

    def start(self, request: Request, cfg: SamplingConfig, stop: Clock, stream: bool, pool,
              put) -> None:
        """Start generating `request` off the event loop. `put(kind, value)` (thread-safe)
        gets ("word", {"sample", "text"}) as words come when `stream`, then ("done", a
        Generation or the exception). Plain continuations join the model's batch; the other
        modes run in `pool`. `stop`'s clock starts when the generation does."""
        if self.batcher is not None and self.writer.batchable(request, cfg):
            self._in_batch(request, cfg, stop, stream, put)
        else:
            pool.submit(self._in_thread, request, cfg, stop, stream, put)

    def _in_thread(self, request: Request, cfg: SamplingConfig, stop: Clock, stream: bool,
                   put) -> None:
        stop.start()
        outcome: object = Cancelled("the generation was interrupted")  # if anything escapes

        def on_word(word):
            put("word", {"sample": 0, "text": word})

        try:
            outcome = self.writer.write(request, cfg, on_word=on_word
                                        if stream and request.streams else None,
                                        check=stop.check)
        except Exception as err:  # noqa: BLE001 - handed to its request (ERROR_STATUS)
            outcome = err
        finally:  # the request (and its slot) always hears the end
            put("done", outcome)

    def _in_batch(self, request: Request, cfg: SamplingConfig, stop: Clock, stream: bool,
                  put) -> None:
        from .batcher import Job

        streams = self.writer.batched(request, cfg)

        def on_step(job, nxt):
            for b, text in streams.new_words():
                put("word", {"sample": b, "text": text})

        def on_done(err):
            put("done", err or streams.finish())

        assert self.batcher is not None  # only called when there is one
        self.batcher.submit(Job(streams.group, on_step=on_step if stream else None,
                                on_done=on_done, budget=stop, on_start=stop.start))


def _read_history(model_dir: Path) -> list[dict]:
    """history.json's epochs, numbers only (a NaN loss is left out: JSON has none)."""
    try:
        epochs = json.loads((Path(model_dir) / "history.json").read_text("utf-8")).get("epochs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [{k: v for k, v in e.items() if isinstance(v, int | float) and not isinstance(v, bool)
             and math.isfinite(v)} for e in epochs if isinstance(e, dict)]


def _read_card(model_dir: Path) -> str | None:
    """The model's card (card.model_card: its README.md, or one made from its config)."""
    from .card import model_card

    try:
        return model_card(model_dir)
    except (OSError, ValueError, UserError):
        return None


def novel_title(card: str | None, corpus: str | None) -> str | None:
    """What the model was trained on, as the page's header names it: the novel the card's
    title names ("# models/default: 红楼梦, fine-tuned from the base" -> 红楼梦), else the
    corpus file's stem (hongloumeng.seg.txt -> hongloumeng)."""
    heading = next((line[2:] for line in (card or "").splitlines() if line.startswith("# ")), "")
    _, colon, rest = heading.partition(": ")
    name = rest.split(",")[0].strip() if colon else ""
    if name:
        return name
    return Path(corpus).name.split(".")[0] or None if corpus else None


def load_models(model_dirs: list[str | None], batch: bool = True, log=lambda msg: None) -> dict:
    """Each model directory loaded once (None: the shipped model), by id (its folder's name)."""
    served: dict[str, ServedModel] = {}
    for d in model_dirs or [None]:
        writer = Writer.load(d)
        base = "default" if d is None else Path(d).resolve().name or "model"
        model_id, k = base, 2
        while model_id in served:
            model_id, k = f"{base}-{k}", k + 1
        served[model_id] = ServedModel(model_id, writer, batch)
        log(f"loaded {model_id}: {len(writer.vectors):,} words from {writer.model_dir}")
    return served


# What an exception means to a client: the one table the JSON answers and the streamed
# `error` events both read (first match; anything else is the server's bug: 500, logged,
# answered with INTERNAL only). A UserError is what the client can fix by changing the named
# field (400). Stopped (a UserError, for the CLI's one line) comes first: its time limit ran
# out, its client went away or the server is stopping; nothing in the request is wrong and
# the same request may well succeed later, so 503 with Retry-After, not 400.
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Busy, 503), (Stopped, 503), (UserError, 400))
INTERNAL = "internal error (the server's log has the details)"
log = logging.getLogger("wordlstm.serve")


def status_of(exc: Exception) -> int:
    return next((status for kind, status in ERROR_STATUS if isinstance(exc, kind)), 500)


class PublicMessages:
    """A library message as a client of the API reads it. Requests never name files and
    answers never show them: a model's directory (the library names paths for the CLI)
    becomes its id. A `continue-text` flag (--lines) becomes the field it sets (n_lines), and
    a hyphenated name (top-p) the field's (top_p)."""

    def __init__(self, models: dict, field_names):
        self.fields = set(field_names)
        self.flags = {flag: name for flag, name in _cli_flags().items() if name in self.fields}
        self.paths = {}
        for m in models.values():
            for d in {str(m.writer.model_dir), str(Path(m.writer.model_dir).resolve())}:
                self.paths[d] = f"model {m.id!r}"

    def __call__(self, message: str) -> str:
        message = say_fields(message)  # the library's field names, as the API's
        for d in sorted(self.paths, key=len, reverse=True):
            message = message.replace(d, self.paths[d])
        return visible(re.sub(r"(?<![\w-])(--)?([a-z]+(?:-[a-z]+)*)(?![\w-])", self._name,
                              message))

    def _name(self, m) -> str:
        word = m.group(2)
        if m.group(1) and word in self.flags:
            return self.flags[word]
        if (m.group(1) or "-" in word) and word.replace("-", "_") in self.fields:
            return word.replace("-", "_")
        return m.group(0)


def _cli_flags() -> dict[str, str]:
    """continue-text's flags by the field each sets ("lines" -> n_lines), read from the CLI."""
    from . import cli

    return {opt[2:]: p.name for p in cli.continue_text.params for opt in p.opts
            if opt.startswith("--") and p.name}


class Api:
    """The routes' work: the models, this server's limits, its generation slots and threads,
    and how an exception is answered."""

    def __init__(self, models: dict, config: ServeConfig, bodies: tuple):
        self.models, self.config = models, config
        self.default = next(iter(models))
        self.continue_body, self.next_body = bodies
        self.admission = Admission(config)
        # As many generating threads as cores: more would only fight over them (numpy's BLAS
        # runs threads of its own; 8 threads on 2 cores made each request 100x slower).
        self.pool = ThreadPoolExecutor(max_workers=min(config.max_active, os.cpu_count() or 1),
                                       thread_name_prefix="wordlstm")
        self.public = PublicMessages(models, [*self.continue_body.model_fields,
                                              *self.next_body.model_fields])

    def error(self, exc: Exception) -> tuple[int, str, dict | None]:
        """(status, message, headers) of the answer to `exc` (ERROR_STATUS)."""
        status = status_of(exc)
        if status == 500:
            log.error("internal error", exc_info=exc)
            return status, INTERNAL, None
        retry = exc.retry_after if isinstance(exc, Busy) else self.admission.retry_after()
        return status, self.public(str(exc)), {"Retry-After": str(retry)} if status == 503 else None

    def pick(self, model_id: str | None) -> ServedModel:
        served = self.models.get(self.default if model_id is None else model_id)
        if served is None:
            raise UserError(f"unknown model {model_id!r}; this server has: "
                            f"{', '.join(self.models)}")
        return served

    def info(self) -> dict:
        limits = {k: v for k, v in asdict(self.config).items()
                  if k not in ("host", "port", "allowed_hosts")}
        fields_ = self.continue_body.model_fields
        defaults = {k: fields_[k].default for k in ("length", "temperature", "top_p", "top_k",
                                                     "samples")}
        return {"models": [m.facts for m in self.models.values()], "default": self.default,
                "limits": limits, "defaults": defaults | {"k": 5}, "version": __version__}

    def card(self, model_id: str | None) -> dict:
        served = self.pick(model_id)
        return {"model": served.id, "card": served.card}

    def history(self, model_id: str | None) -> dict:
        served = self.pick(model_id)
        return {"model": served.id, "best_epoch": served.facts["best_epoch"],
                "epochs": served.history}

    async def next_words(self, body, http) -> dict:
        served = self.pick(body.model)
        if not (1 <= body.k <= self.config.max_top):
            raise UserError(f"k must be 1-{self.config.max_top}")
        _check_prompt(self.config, "text", body.text, body.prefix)
        text, prefix = printable(body.text, "text"), printable(body.prefix, "prefix")
        stop = Clock(self.config.time_limit)

        def run():
            stop.start()
            return served.writer.next_words(text, body.k, prefix, check=stop.check)

        top, result = await self._in_slot(http, run, stop)
        return {"model": served.id, "words": [{"text": t, "probability": round(p, 6)}
                                              for t, p in top],
                "unknown": result.unknown, "split": result.split}

    async def _in_slot(self, http, run, stop: Clock):
        """`run()`'s result, run in the pool once a slot is free; a client that goes away
        stops it (the slot is free when its thread has stopped)."""
        taken = await _or_gone(http.receive, self.admission.acquire())
        try:
            work = asyncio.get_running_loop().run_in_executor(self.pool, run)
            try:
                return await _or_gone(http.receive, asyncio.shield(work))
            finally:
                if not work.done():
                    stop.cancelled = True  # the thread stops at its next check
                    await asyncio.wait({work})
        finally:
            self.admission.release(taken)

    def continue_request(self, body) -> tuple[ServedModel, Request, SamplingConfig]:
        """The model, Request and SamplingConfig a body asks for, checked (seed drawn)."""
        served = self.pick(body.model)
        check_limits(body, served, self.config)
        options = body.model_dump()
        if options["seed"] is None:  # drawn, and returned, so any text can be made again
            options["seed"] = int.from_bytes(os.urandom(4), "little") >> 1
        cfg = SamplingConfig(**_of(options, SamplingConfig))
        return served, Request(**_of(options, Request)).printable(), cfg

    async def continue_(self, body, http):
        served, request, cfg = self.continue_request(body)
        started = time.perf_counter()

        def answer(result: Generation) -> dict:
            extra = {"dropped_as_not_novel": result.dropped} if request.n_lines is not None else {}
            return {"prompt": request.prompt, "model": served.id, "seed": request.seed,
                    "texts": result.texts, "words": result.words, "unknown": result.unknown,
                    "split": result.split, "seconds": round(time.perf_counter() - started, 4),
                    **extra}

        events: asyncio.Queue = asyncio.Queue()
        stop = Clock(self.config.time_limit)  # counts from when it generates, not while queued
        await self._start(served, request, cfg, stop, body.stream, events, http)
        if body.stream:  # Server-Sent Events, for a StreamingResponse
            return _sse(events, answer, stop, self.error)
        try:
            outcome = await _or_gone(http.receive, _outcome(events))
        finally:
            stop.cancelled = True  # if the client went away, stop generating for it
        if isinstance(outcome, Exception):
            raise outcome
        return answer(outcome)

    async def _start(self, served, request, cfg, stop, stream, events, http) -> None:
        """A slot taken (or Busy) and the generation started; its events go to `events`."""
        loop = asyncio.get_running_loop()
        taken = await _or_gone(http.receive, self.admission.acquire())

        def deliver(kind, value):
            if kind == "done":  # the slot is free when the generation ends, whoever listens
                self.admission.release(taken)
            events.put_nowait((kind, value))

        try:
            served.start(request, cfg, stop, stream, self.pool,
                         lambda kind, value: loop.call_soon_threadsafe(deliver, kind, value))
        except Exception:
            self.admission.release(taken)
            raise


async def _outcome(events: asyncio.Queue):
    """A generation's Generation or exception, its word events passed over."""
    while (item := await events.get())[0] != "done":
        pass
    return item[1]


def _check_prompt(config: ServeConfig, what: str, text: str, prefix: str) -> None:
    n = len(text) + len(prefix)
    if n > config.max_prompt:
        what = f"{what} and prefix" if prefix else what
        raise UserError(f"{what}: {n:,} characters{' together' if prefix else ''}; "
                        f"this server takes at most {config.max_prompt:,}")


def check_limits(body, served: ServedModel, c: ServeConfig) -> None:
    """What a request asks for against this server's limits, naming its fields; each mode is
    bound by what it writes (an acrostic by its lines, a verse form by its clauses, not by a
    length it does not use)."""
    _check_prompt(c, "prompt", body.prompt, body.prefix)
    if body.samples > c.max_samples:
        raise UserError(f"samples {body.samples:,}: this server makes at most "
                        f"{c.max_samples} samples a request")
    if body.n_lines is not None and body.n_lines > c.max_samples:
        raise UserError(f"n_lines {body.n_lines:,}: this server makes at most "
                        f"{c.max_samples} lines a request")
    if (body.novel_only or body.form is not None) and body.n_lines is None:
        raise UserError("novel_only and form go with n_lines (N whole lines)")
    if body.acrostic:
        heads = body.acrostic.strip()
        if not heads:
            raise UserError("acrostic: give the characters that head its lines")
        if len(heads) > c.max_acrostic:
            raise UserError(f"acrostic: {len(heads):,} characters; this server takes at "
                            f"most {c.max_acrostic}")
        per_line = body.line_length or served.writer.config.acrostic_length
        words = len(heads) * (per_line + 1)
        if words > c.max_length:
            raise UserError(f"acrostic: {len(heads)} lines of {per_line} words (line_length)"
                            f" and a mark are {words:,} words; this server writes at most "
                            f"{c.max_length:,} words a request")
        return
    form = verse_form(body.form) if body.n_lines is not None else None
    if form is not None:
        words = (form[0] + 1) * form[1]
        if words > c.max_length:
            raise UserError(f"form {form[0]}x{form[1]}: {words:,} words a line (its "
                            f"clauses and their marks); this server writes at most "
                            f"{c.max_length:,} words a line")
    elif body.length > c.max_length:
        raise UserError(f"length {body.length:,}: this server writes at most "
                        f"{c.max_length:,} words {'a line' if body.n_lines else 'a request'}")


def create_app(models: dict, config: ServeConfig | None = None):
    """The ASGI application: the page, its files, and the JSON API, behind the body limit and
    the host check."""
    from fastapi import FastAPI

    from . import apischema

    config = config or ServeConfig()
    ids = list(models)
    api = Api(models, config, (apischema.continue_body(ids, config),
                               apischema.next_body(ids, config)))
    # Swagger's page loads from a CDN: the schema is served, the pages that need the internet
    # are not.
    app = FastAPI(title="wordlstm", version=__version__, docs_url=None, redoc_url=None,
                  default_response_class=_json_response_class(),
                  description="Continue text in the style a model learned; co-write with it.")
    app.state.admission = api.admission
    _add_error_handlers(app, api)
    _add_routes(app, api)
    outer = HostCheck(BodyLimit(app, config.max_body), config)
    outer.state = app.state
    return outer


def _error_answer(status: int, message: str, headers=None):
    return _json_response_class()({"error": visible(message)}, status_code=status,
                                  headers=headers)


def _add_error_handlers(app, api: Api) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def by_table(request, exc):
        return _error_answer(*api.error(exc))

    for kind in (Exception, *(kind for kind, _ in ERROR_STATUS)):
        app.add_exception_handler(kind, by_table)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return _error_answer(422, validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return _error_answer(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


def validation_message(errors) -> str:
    """pydantic's first complaint about a body as one line naming the field (422)."""
    from .apischema import RENAMED

    first = errors[0] if errors else {}
    kind, loc = first.get("type"), [x for x in first.get("loc", ()) if x != "body"]
    if kind == "json_invalid":
        why = str((first.get("ctx") or {}).get("error") or "it does not parse")
        at = f" (at character {loc[0] + 1})" if loc and isinstance(loc[0], int) else ""
        return f"the body is not JSON: {why}{at}"
    where = ".".join(str(x) for x in loc)
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "string_unicode":  # a lone surrogate where pydantic reads it
        where = where or f"field name {first.get('input')!r}"
        msg = "not text (a lone surrogate); send UTF-8 text"
    elif kind == "extra_forbidden":
        msg = f"no such field; it is {RENAMED[where]} now" if where in RENAMED else "no such field"
    elif kind in ("model_attributes_type", "missing") and not where:
        msg = "the body must be a JSON object of fields" + (" (it is empty)" if kind == "missing"
                                                             else "")
    return f"{where}: {msg}" if where else msg


def _add_routes(app, api: Api) -> None:
    from fastapi.responses import FileResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.requests import Request as HTTPRequest

    from .apischema import SSE_EVENT, CardAnswer, ContinueAnswer, HistoryAnswer, NextAnswer
    from .apischema import documented as doc

    # pydantic models made at run time (apischema): mypy cannot use them as types.
    ContinueBody, NextBody = api.continue_body, api.next_body

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/model", summary="The models this server has, its limits and the defaults",
             responses=doc(421))
    async def model_info():
        return api.info()

    @app.get("/api/card", summary="A model's card (its README.md, Markdown)",
             responses=doc(400, 421, ok={"model": CardAnswer}))
    async def card(model: str | None = None):
        return api.card(model)

    @app.get("/api/history", summary="A model's training: its epochs' figures (history.json)",
             responses=doc(400, 421, ok={"model": HistoryAnswer}))
    async def history(model: str | None = None):
        return api.history(model)

    @app.post("/api/next", summary="The model's likeliest next words after a text",
              responses=doc(400, 413, 421, 422, 503, ok={"model": NextAnswer}))
    async def next_words(body: NextBody, http: HTTPRequest):  # type: ignore[valid-type]
        return await api.next_words(body, http)

    @app.post("/api/continue", summary="Continue a prompt (as `continue-text --json`)",
              responses=doc(400, 413, 421, 422, 503, ok={
                  "model": ContinueAnswer,
                  "content": {"text/event-stream": {"schema": SSE_EVENT}}}))
    async def continue_(body: ContinueBody, http: HTTPRequest):  # type: ignore[valid-type]
        got = await api.continue_(body, http)
        if not body.stream:  # type: ignore[attr-defined]
            return got
        return StreamingResponse(got, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def verse_form(form: str | None) -> tuple[int, int] | None:
    """(clause length, clauses) of a request's `form` ("5x4"; None or "free": none), as the
    schema's pattern has it, checked under the API's name."""
    if form is None or form == "free":
        return None
    match = FORM.fullmatch(form)
    if match is None:
        raise UserError(f"form {form!r}: write it as CLAUSE_LENGTHxCLAUSES, e.g. 5x4 or 7x8, "
                        "or free")
    length, clauses = int(match[1]), int(match[2])
    if not (1 <= length <= MAX_LINE_LENGTH and 1 <= clauses <= MAX_CLAUSES):
        raise UserError(f"form {form!r}: 1-{MAX_LINE_LENGTH} characters a clause and "
                        f"1-{MAX_CLAUSES} clauses")
    return length, clauses


def visible(text: str) -> str:
    """`text` that encodes as UTF-8: a lone surrogate is shown as its escape (\\ud800)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def _disconnected(receive) -> None:
    """Returns when the client has gone (after the body, receive only tells that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _or_gone(receive, awaitable):
    """`awaitable`'s result; if the client disconnects first, it is cancelled and Cancelled
    raised. Admission, generating: nothing goes on for a client that left."""
    work = asyncio.ensure_future(awaitable)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the request's task is stopped: so is its work
        work.cancel()
        raise
    finally:
        gone.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise Cancelled("the client went away")
    return work.result()


async def _sse(events: asyncio.Queue, answer, stop: Budget, error):
    """A generation's events as Server-Sent Events: `word` events (those that came meanwhile
    in one write), then `done` with the JSON answer, or `error` (`error(exc)`: its status and
    message, as a JSON answer has them). If the client goes away, `stop` ends the generation
    (and so frees its slot)."""
    try:
        while True:
            kind, value = await events.get()
            chunk = []
            while kind == "word":
                chunk.append(_event("word", value))
                if events.empty():
                    break
                kind, value = events.get_nowait()
            if chunk:
                yield b"".join(chunk)
            if kind == "word":
                continue
            if isinstance(value, Exception):
                status, message, _ = error(value)
                yield _event("error", {"error": message, "status": status})
            else:
                yield _event("done", answer(value))
            return
    finally:
        stop.cancelled = True


def _of(options: dict, config_class) -> dict:
    names = {f.name for f in fields(config_class)}
    return {k: v for k, v in options.items() if k in names}


def _event(kind: str, data: dict) -> bytes:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return f"event: {kind}\ndata: {text}\n\n".encode("utf-8", "backslashreplace")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, and is never held whole
    (read up to the limit, then handed on in one piece)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _reject(send, self.limit)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await _reject(send, self.limit)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def _reject(send, limit: int) -> None:
    body = json.dumps({"error": f"the request body is over {limit:,} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _json_response_class():
    from fastapi.responses import JSONResponse

    class JSONSafe(JSONResponse):
        """JSON that always encodes: a lone surrogate anywhere is written as its escape."""

        def render(self, content) -> bytes:
            return json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8", "backslashreplace")

    return JSONSafe


_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _host_name(host: str) -> str | None:
    """The name (lower case, no port, no trailing dot; an IPv6 address without brackets) a
    Host header gives, or None if it is not one."""
    host = host.strip().lower()
    if host.startswith("["):
        address, _, port = host[1:].partition("]")
        if port and not (port.startswith(":") and port[1:].isdigit()):
            return None
        try:
            return str(ipaddress.IPv6Address(address))
        except ValueError:
            return None
    name, colon, port = host.partition(":")
    if colon and not (port.isdigit() and port.isascii()):
        return None
    name = name.removesuffix(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in name.split(".")):
        return None
    return name


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheck:
    """ASGI middleware against DNS rebinding: a page on another site whose name its owner
    points at this machine would otherwise drive the API and read its answers. Bound to
    loopback, the server answers only to loopback names and addresses; bound elsewhere, also
    to IP addresses (no site can own one), its own host name and `allowed_hosts`. Any other
    Host gets 421 with a JSON error."""

    state: Any  # the application's state (create_app sets it), as FastAPI apps have

    def __init__(self, app, config: ServeConfig):
        self.app = app
        name = _host_name(config.host) or config.host
        self.loopback = _is_loopback(name)
        self.names = set(config.allowed_hosts)
        if not self.loopback and not _is_ip(name):  # bound to a name: that name
            self.names.add(name)

    def allows(self, name: str) -> bool:
        if "*" in self.names or name in self.names or _is_loopback(name):
            return True
        return not self.loopback and _is_ip(name)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or "*" in self.names:
            return await self.app(scope, receive, send)
        hosts = [v for k, v in scope.get("headers") or [] if k == b"host"]
        raw = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        name = _host_name(raw) if raw is not None else None
        if name is not None and self.allows(name):
            return await self.app(scope, receive, send)
        if raw is None:
            why = "a request needs one Host header"
        else:
            why = f"Host {raw!r} is not a name of this server"
        where = ("localhost and loopback addresses (127.0.0.1, [::1])" if self.loopback else
                 "its IP addresses, localhost" + "".join(f", {n}" for n in sorted(self.names)))
        message = (f"{why}: it answers to {where} only, so that a page on another site cannot "
                   "use it (DNS rebinding); serve with --allow-host NAME to answer to a name")
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"error": visible(message)}, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def serve(model_dirs: list[str | None], config: ServeConfig, open_browser: bool = False,
          log=print) -> None:
    """Load the models, bind, print the address, and serve until Ctrl-C."""
    import socket

    import uvicorn

    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {config.host}: anyone who can reach this machine can use "
              "the model (there is no login); the default 127.0.0.1 serves this machine only",
              file=sys.stderr)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as err:
        raise UserError(f"cannot listen on {config.host}:{config.port}: {err.strerror}") from None
    models = load_models(model_dirs, config.batch, log)  # after the port is ours
    app = create_app(models, config)
    sock.listen(2048)  # connections wait in the backlog from now on, not refused
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"serving {', '.join(models)} at {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
