# SPDX-License-Identifier: Apache-2.0
"""Output channels and the worker that feeds each one from its own bounded queue.

The event loop calls :meth:`Channel.offer`, which never blocks: the alert goes into the
channel's queue or, when the queue is full, is counted as dropped. A worker thread per channel
renders and delivers, so a slow or dead destination (an HTTP server that hangs, a program that
stops reading) only ever fills its own queue. Counters per channel account for every alert:

    offered   = queued + dropped_full
    queued    = sent + failed + dropped_shutdown + pending
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from .alert import Alert

__all__ = ["Channel", "Formatter", "DEFAULT_CAPACITY", "LogLimiter"]

log = logging.getLogger("pyfalco.outputs")

#: bound used when outputs_queue.capacity is 0 (Falco's "unbounded"): pyfalco never lets a dead
#: destination grow memory without limit
DEFAULT_CAPACITY = 65536


class LogLimiter:
    """Repeated log lines, rate-limited: one line per key per ``interval`` seconds; the next line
    of that key says how many were held back. A dead destination or a connection flood is then a
    line every few seconds, not one per alert or per connection."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0, max_keys: int = 1024):
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._state: dict = {}      # key -> [last time logged, lines held back since]

    def __call__(self, level: int, key, fmt: str, *args) -> bool:
        """Log ``fmt % args`` unless ``key`` was logged less than ``interval`` s ago (True: logged)."""
        now = time.monotonic()
        with self._lock:
            st = self._state.get(key)
            if st is not None and now - st[0] < self.interval:
                st[1] += 1
                return False
            held = st[1] if st is not None else 0
            if st is None and len(self._state) >= self.max_keys:
                self._state.clear()
            self._state[key] = [now, 0]
        if held:
            fmt += " (%d more like this in the last %gs)"
            args = args + (held, self.interval)
        self.logger.log(level, fmt, *args)
        return True


class Formatter:
    """How alerts become lines: JSON (with the json_include_* choices) or Falco's text."""

    def __init__(self, json_output: bool = False, include_output: bool = True,
                 include_output_fields: bool = True, include_tags: bool = True,
                 include_message: bool = False):
        self.json_output = json_output
        self.opts = (include_output, include_output_fields, include_tags, include_message)

    def __call__(self, alert: Alert) -> str:
        return alert.json(self.opts) if self.json_output else alert.text()

    @property
    def content_type(self) -> str:
        return "application/json" if self.json_output else "text/plain"


