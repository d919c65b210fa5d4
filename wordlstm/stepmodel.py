"""The trained network as a plain numpy step function.

The LSTM runs on weights taken from the Keras model (model.core_weights), so generation
and evaluation need no deep-learning framework at all, give identical results whichever
backend trained the model, and avoid `model.predict`'s per-call overhead (~63 ms a word on
CPU). Tests check it against Keras.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free, same values as keras' sigmoid


class StepModel:
    """The trained network as numpy: `step(ids, state) -> (vectors, state)` for a batch."""

    def __init__(self, weights):
        self.embedding = np.ascontiguousarray(weights.embedding, dtype=np.float32)
        self.layers = [(np.asarray(k, np.float32), np.asarray(r, np.float32),
                        np.asarray(b, np.float32)) for k, r, b in weights.lstm]
        self.dense_kernel = np.asarray(weights.dense_kernel, np.float32)
        self.dense_bias = np.asarray(weights.dense_bias, np.float32)
        self.units = [r.shape[0] for _, r, _ in self.layers]

    def with_head(self, kernel: np.ndarray, bias: np.ndarray) -> StepModel:
        """The same network with another head (dynamic evaluation's adapted one)."""
        import copy

        other = copy.copy(self)
        other.dense_kernel, other.dense_bias = kernel, bias
        return other

    def zero_state(self, batch: int):
        return [(np.zeros((batch, u), np.float32), np.zeros((batch, u), np.float32))
                for u in self.units]

    def step(self, ids: np.ndarray, state):
        """One time step for a batch of word ids: (outputs, state)."""
        h, new_state = self.hidden(ids, state)
        return h @ self.dense_kernel + self.dense_bias, new_state

    def hidden(self, ids: np.ndarray, state):
        """One time step through the LSTM layers (keras gate order: i, f, c, o): the last
        layer's output, before the head, and the new state."""
        x = self.embedding[ids]
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.layers, state):
            z = x @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
            x = h
        return x, new_state

    def run(self, windows: np.ndarray, check=None, on_output=None, head=None):
        """Predict from whole windows [B, T] starting at a zero state (what training saw);
        `check()`, if given, is called every 32 steps (a time limit may stop a long read);
        `on_output(t, y)` sees the outputs after each column t; `head(h)`, if given, turns
        the last layer's output into the outputs instead of the model's own head."""
        state = self.zero_state(len(windows))
        y = None
        for t in range(windows.shape[1]):
            if check is not None and t % 32 == 0:
                check()
            if head is None:
                y, state = self.step(windows[:, t], state)
            else:
                h, state = self.hidden(windows[:, t], state)
                y = head(h)
            if on_output is not None:
                on_output(t, y)
        return y, state


class PrefixCache:
    """The network's state after recently read token sequences, so that reading a sequence
    that extends one of them steps only through what was added. Co-writing asks for the next
    words after the text so far again and again, one word longer each time; the end of the
    text may be segmented anew, so the state `tail` tokens before each sequence's end is kept
    too, and the longest cached prefix among the last `lookback` positions is used. Results
    are exactly those of `run` (the same steps, from the same state). Thread-safe; keeps the
    `size` most recent entries."""

    def __init__(self, model: StepModel, size: int = 64, lookback: int = 32, tail: int = 8):
        import collections
        import threading

        self.model, self.size, self.lookback, self.tail = model, size, lookback, tail
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.steps = 0  # network steps taken (for tests and benchmarks)

    def read(self, ids, check=None):
        """The outputs after reading `ids` (one sequence) from a zero state, [1, dim]."""
        ids = [int(i) for i in ids]
        start, y, state = 0, None, self.model.zero_state(1)
        with self._lock:
            for cut in range(len(ids), max(len(ids) - self.lookback, 0), -1):
                hit = self._entries.get(tuple(ids[:cut]))
                if hit is not None:
                    self._entries.move_to_end(tuple(ids[:cut]))
                    start, (y, state) = cut, hit
                    break
        mark = len(ids) - self.tail
        for t in range(start, len(ids)):
            if check is not None and (t - start) % 32 == 0:
                check()
            y, state = self.model.step(np.array([ids[t]], np.int64), state)
            self.steps += 1
            if t + 1 == mark:
                self._keep(ids[:mark], y, state)
        self._keep(ids, y, state)
        return y

    def _keep(self, ids, y, state) -> None:
        with self._lock:
            self._entries[tuple(ids)] = (y, state)
            self._entries.move_to_end(tuple(ids))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
