# SPDX-License-Identifier: Apache-2.0
"""syscall_event_drops: threshold, actions, token bucket."""

from __future__ import annotations

from pyfalco.agent.drops import DROP_RULE, DropManager, TokenBucket


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def stats(evts, drops):
    return {"n_evts": evts, "n_drops_buffer": drops, "n_drops_max_event_size": 0, "n_drops_page_faults": 0,
            "n_drops_bug": 0}


def test_token_bucket_burst_then_rate():
    c = Clock()
    b = TokenBucket(0.5, 2, c)
    assert b.claim() and b.claim() and not b.claim()
    c.t += 2.0
    assert b.claim() and not b.claim()


def make(actions=("log", "alert"), threshold=0.1, rate=1.0, burst=1):
    alerts, exits = [], []
    clock = Clock()
    dm = DropManager({"threshold": threshold, "actions": list(actions), "rate": rate, "max_burst": burst},
                     lambda *a: alerts.append(a), exits.append, clock=clock)
    return dm, alerts, exits, clock


def test_alert_with_counters_once_per_token(caplog):
    dm, alerts, exits, clock = make()
    dm.check(stats(0, 0))
    delta = dm.check(stats(1000, 50))
    assert delta["n_drops"] == 50
    assert len(alerts) == 1
    rule, prio, msg, fields = alerts[0]
    assert rule == DROP_RULE and prio == 7 and "50 system calls dropped in last second" in msg
    assert fields["n_drops"] == "50" and fields["n_evts"] == "1000" and fields["n_drops_buffer_total"] == "50"
    assert all(isinstance(v, str) for v in fields.values())
    assert dm.check(stats(2000, 100)) is None and dm.skipped == 1   # rate limited
    clock.t += 1.0
    assert dm.check(stats(3000, 150)) is not None and len(alerts) == 2
    assert any("syscall event drop" in r.message for r in caplog.records)


def test_below_threshold_and_ignore():
    dm, alerts, _, _ = make(threshold=10.0)
    dm.check(stats(0, 0))
    assert dm.check(stats(1000, 5)) is None and not alerts and dm.total_drops == 5
    dm, alerts, _, _ = make(actions=("ignore",))
    dm.check(stats(0, 0))
    assert dm.check(stats(10, 10)) is None and not alerts


def test_exit_action():
    dm, _, exits, _ = make(actions=("exit",))
    dm.check(stats(0, 0))
    dm.check(stats(10, 10))
    assert exits and "Exiting" in exits[0]
