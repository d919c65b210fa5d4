"""Continuous batching: requests generated together give each request's own text."""

import threading
import time

import pytest

from wordlstm.batcher import Batcher, Job
from wordlstm.budget import Budget, Cancelled, TimeLimitExceeded
from wordlstm.sampling import SamplingConfig
from wordlstm.writer import Writer


@pytest.fixture(scope="module")
def writer(model_dir):
    return Writer.load(model_dir)


def submit(batcher, group, **kw):
    done = threading.Event()
    outcome = {}

    def on_done(err):
        outcome["err"] = err
        done.set()

    job = batcher.submit(Job(group, on_done=on_done, **kw))
    return job, done, outcome


def test_batched_groups_write_what_each_writes_alone(writer):
    """Groups of different prompts, sizes, lengths and settings, submitted together, give
    the same ids as Generator.generate gives each of them alone with the same seed."""
    requests = [("老王在院子里", 1, 30, SamplingConfig()),
                ("小李笑道：", 3, 12, SamplingConfig(temperature=0.7, top_p=0.9)),
                ("张先生和李太太一起在书房", 2, 25, SamplingConfig(greedy=True)),
                ("", 1, 40, SamplingConfig(top_k=5, dry_multiplier=0.0)),
                ("小红在河边散步。" * 30, 2, 20, SamplingConfig())]  # read in chunks
    alone = []
    for k, (prompt, n, length, cfg) in enumerate(requests):
        ids, _ = writer.continuation(prompt)
        alone.append(writer.gen.generate([ids] * n, length, cfg, seed=k))
    batcher = Batcher(writer.gen)
    try:
        runs = []
        for k, (prompt, n, length, cfg) in enumerate(requests):
            ids, _ = writer.continuation(prompt)
            group = writer.gen.group([ids] * n, length, cfg, seed=k)
            runs.append((group, *submit(batcher, group)[1:]))
        for _group, done, outcome in runs:
            assert done.wait(30)
            assert outcome["err"] is None
        assert [g.out for g, _, _ in runs] == alone
        assert batcher.mean_batch > 1.5  # they really shared steps
    finally:
        batcher.close()


def test_a_long_prompt_is_read_in_chunks(writer):
    ids, _ = writer.continuation("小红在河边散步。" * 30)
    assert len(ids) >= 150
    batcher = Batcher(writer.gen, prefill=32)
    try:
        group = writer.gen.group([ids], 1, SamplingConfig(), seed=0)
        _, done, outcome = submit(batcher, group)
        assert done.wait(30) and outcome["err"] is None
        assert batcher.ticks <= len(ids) // 32 + 2  # not one tick a prompt token
    finally:
        batcher.close()
    assert group.out == writer.gen.generate([ids], 1, SamplingConfig(), seed=0)


def test_a_request_joining_later_is_unaffected(writer):
    ids, _ = writer.continuation("小红听了，")
    alone = writer.gen.generate([ids], 60, SamplingConfig(), seed=9)
    batcher = Batcher(writer.gen)
    try:
        first = writer.gen.group([ids] * 2, 200, SamplingConfig(), seed=1)
        _, done1, _ = submit(batcher, first)
        time.sleep(0.02)
        late = writer.gen.group([ids], 60, SamplingConfig(), seed=9)
        _, done2, outcome = submit(batcher, late)
        assert done2.wait(30) and done1.wait(30)
        assert outcome["err"] is None and late.out == alone
    finally:
        batcher.close()


def test_stream_steps_and_until(writer):
    """on_step sees every step; a stream that stops early still ends the group cleanly."""
    ids, stop = writer.continuation("老王", until="。")
    group = writer.gen.group([ids] * 2, 80, SamplingConfig(), seed=4, stop=stop)
    seen = []
    batcher = Batcher(writer.gen)
    try:
        _, done, outcome = submit(batcher, group, on_step=lambda job, nxt: seen.append(list(nxt)))
        assert done.wait(30) and outcome["err"] is None
    finally:
        batcher.close()
    assert len(seen) == group.steps
    assert [s[0] for s in seen][:len(group.out[0])] == group.out[0]
    assert all(writer.text(o).endswith("。") or len(o) == 80 for o in group.out)


def test_cancel_time_limit_and_a_failing_request(writer):
    """A cancelled or timed-out job is reported and leaves; one whose callback raises fails
    alone; the others finish."""
    ids, _ = writer.continuation("阿明")
    batcher = Batcher(writer.gen)
    try:
        cancel = Budget()
        long = writer.gen.group([ids], 100000, SamplingConfig(), seed=1)
        _, d1, o1 = submit(batcher, long, budget=cancel)
        slow = writer.gen.group([ids], 100000, SamplingConfig(), seed=2)
        _, d2, o2 = submit(batcher, slow, budget=Budget(0.2))

        def boom(job, nxt):
            raise RuntimeError("callback failed")

        bad = writer.gen.group([ids], 50, SamplingConfig(), seed=3)
        _, d3, o3 = submit(batcher, bad, on_step=boom)
        fine = writer.gen.group([ids], 50, SamplingConfig(), seed=4)
        _, d4, o4 = submit(batcher, fine)
        time.sleep(0.1)
        cancel.cancelled = True
        for d in (d1, d2, d3, d4):
            assert d.wait(30)
        assert isinstance(o1["err"], Cancelled)
        assert isinstance(o2["err"], TimeLimitExceeded) and "time limit" in str(o2["err"])
        assert isinstance(o3["err"], RuntimeError)
        assert o4["err"] is None and len(fine.out[0]) == 50
        assert not batcher.active
    finally:
        batcher.close()


def test_a_full_batch_holds_new_jobs_and_their_clock_starts_when_they_join(writer):
    """Rows beyond max_rows wait their turn; a job's on_start (where a server starts its
    time limit, issue 20 item 23) runs when it joins the batch, not when it was submitted."""
    ids, _ = writer.continuation("阿明")
    batcher = Batcher(writer.gen, max_rows=2)
    try:
        cancel = Budget()
        long = writer.gen.group([ids] * 2, 100000, SamplingConfig(), seed=1)
        started = []
        _, d1, _ = submit(batcher, long, budget=cancel, on_start=lambda: started.append("long"))
        gone = Budget()
        left = writer.gen.group([ids], 5, SamplingConfig(), seed=3)
        _, d3, o3 = submit(batcher, left, budget=gone, on_start=lambda: started.append("left"))
        late = writer.gen.group([ids], 5, SamplingConfig(), seed=2)
        _, d2, o2 = submit(batcher, late, on_start=lambda: started.append("late"))
        time.sleep(0.3)
        assert started == ["long"] and len(batcher.active) == 1  # the batch is full
        gone.cancelled = True  # its client went away while it waited: it never starts
        cancel.cancelled = True
        assert d1.wait(30) and d2.wait(30) and d3.wait(30)
        assert isinstance(o3["err"], Cancelled)
        assert started == ["long", "late"] and o2["err"] is None and len(late.out[0]) == 5
    finally:
        batcher.close()


def test_jobs_waiting_at_shutdown_are_told(writer):
    ids, _ = writer.continuation("阿明")
    batcher = Batcher(writer.gen, max_rows=1)
    long = writer.gen.group([ids], 100000, SamplingConfig(), seed=1)
    _, d1, o1 = submit(batcher, long)
    waiting = writer.gen.group([ids], 5, SamplingConfig(), seed=2)
    _, d2, o2 = submit(batcher, waiting)
    time.sleep(0.2)
    batcher.close()
    assert d1.wait(10) and d2.wait(10)
    assert isinstance(o1["err"], Cancelled) and isinstance(o2["err"], Cancelled)
