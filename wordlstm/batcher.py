"""Continuous batching: many requests' continuations advanced together, one network step
for all of them per word.

A server's requests arrive at different times with different prompts, lengths and sampling
settings. `Batcher` runs one worker thread per model that keeps every active request (a
generate.Streams) in one batch: each tick it feeds every row one token (the next prompt token
while a request is still reading its prompt, its last chosen word after that), runs the
numpy step model once on the stacked rows (a long prompt is read up to `prefill` tokens a
tick beforehand, on its own rows), decodes the rows that are ready with one matrix
product, and lets each group choose its words with its own settings and random generator.
One step for 32 rows costs about 7x one row (bench/RESULTS.md, `bench/serve.py`), so
concurrent users share the machine instead of queueing for it. A request alone in the batch
gets exactly the words `continue-text` writes with the same seed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .budget import Budget, Cancelled, Stopped
from .generate import Streams


@dataclass(eq=False)
class Job:
    """One request's group in the batch, and how the worker reports back (in its thread)."""

    group: Streams
    on_step: Callable[[Job, np.ndarray], None] | None = None  # after each step's choices
    on_done: Callable[[Exception | None], None] = lambda err: None  # once, at the end
    budget: Budget = field(default_factory=Budget)  # time limit and cancel flag
    on_start: Callable[[], None] | None = None  # when it joins the batch (its clock starts)
    inputs: np.ndarray | None = field(default=None, repr=False)  # prompt matrix [rows, T]
    fed: int = 0  # prompt columns read so far
    state: list | None = field(default=None, repr=False)
    y: np.ndarray | None = field(default=None, repr=False)  # outputs after the last token
    nxt: np.ndarray | None = field(default=None, repr=False)  # the ids chosen last
    closed: bool = False  # reported (finished, failed or cancelled) and out of the batch

    @property
    def prompt(self) -> np.ndarray:
        """`inputs`, which Batcher.submit sets before the job joins the batch."""
        assert self.inputs is not None, "the job has not been submitted"
        return self.inputs

    @property
    def reading(self) -> bool:
        return self.fed < self.prompt.shape[1]

    def next_ids(self) -> np.ndarray:
        """What the job feeds next: its next prompt column, or the ids it chose last."""
        if self.reading:
            return self.prompt[:, self.fed]
        assert self.nxt is not None, "a job past its prompt has chosen its next ids"
        return self.nxt


