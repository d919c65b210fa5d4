"""A request's budget: a deadline and a cancel flag, checked by whatever generates for it.

There is one mechanism: the caller passes `check` (here `Budget.check`) to the generation
(Generator.generate, Reranker.generate, the Writer's modes, StepModel.run) and it is called
once a word and every 32 tokens of a prompt read; a raised `Stopped` ends the generation.
The server's batcher checks each job's budget once a tick in the same way.
"""

from __future__ import annotations

import time

from .errors import UserError


class Stopped(UserError):
    """A generation stopped from outside: its time ran out, or its request went away."""


class TimeLimitExceeded(Stopped):
    """A generation ran past its time limit (a server's, per request)."""

    def __init__(self, seconds: float):
        super().__init__(f"stopped at the time limit ({seconds:g} s a request); ask for fewer "
                         "words or samples, or try again when the server is less busy")
        self.seconds = seconds


class Cancelled(Stopped):
    """The request went away (its client disconnected) before it finished."""


class Budget:
    """A deadline and a cancel flag for one request's generation, set by whoever serves it."""

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.cancelled = False  # set from any thread

    def check(self, now: float | None = None) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")
        if self.deadline is not None and (now or time.monotonic()) > self.deadline:
            raise TimeLimitExceeded(self.seconds or 0.0)
