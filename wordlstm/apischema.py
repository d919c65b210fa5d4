"""The JSON API's bodies (pydantic), derived from the library's dataclasses.

`/api/continue` takes exactly the fields of `writer.Request` and `generate.SamplingConfig`,
under their names and with their defaults, read from the dataclasses themselves: a field
added to either is in the API (and its OpenAPI schema) at once, and a message from the
library names a field the client knows. `FIELDS` only adds what a schema says that a
dataclass cannot: a description and the range the library (or the server's limits) checks,
so that a fuzzer of the schema finds any place where the two disagree.

Imported by `serve.create_app` only: pydantic is not loaded by the commands that do not serve.
"""

from __future__ import annotations

import typing
from dataclasses import fields

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from .sampling import MAX_DRY_BASE, MIN_TEMPERATURE, SamplingConfig
from .serve import FORM, MAX_BIAS, MAX_LINE_LENGTH
from .writer import SEED_MAX, Request

# Field names this API had before it took the library's (a client still sending them is told).
RENAMED = {"lines": "n_lines", "dry": "dry_multiplier"}


def _schema(**extra) -> dict:
    """Ranges the schema states and the library (or the limits) enforces in its own words: a
    request outside them gets 400 naming the field, not pydantic's 422."""
    return {"json_schema_extra": extra}


# What pydantic checks itself (ge/le: 422) and what the schema only states (_schema: the
# library's 400), per field; `limits` are the server's (ServeConfig) for those it bounds.
def _fields(limits) -> dict[str, dict]:
    return {
        "prompt": {"description": "Text to continue (or a line's start).",
                   **_schema(maxLength=limits.max_prompt)},
        "length": {"ge": 1, "description": "Words to generate (the most per line with n_lines; "
                   "not used by acrostic or a verse form).",
                   **_schema(maximum=limits.max_length)},
        "until": {"description": "Stop once the text ends with this."},
        "seed": {"ge": 0, "le": SEED_MAX,
                 "description": "Same seed, same text (none: drawn and returned)."},
        "samples": {"ge": 1, "description": "Continuations, made as one batch.",
                    **_schema(maximum=limits.max_samples)},
        "prefix": {"description": "Fed to the model first, not returned.",
                   **_schema(maxLength=limits.max_prompt)},
        "acrostic": {"description": "藏头诗: one line per character.",
                     **_schema(maxLength=limits.max_acrostic)},
        "line_length": {"ge": 2, "le": MAX_LINE_LENGTH, "description": "Words per acrostic line."},
        "n_lines": {"ge": 1, "description": "Make N whole lines (line models).",
                    **_schema(maximum=limits.max_samples)},
        "novel_only": {"description": "With n_lines: only lines not in the training file."},
        "form": {"description": "With n_lines on a poem model: 5x4, 7x8, ... (characters a "
                 "clause x clauses) or free.", **_schema(pattern=f"^(free|{FORM.pattern})$")},
        "temperature": _schema(minimum=MIN_TEMPERATURE),
        "top_k": _schema(minimum=0),
        "top_p": _schema(exclusiveMinimum=0, maximum=1),
        "min_p": {"description": "Min-p truncation (0: off).",
                  **_schema(minimum=0, exclusiveMaximum=1)},
        "typical_p": {"description": "Locally typical sampling (1: off).",
                      **_schema(exclusiveMinimum=0, maximum=1)},
        "dry_multiplier": {"ge": 0, "le": MAX_BIAS, "description": "DRY loop control (0: off)."},
        "dry_base": {"ge": 0, "le": MAX_DRY_BASE},
        "dry_allowed": _schema(minimum=0),
        "dry_range": _schema(minimum=1),
        "dry_breakers": {"description": "Marks no repeat runs across (a paragraph end always)."},
        # Nats added to log-probabilities (float32 in the network) and divided by the
        # temperature: far beyond any effect they overflowed (a 500)
        "paragraph_bias": {"ge": -MAX_BIAS, "le": MAX_BIAS},
        "punct_bias": {"ge": -MAX_BIAS, "le": MAX_BIAS},
        "no_repeat_ngram": _schema(minimum=0),
        "repetition_penalty": {"ge": 0, "le": MAX_BIAS},
        "penalty_window": _schema(minimum=1),
        "context": {"description": "carry or window", **_schema(enum=["carry", "window"])},
        "rerank": {"description": "Clause candidates to choose among (0: off).",
                   **_schema(minimum=0, maximum=64)},
        "clause_words": _schema(minimum=1, maximum=256),
        "rerank_pmi": _schema(minimum=0, maximum=1),
        "min_count": {"description": "Never write words seen fewer times.", **_schema(minimum=0)},
        "cache": {"description": "Mix in the model's continuous cache."},
        "ngram": {"description": "Mix in the model's word n-gram."},
        "ngram_weight": {"description": "The n-gram's share (-1: the model's fitted one).",
                         **_schema(anyOf=[{"const": -1}, {"minimum": 0, "exclusiveMaximum": 1}])},
        "adapt": {"description": "Adapt the head to the prompt first."},
    }


