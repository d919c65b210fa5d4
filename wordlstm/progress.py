"""Progress of the long steps inside a command (fitting the decoding after training took
longer than an epoch, in silence): a tqdm bar with rate and ETA on a terminal, a log line
every `PROGRESS_EVERY` seconds otherwise, nothing outside `reporting()`.

A command opens `reporting(log, terminal)` once; library code marks its loops with
`step(desc, total, unit)` without being handed anything (the default is silence, so
library callers, threads and the server see no change).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time

PROGRESS_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal
SHOW_AFTER = 2.0  # a terminal bar appears only for steps that last longer than this

_reporter: contextvars.ContextVar = contextvars.ContextVar("wordlstm_progress", default=None)


@contextlib.contextmanager
def reporting(log, terminal: bool):
    """Inside: `step` reports through `log` (lines) or a terminal bar."""
    token = _reporter.set((log, terminal))
    try:
        yield
    finally:
        _reporter.reset(token)


class _Step:
    def __init__(self, desc: str, total: int, unit: str, log, terminal: bool):
        self.desc, self.total, self.unit, self.log, self.terminal = desc, total, unit, log, terminal
        self.t0 = self.shown = time.perf_counter()
        self.done, self.bar = 0, None

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.terminal:
            if self.bar is None and now - self.t0 >= SHOW_AFTER:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit=self.unit, desc=self.desc,
                                file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                                leave=False, initial=self.done - n)
            if self.bar is not None:
                self.bar.update(n)
        elif now - self.shown >= PROGRESS_EVERY:
            self.shown = now
            share = self.done / max(self.total, 1)
            rate = self.done / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            self.log(f"{self.desc}: {share:.0%} of {self.total:,} {self.unit}, "
                     f"{rate:,.1f} {self.unit}/s, {_duration(left)} left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


@contextlib.contextmanager
def step(desc: str, total: int, unit: str):
    """Yield `advance(n=1)` for a loop of `total` `unit`s (a no-op outside `reporting`)."""
    reporter = _reporter.get()
    if reporter is None:
        yield lambda n=1: None
        return
    s = _Step(desc, total, unit, *reporter)
    try:
        yield s.advance
    finally:
        s.close()
