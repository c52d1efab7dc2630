# SPDX-License-Identifier: Apache-2.0
"""The agent's alert counters are counted from every source's thread (syscall, k8s_audit, ...):
none is lost when several threads count at once, and readers get a consistent copy."""

from __future__ import annotations

import sys
import threading

from pyfalco.agent.metrics import Metrics


def test_alert_counts_from_several_threads_are_exact():
    m = Metrics("modern_ebpf")
    n_threads, per_thread = 4, 20000
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)       # switch threads as often as possible: a lost update shows
    try:
        start = threading.Barrier(n_threads)

        def count(i: int) -> None:
            start.wait()
            src = "syscall" if i % 2 else "k8s_audit"
            for k in range(per_thread):     # a rule has one priority and one source
                m.count_alert(f"rule{k % 2}_{src}", 4 + k % 2, src)
        threads = [threading.Thread(target=count, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        snaps = [m.snapshot(resource=False, kernel=False, plugins=False) for _ in range(20)]
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    by_rule, by_priority = m.alert_counts()
    assert sum(by_rule.values()) == n_threads * per_thread
    assert sum(by_priority) == n_threads * per_thread
    assert by_priority[4] + by_priority[5] == n_threads * per_thread
    # each snapshot read one consistent copy: its total is the sum of its per-rule counters
    for s in snaps:
        assert s["falco.rules.matches_total"] == sum(v for k, v in s.items() if k.startswith("falco.rules.rule"))
    text = m.prometheus()
    assert f'falcosecurity_falco_alerts_by_priority_total{{priority="Warning"}} {by_priority[4]}' in text