class Channel:
    """One destination with its queue and worker. Subclasses implement ``deliver(batch)``
    (raise to report the whole batch as failed) and may override ``open``/``close_dest``/
    ``reopen``/``interrupt``."""

    name = "channel"

    def __init__(self, formatter: Formatter, capacity: int = 0, batch: int = 256):
        self.formatter = formatter
        self.capacity = capacity if capacity > 0 else DEFAULT_CAPACITY
        self.batch = batch
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._reopen = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._inflight = 0          # alerts taken from the queue, being delivered
        self._abandoned = False     # stop() gave up on a worker stuck in deliver()
        self._count_lock = threading.Lock()
        self.offered = 0
        self.queued = 0
        self.dropped_full = 0
        self.sent = 0
        self.failed = 0
        self.dropped_shutdown = 0
        self.last_error: str | None = None
        self._halt = False          # stop(): past the drain time, take no new batch
        self._limiter = LogLimiter(log)
        self.on_drop: Callable[["Channel", int], None] | None = None

    # -- event-loop side --------------------------------------------------------------------
    def offer(self, alert: Alert) -> bool:
        """Queue an alert for delivery; False (and counted) when the queue is full."""
        self.offered += 1
        q = self._q
        if len(q) >= self.capacity:
            self.dropped_full += 1
            if self.on_drop is not None:
                self.on_drop(self, 1)
            return False
        q.append(alert)
        self.queued += 1
        if len(q) == 1 or self._busy is False:
            with self._cv:
                self._cv.notify()
        return True

    @property
    def pending(self) -> int:
        return len(self._q) + self._inflight

    def counters(self) -> dict:
        return {"offered": self.offered, "queued": self.queued, "dropped_full": self.dropped_full,
                "sent": self.sent, "failed": self.failed, "dropped_shutdown": self.dropped_shutdown,
                "pending": self.pending}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Channel":
        self._thread = threading.Thread(target=self._run, name=f"pyfalco-output-{self.name}", daemon=True)
        self._thread.start()
        return self

    def request_reopen(self) -> None:
        """Reopen the destination (files after log rotation) before the next delivery."""
        self._reopen = True
        with self._cv:
            self._cv.notify()

    def stop(self, timeout: float = 3.5) -> None:
        """Deliver what is queued, then stop, all within ``timeout`` seconds: the queue drains
        until ``timeout`` minus a grace period; then a worker still busy is interrupted (its
        socket shut down, its program killed) and given the grace period. What is left is
        counted as dropped_shutdown."""
        start = time.monotonic()
        timeout = max(0.0, timeout)
        grace = min(1.0, timeout * 0.3)
        drain_until = start + timeout - grace
        with self._cv:
            self._stopping = True
            self._cv.notify()
        t = self._thread
        if t is not None:
            t.join(max(0.0, drain_until - time.monotonic()))
            if t.is_alive():  # blocked in a destination or too much queued: stop taking batches
                self._halt = True
                try:
                    self.interrupt()
                except Exception as exc:  # noqa: BLE001
                    log.debug("output %s: interrupt: %s", self.name, exc)
                t.join(max(0.05, start + timeout - time.monotonic() - 0.1))
            if t.is_alive():
                self.abandon()
        left = 0
        with self._count_lock:
            while True:
                try:
                    self._q.popleft()
                except IndexError:
                    break
                left += 1
            self.dropped_shutdown += left
        if left:
            log.warning("output %s: %d alerts not delivered at shutdown", self.name, left)
        try:
            self.close_dest()
        except Exception as exc:  # noqa: BLE001
            log.debug("output %s: close: %s", self.name, exc)

    def abandon(self) -> None:
        """Give up on a worker stuck in deliver(): what it holds is counted as dropped_shutdown
        (it is a daemon thread; the process does not wait for it)."""
        self._halt = True
        with self._count_lock:
            if not self._abandoned:
                self._abandoned = True
                self.dropped_shutdown += self._inflight
                self._inflight = 0
            left = len(self._q)
            self._q.clear()
            self.dropped_shutdown += left

    def reclassify_failed(self, n: int) -> None:
        """``n`` alerts counted as sent earlier turned out not delivered (a program exited with
        them unread in its pipe)."""
        if n > 0:
            with self._count_lock:
                n = min(n, self.sent)
                self.sent -= n
                self.failed += n

    # -- worker side ------------------------------------------------------------------------
    def _run(self) -> None:
        q = self._q
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001
            self.last_error = str(exc)
            log.error("output %s: cannot open: %s", self.name, exc)
        while True:
            with self._cv:
                while not q and not self._stopping and not self._reopen:
                    self._busy = False
                    self._cv.wait(0.5)
                self._busy = True
            if self._reopen:
                self._reopen = False
                try:
                    self.reopen()
                except Exception as exc:  # noqa: BLE001
                    log.error("output %s: reopen: %s", self.name, exc)
            if not q:
                if self._stopping:
                    return
                continue
            batch = []
            with self._count_lock:
                if self._halt or self._abandoned:
                    return
                while q and len(batch) < self.batch:
                    batch.append(q.popleft())
                self._inflight = len(batch)
            try:
                bad = self.deliver(batch) or 0
            except Exception as exc:  # noqa: BLE001
                bad = len(batch)
                self.note_error(f"{type(exc).__name__}: {exc}", bad)
            with self._count_lock:
                if self._abandoned:
                    return
                self._inflight = 0
                self.failed += bad
                self.sent += len(batch) - bad

    def note_error(self, msg: str, count: int = 1) -> None:
        """Log a delivery error, at most once per 10 s for the same message (a dead destination
        is not a log flood; the counters have every failure)."""
        self._limiter(logging.ERROR, msg, "output %s: %d alert(s) not delivered: %s", self.name, count, msg)
        self.last_error = msg

    def log_limited(self, level: int, key: str, fmt: str, *args) -> bool:
        """A rate-limited log line of this output (one per key per 10 s)."""
        return self._limiter(level, key, fmt, *args)

    # -- to implement -----------------------------------------------------------------------
    def open(self) -> None:
        pass

    def deliver(self, batch: list[Alert]) -> int | None:
        """Deliver a batch; return how many failed (None/0: all delivered), or raise (all failed)."""
        raise NotImplementedError

    def reopen(self) -> None:
        self.close_dest()
        self.open()

    def close_dest(self) -> None:
        pass

    def interrupt(self) -> None:
        """Unblock a worker stuck in deliver() (close a socket, kill a program)."""
        self.close_dest()