class Body(BaseModel):
    """A request body: the schema's types, strictly (false is not 0, "10" not 10; no NaN or
    Infinity, which Python's JSON reads and JSON has none), and no field it does not name."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data):
        """An integer written as a float (2.0) is that integer, as JSON Schema has it."""
        if not isinstance(data, dict):
            return data
        ints = {n for n, f in cls.model_fields.items() if f.annotation in (int, int | None)}
        return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer()
                and abs(v) < 2**63 else v for k, v in data.items()}

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, value):
        if isinstance(value, str):
            for i, c in enumerate(value):
                if "\ud800" <= c <= "\udfff":
                    raise ValueError(f"character {i + 1} is a lone surrogate "
                                     f"(U+{ord(c):04X}), not text; send UTF-8 text")
        return value


def _model_field(ids: list[str]):
    return (str | None, Field(None, description="Model id (GET /api/model); default: the first.",
                              **_schema(enum=[*ids, None])))


def continue_body(ids: list[str], limits) -> type[Body]:
    """`/api/continue`'s body: every field of Request and SamplingConfig (their names, types
    and defaults; a length no larger than the server writes), the model and `stream`."""
    extra = _fields(limits)
    spec: dict = {"model": _model_field(ids)}
    for config_class in (Request, SamplingConfig):
        types = typing.get_type_hints(config_class)
        for f in fields(config_class):
            default = min(f.default, limits.max_length) if f.name == "length" else f.default
            spec[f.name] = (types[f.name], Field(default, **extra.get(f.name, {})))
    spec["stream"] = (bool, Field(False, description="Answer with Server-Sent Events: a `word` "
                                  "event per word, then `done` with the JSON answer (or `error`)."))
    return create_model("ContinueBody", __base__=Body, __doc__="What `continue-text` takes, "
                        "under the library's field names; defaults are its own.", **spec)


def next_body(ids: list[str], limits) -> type[Body]:
    """`/api/next`'s body: a text and how many likeliest next words."""
    return create_model(
        "NextBody", __base__=Body, model=_model_field(ids),
        text=(str, Field("", description="The text so far.", **_schema(maxLength=limits.max_prompt))),
        prefix=(str, Field("", **_schema(maxLength=limits.max_prompt))),
        k=(int, Field(5, description="How many next words.",
                      **_schema(minimum=1, maximum=limits.max_top))))


class ErrorAnswer(BaseModel):
    error: str = Field(description="What was wrong, naming the field.")


class ContinueAnswer(BaseModel):
    prompt: str
    model: str
    seed: int
    texts: list[str]
    words: list[int]
    unknown: list[str]
    split: list[str]
    seconds: float
    dropped_as_not_novel: int | None = Field(None, description="With n_lines.")


class NextWord(BaseModel):
    text: str
    probability: float


class NextAnswer(BaseModel):
    model: str
    words: list[NextWord]
    unknown: list[str]
    split: list[str]


class CardAnswer(BaseModel):
    model: str
    card: str | None = Field(description="Markdown (card.py writes it; none if unreadable).")


class HistoryAnswer(BaseModel):
    model: str
    best_epoch: int | None = Field(description="The epoch whose weights the model kept.")
    epochs: list[dict[str, float]] = Field(description="Per epoch: epoch, loss, "
                                           "val_bits_per_char, learning_rate, targets_per_s, ...")


def _sse(kind: str, data: dict) -> dict:
    return {"type": "object", "required": ["event", "data"],
            "properties": {"event": {"const": kind},
                           "data": {"type": "string", "contentMediaType": "application/json",
                                    "contentSchema": data}}}


SSE_EVENT = {"description": "Each event of a streamed answer", "oneOf": [
    _sse("word", {"type": "object", "required": ["sample", "text"],
                  "properties": {"sample": {"type": "integer"}, "text": {"type": "string"}}}),
    _sse("done", {"$ref": "#/components/schemas/ContinueAnswer"}),
    _sse("error", {"type": "object", "required": ["error", "status"],
                   "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}})]}

WHY = {400: "A request this server will not run (the field is named)",
       413: "The request body is too large",
       421: "Not a host name of this server (DNS rebinding protection)",
       422: "A field of the wrong type or range, or a body that is not JSON",
       503: "Busy, or stopped (its time limit, the server stopping): retry after Retry-After "
            "seconds"}


def documented(*codes, ok=None) -> dict:
    """The answers a route documents: these error statuses, and `ok` for 200."""
    out: dict = {c: {"model": ErrorAnswer, "description": WHY[c]} for c in codes}
    if ok is not None:
        out[200] = ok
    return out
