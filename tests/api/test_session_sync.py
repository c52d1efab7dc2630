# SPDX-License-Identifier: Apache-2.0
"""DetectionSession.sync() waits on progress, not for a fixed time: a source that is busy longer
than ``timeout`` (a reader behind on a loaded machine) is waited for as long as it keeps
evaluating events; a source that makes no progress fails after ``timeout`` with a TimeoutError
naming it. The source is a real Python plugin (loaded by dotted path, run on the engine's source
thread) whose batches come slowly on purpose."""

from __future__ import annotations

import threading
import time

import pytest

from pyfalco.plugins.api import FieldSpec, Plugin, PluginInstance
from pyfalco.testing import DetectionSession

RELEASE = threading.Event()    # the plugin sends nothing before this is set
UNBLOCK = threading.Event()    # a "stuck" instance blocks in next_batch until this is set
N_EVENTS, DELAY = 12, 0.25     # 3 s of events in all, one every 0.25 s

RULES = """
- rule: Tick
  desc: every tick
  condition: tick.n > 0
  output: "tick %tick.n"
  priority: INFO
  source: slowticks
"""


class _Slow(PluginInstance):
    def __init__(self, stuck: bool):
        self.stuck = stuck
        self.sent = 0

    def next_batch(self, timeout: float) -> list:
        if not RELEASE.is_set():
            RELEASE.wait(timeout)
            return []
        if self.stuck:
            UNBLOCK.wait(60)      # no progress: what a wedged reader looks like
            return []
        if self.sent >= N_EVENTS:
            time.sleep(min(timeout, 0.02))
            return []
        time.sleep(DELAY)         # a busy reader: one event per DELAY
        self.sent += 1
        return [str(self.sent).encode()]

    def close(self) -> None:
        UNBLOCK.set()


class SlowTicks(Plugin):
    """A source whose events come one every DELAY seconds once RELEASE is set."""

    name = "slowticks"
    description = "slow ticks for the sync tests"
    contact = "tests"
    version = "0.1.0"
    id = 4242
    event_source = "slowticks"

    def fields(self) -> list:
        return [FieldSpec("tick.n", "uint64", desc="the tick number")]

    def open(self, params: str) -> PluginInstance:
        return _Slow(params == "stuck")

    def extract(self, evt, field, arg):
        return int(evt.data)


def _session(params: str) -> DetectionSession:
    RELEASE.clear()
    UNBLOCK.clear()
    return DetectionSession([RULES], engine=None,
                            plugins=[{"name": "slowticks", "library_path": f"{__name__}:SlowTicks",
                                      "open_params": params}])


def test_sync_waits_while_the_source_makes_progress():
    with _session("") as falco:
        w = falco.watch()
        RELEASE.set()
        t0 = time.monotonic()
        falco.sync(timeout=1.0)           # the events take 3 s: more than timeout, with progress
        waited = time.monotonic() - t0
        assert falco.detector.events_by_source["slowticks"] == N_EVENTS
        # every event was evaluated before sync returned (no sleep, no retry here)
        assert sorted(int(a.fields["tick.n"]) for a in w.alerts) == list(range(1, N_EVENTS + 1))
    assert waited > 1.0, "the source was not slower than the timeout: the test proves nothing"


def test_sync_fails_when_nothing_moves():
    falco = _session("stuck").start()
    try:
        RELEASE.set()
        with pytest.raises(TimeoutError, match="no progress for 0.5s waiting for event source slowticks"):
            falco.sync(timeout=0.5)
    finally:
        UNBLOCK.set()
        falco.stop()
