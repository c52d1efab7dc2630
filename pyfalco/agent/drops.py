# SPDX-License-Identifier: Apache-2.0
"""Falco's syscall_event_drops: notice dropped events and act (ignore, log, alert, exit).

Every second the agent hands the capture counters to :meth:`DropManager.check`. When events were
dropped in that second and the drop percentage (drops x 100 / events) reaches ``threshold``, the
configured actions run, at most ``max_burst`` times in a row and then at ``rate`` per second
(a token bucket, as Falco's).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["DropManager", "TokenBucket", "DROP_RULE", "drop_counts"]

log = logging.getLogger("pyfalco.agent")

DROP_RULE = "Falco internal: syscall event drop"
_DROP_KEYS = ("n_drops_buffer", "n_drops_max_event_size", "n_drops_page_faults", "n_drops_bug")


class TokenBucket:
    def __init__(self, rate: float, max_burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = float(rate)
        self.max = float(max_burst)
        self.tokens = float(max_burst)
        self.clock = clock
        self.last = clock()

    def claim(self) -> bool:
        now = self.clock()
        self.tokens = min(self.max, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def drop_counts(stats: dict) -> dict:
    """Totals of the capture counters Falco reports with a drop."""
    out = {k: int(stats.get(k, 0)) for k in ("n_evts",) + _DROP_KEYS}
    out["n_drops"] = sum(out[k] for k in _DROP_KEYS)
    return out


class DropManager:
    """``emit(rule, priority, message, fields)`` sends an internal alert; ``on_exit(msg)`` asks
    the agent to stop with a failure."""

    def __init__(self, cfg: dict, emit: Callable[..., None], on_exit: Callable[[str], None],
                 ebpf: bool = True, clock: Callable[[], float] = time.monotonic):
        self.threshold = float(cfg.get("threshold", 0.1))
        self.actions = [a for a in cfg.get("actions", ["log", "alert"]) if a != "ignore"]
        self.simulate = bool(cfg.get("simulate_drops"))
        self.bucket = TokenBucket(cfg.get("rate", 0.03333), int(cfg.get("max_burst", 1)), clock)
        self.emit = emit
        self.on_exit = on_exit
        self.ebpf = ebpf
        self.prev: dict | None = None
        self.total_drops = 0
        self.actions_taken = 0
        self.skipped = 0

    def check(self, stats: dict) -> dict | None:
        """Compare with the previous counters; returns the deltas when actions ran."""
        cur = drop_counts(stats)
        prev, self.prev = self.prev, cur
        if prev is None:
            return None
        delta = {k: max(0, cur[k] - prev.get(k, 0)) for k in cur}
        if self.simulate:
            delta["n_drops"] += 1
            delta["n_drops_buffer"] += 1
        drops = delta["n_drops"]
        if drops <= 0:
            return None
        self.total_drops += drops
        perc = drops * 100.0 / max(1, delta["n_evts"] + drops)
        if (perc < self.threshold and not self.simulate) or not self.actions:
            return None
        if not self.bucket.claim():
            self.skipped += 1
            log.debug("syscall event drop: %d dropped; actions rate-limited", drops)
            return None
        self.actions_taken += 1
        msg = f"{DROP_RULE}. {drops} system calls dropped in last second."
        for action in self.actions:
            if action == "log":
                log.error("%s", msg)
            elif action == "alert":
                fields = {"ebpf_enabled": "1" if self.ebpf else "0", "n_drops": str(drops),
                          "n_drops_buffer_total": str(delta["n_drops_buffer"]),
                          "n_drops_max_event_size": str(delta["n_drops_max_event_size"]),
                          "n_drops_page_faults": str(delta["n_drops_page_faults"]),
                          "n_drops_bug": str(delta["n_drops_bug"]), "n_evts": str(delta["n_evts"])}
                self.emit(DROP_RULE, 7, msg, fields)
            elif action == "exit":
                self.on_exit(msg + " Exiting.")
        return delta
