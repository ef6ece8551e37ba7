"""Adaptive micro-batching: concurrent requests with the same input shape share one model call.

The model runs on the event loop itself (one worker, one core), so while it predicts, new
requests pile up in the sockets; the next batch takes everything that arrived meanwhile. Under
load batches grow by themselves, with one client they stay at one request and add no delay.
``max_delay`` optionally holds a batch a few milliseconds longer when recent batches were larger
than what is queued (more requests are likely on their way).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable

from .inputs import Payload, assemble, split


class PredictError(Exception):
    """The model refused an input (answered with 400, as ``mlflow models serve`` does)."""


class MicroBatcher:
    def __init__(self, predict: Callable, max_batch_size: int = 64, max_delay: float = 0.0,
                 observe: Callable | None = None):
        self.predict = predict
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay = max_delay
        self.observe = observe or (lambda size, seconds: None)
        self.queue: deque = deque()  # (payload, callback(result | exception))
        self.scheduled = False
        self.recent = 1.0  # moving average of batch sizes (requests)
        self.loop = None
        self.timer = None

    def submit(self, payload: Payload, done: Callable) -> None:
        """Queue one request; ``done`` gets its prediction (or a PredictError) later."""
        if payload.key is None or self.max_batch_size == 1:
            self._run([(payload, done)])
            return
        self.queue.append((payload, done))
        if self.timer is not None and len(self.queue) >= self.max_batch_size:
            self.timer.cancel()  # full: no reason to wait any longer
            self.timer = None
            self.scheduled = False
        if not self.scheduled:
            self.scheduled = True
            loop = self.loop or asyncio.get_running_loop()
            self.loop = loop
            # call_soon: every request already readable in this loop iteration joins the batch.
            if self.max_delay and len(self.queue) < min(self.recent, self.max_batch_size) - 0.5:
                self.timer = loop.call_later(self.max_delay, self._drain)
            else:
                loop.call_soon(self._drain)

    def _drain(self) -> None:
        self.scheduled = False
        self.timer = None
        while self.queue:
            key = self.queue[0][0].key
            batch, rest = [], deque()
            rows = 0
            while self.queue and len(batch) < self.max_batch_size:
                item = self.queue.popleft()
                if item[0].key == key:
                    batch.append(item)
                    rows += item[0].n
                else:
                    rest.append(item)
            rest.extend(self.queue)
            self.queue = rest
            self.recent = 0.8 * self.recent + 0.2 * len(batch)
            self._run(batch)

    def _run(self, batch: list) -> None:
        payloads = [p for p, _ in batch]
        t0 = time.perf_counter()
        try:
            result = self.predict(assemble(payloads), payloads[0].params)
        except Exception as e:  # the model's own error: the caller's input was wrong for it
            if len(batch) > 1:
                # One bad request must not fail its neighbours: answer each on its own.
                for item in batch:
                    self._run([item])
                return
            self.observe(1, time.perf_counter() - t0)
            batch[0][1](PredictError(f"{type(e).__name__}: {e}"))
            return
        self.observe(len(batch), time.perf_counter() - t0)
        if len(batch) == 1:
            batch[0][1](result)
            return
        pieces = split(result, [p.n for p in payloads])
        if pieces is None:  # not one prediction per row: this model cannot be batched
            self.max_batch_size = 1
            for item in batch:
                self._run([item])
            return
        for (_, done), piece in zip(batch, pieces):
            done(piece)