class Batcher:
    """One worker thread that generates every submitted Job of one model in one batch."""

    def __init__(self, generator, max_rows: int = 64, prefill: int = 32):
        self.gen = generator
        self.max_rows = max_rows  # rows (streams) in one batch; more jobs wait their turn
        self.prefill = prefill  # prompt tokens a job may read per tick
        self.pending: queue.Queue[Job | None] = queue.Queue()
        self.active: list[Job] = []
        self._held: Job | None = None  # taken from `pending`, waiting for rows to come free
        self._closing = threading.Event()
        self.ticks = 0
        self.rows_stepped = 0  # sum over ticks of rows in the batch (mean batch = / ticks)
        self._thread = threading.Thread(target=self._run, name="wordlstm-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        if job.group.cfg.context != "carry":  # the caller's bug (Writer.batchable), not a user's
            raise ValueError("the batcher carries LSTM state: context must be 'carry'")
        job.inputs = job.group.prompt_matrix()
        self.pending.put(job)
        return job

    def close(self) -> None:
        self._closing.set()  # seen at the next tick, even with the batch full
        self.pending.put(None)  # wakes a worker waiting for work
        self._thread.join(timeout=10)

    @property
    def mean_batch(self) -> float:
        return self.rows_stepped / max(self.ticks, 1)

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._admit():
                if not self.active:
                    continue
                try:
                    self._tick()
                except Exception as err:  # noqa: BLE001 - a failed step fails its jobs, not the server
                    for job in self.active:
                        self._finish(job, err)
                    self.active = []
        finally:  # however the worker ends, no request is left waiting for it
            self._shut_down()

    def _admit(self) -> bool:
        """Move waiting jobs into the batch while it has rows free (blocking while there is
        nothing to do); False once closed. A job that does not fit waits for the batch to
        shrink; its `on_start` runs when it joins."""
        if self._closing.is_set():
            return False  # _run shuts down
        rows = sum(len(j.group) for j in self.active)
        while rows < self.max_rows or not self.active:
            job, self._held = self._held, None
            if job is None:
                try:
                    job = self.pending.get(block=not self.active)
                except queue.Empty:
                    return True
            if job is None:
                return False
            if self.active and rows + len(job.group) > self.max_rows:
                self._held = job  # first in line when rows come free
                return True
            try:
                job.budget.check()  # its client may have gone while it waited
                if job.on_start is not None:
                    job.on_start()
            except Exception as err:  # noqa: BLE001 - fails that job alone
                self._finish(job, err)
                continue
            self.active.append(job)
            rows += len(job.group)
        return True

    def _shut_down(self) -> None:
        """Every job, in the batch or still waiting for it, is told the server stops."""
        waiting = [self._held] if self._held is not None else []
        self._held = None
        while True:
            try:
                job = self.pending.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                waiting.append(job)
        for job in self.active + waiting:
            self._finish(job, Cancelled("the server is shutting down"))
        self.active = []

    def _tick(self) -> None:
        now = time.monotonic()
        for job in self.active:
            try:
                job.budget.check(now)
            except Stopped as err:
                self._finish(job, err)
        self.active = [j for j in self.active if not j.closed]
        ready = [j for j in self.active if not j.reading]
        if ready:
            logp = self.gen.logprobs(np.concatenate([j.y for j in ready]))
            start = 0
            for job in ready:
                rows = logp[start:start + len(job.group)]
                start += len(job.group)
                self._choose(job, rows)
        self.active = [j for j in self.active if not j.closed]
        # Chunked prefill: a job with a long prompt reads up to `prefill` tokens a tick (its
        # own rows only, cheap), so its first word does not wait one whole batch step per
        # prompt token; the last prompt token goes with the batch.
        for _ in range(self.prefill - 1):
            reading = [j for j in self.active if j.prompt.shape[1] - j.fed > 1]
            if not reading:
                break
            self._step(reading, [j.prompt[:, j.fed] for j in reading])
        if self.active:
            self._step(self.active, [j.next_ids() for j in self.active])
            self.ticks += 1
            self.rows_stepped += sum(len(j.group) for j in self.active)

    def _step(self, jobs: list[Job], ids: list[np.ndarray]) -> None:
        """One network step for `jobs` stacked (their `ids`), each keeping its own rows."""
        h_c = [job.state or self.gen.zero_state(len(job.group)) for job in jobs]
        state = [tuple(np.concatenate([s[layer][k] for s in h_c]) for k in (0, 1))
                 for layer in range(len(h_c[0]))]
        h, state = self.gen.hidden(np.concatenate(ids), state)
        start = 0
        for job in jobs:
            n = len(job.group)
            job.y = job.group.output(h[start:start + n])  # its own head, if adapted
            job.state = [(h[start:start + n], c[start:start + n]) for h, c in state]
            start += n
            if job.reading:
                job.group.observe(job.fed, job.y)  # the prompt's words go into the cache
                job.fed += 1

    def _choose(self, job: Job, rows: np.ndarray) -> None:
        """One step of one job; a finished or failed job is reported and closed."""
        try:
            nxt = job.group.choose(rows, job.y)
            if job.on_step is not None:
                job.on_step(job, nxt)
        except Exception as err:  # noqa: BLE001 - reported to the request that caused it
            return self._finish(job, err)
        if job.group.finished:
            return self._finish(job, None)
        job.nxt = nxt

    @staticmethod
    def _finish(job: Job, err: Exception | None) -> None:
        if job.closed:
            return
        job.closed = True
        try:
            job.on_done(err)
        except Exception:  # noqa: BLE001, S110 - a reporting failure must not stop the worker
            pass
