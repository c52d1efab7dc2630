# SPDX-License-Identifier: Apache-2.0
"""The agent's counters: snapshots (Falco's "metrics snapshot" names) and Prometheus text.

Event counts are plain ints updated by the main loop (one writer). Alerts are counted from
every source's thread (each source runs its own loop), so the alert counters take a lock; readers
(the webserver thread, the metrics timer) copy them under it.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from typing import Any, Callable

import pyfalco
from pyfalco.outputs import PRIORITY_NAMES

__all__ = ["Metrics", "resource_usage", "METRICS_RULE"]

METRICS_RULE = "Falco internal: metrics snapshot"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def resource_usage() -> dict:
    """RSS and VSZ (bytes) of this process from /proc/self/statm."""
    try:
        with open("/proc/self/statm") as f:
            vsz, rss = (int(x) for x in f.read().split()[:2])
        return {"rss": rss * _PAGE, "vsz": vsz * _PAGE}
    except OSError:
        return {"rss": 0, "vsz": 0}


def _boot_ts_ns() -> int:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return int(line.split()[1]) * 1_000_000_000
    except OSError:
        pass
    return 0


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters of one agent run. ``capture_stats`` and ``outputs`` are callables/objects the
    agent plugs in (they change on reload)."""

    def __init__(self, engine: str = "", clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.engine = engine
        self.start_ns = time.time_ns()
        self.start = clock()
        self.boot_ns = _boot_ts_ns()
        self.hostname = socket.gethostname()
        self.kernel = platform.release()
        self.n_evts = 0
        self.alerts_by_rule: dict[tuple, int] = {}     # (rule, priority, source) -> count
        self._alerts_lock = threading.Lock()           # count_alert runs on every source's thread
        self.alerts_by_priority = [0] * 8
        self.internal_alerts = 0
        self.reloads = 0
        self.reload_failures = 0
        self.capture_stats: Callable[[], dict] = dict
        #: "<plugin>.<metric>" -> value of the loaded plugins (metrics.plugins_metrics_enabled)
        self.plugin_metrics: Callable[[], dict] = dict
        self.outputs: Any = None
        self.rules_info: Callable[[], dict] = dict
        self._prev_evts = 0
        self._prev_t = self.start
        self._prev_cpu = self._cpu()
        self._prev_cpu_t = self.start
        self.evts_rate = 0.0
        self.cpu_perc = 0.0

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system

    def count_alert(self, rule: str, priority: int, source: str) -> None:
        """Counts one alert (called from the thread of the source that produced it)."""
        key = (rule, priority, source)
        with self._alerts_lock:
            self.alerts_by_rule[key] = self.alerts_by_rule.get(key, 0) + 1
            self.alerts_by_priority[priority] += 1

    def alert_counts(self) -> tuple[dict[tuple, int], list[int]]:
        """A consistent copy of (alerts by (rule, priority, source), alerts by priority)."""
        with self._alerts_lock:
            return dict(self.alerts_by_rule), list(self.alerts_by_priority)

    def sample(self) -> None:
        """Update the rates (events/s, CPU %) since the previous sample."""
        now = self.clock()
        dt = now - self._prev_t
        if dt > 0:
            self.evts_rate = (self.n_evts - self._prev_evts) / dt
            cpu = self._cpu()
            self.cpu_perc = 100.0 * (cpu - self._prev_cpu) / max(1e-9, now - self._prev_cpu_t)
            self._prev_cpu, self._prev_cpu_t = cpu, now
        self._prev_evts, self._prev_t = self.n_evts, now

    def snapshot(self, convert_memory_to_mb: bool = True, rules_counters: bool = True,
                 resource: bool = True, kernel: bool = True, plugins: bool = True) -> dict:
        """Falco-style metrics names -> values (the output_fields of a metrics snapshot)."""
        self.sample()
        out: dict[str, Any] = {
            "evt.source": "syscall",
            "falco.version": pyfalco.__version__,
            "falco.hostname": self.hostname,
            "falco.kernel_release": self.kernel,
            "falco.start_ts": self.start_ns,
            "falco.host_boot_ts": self.boot_ns,
            "falco.host_num_cpus": os.cpu_count() or 0,
            "falco.duration_sec": int(self.clock() - self.start),
            "falco.num_evts": self.n_evts,
            "falco.evts_rate_sec": round(self.evts_rate, 3),
            "falco.engine_name": self.engine,
            "falco.reloads": self.reloads,
        }
        outs = self.outputs
        if outs is not None:
            out["falco.outputs_queue_num_drops"] = outs.dropped
            out["falco.outputs_queue_depth"] = outs.queue_depth
            # pyfalco: output sets replaced by a reload still delivering their queues (off the loop)
            out["falco.outputs_retiring"] = outs.retiring
            # pyfalco: each output's account (offered = sent + failed + dropped_* + pending)
            for name, c in outs.counters().items():
                for key in ("offered", "sent", "failed", "dropped_full", "dropped_shutdown"):
                    out[f"falco.outputs.{name}.{key}"] = c[key]
        if resource:
            ru = resource_usage()
            out["falco.cpu_usage_perc"] = round(self.cpu_perc, 2)
            if convert_memory_to_mb:
                out["falco.memory_rss_mb"] = round(ru["rss"] / 1048576, 2)
                out["falco.memory_vsz_mb"] = round(ru["vsz"] / 1048576, 2)
            else:
                out["falco.memory_rss_kb"] = ru["rss"] // 1024
                out["falco.memory_vsz_kb"] = ru["vsz"] // 1024
        if rules_counters:
            by_rule, _ = self.alert_counts()
            out["falco.rules.matches_total"] = sum(by_rule.values())
            for (rule, _p, _s), n in sorted(by_rule.items()):
                out[f"falco.rules.{rule}"] = n
        if kernel:
            st = self.capture_stats() or {}
            drops = sum(int(st.get(k, 0)) for k in ("n_drops_buffer", "n_drops_max_event_size",
                                                     "n_drops_page_faults", "n_drops_bug"))
            evts = int(st.get("n_evts", 0))
            out["scap.n_evts"] = evts
            out["scap.n_drops"] = drops
            out["scap.n_drops_buffer_total"] = int(st.get("n_drops_buffer", 0))
            out["scap.n_drops_max_event_size"] = int(st.get("n_drops_max_event_size", 0))
            out["scap.n_drops_page_faults"] = int(st.get("n_drops_page_faults", 0))
            out["scap.n_drops_bug"] = int(st.get("n_drops_bug", 0))
            out["scap.n_drops_perc"] = round(100.0 * drops / max(1, evts + drops), 4)
        if plugins:
            out.update(self.plugin_metrics() or {})
        return out

    # -- Prometheus ---------------------------------------------------------------------------
    def prometheus(self) -> str:
        """Prometheus text exposition (version 0.0.4)."""
        lines: list[str] = []

        def metric(name, mtype, help_, samples):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {mtype}")
            for labels, value in samples:
                lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

        self.sample()
        ru = resource_usage()
        metric("falcosecurity_falco_version_info", "gauge", "pyfalco version",
               [({"version": pyfalco.__version__, "engine_name": self.engine}, 1)])
        metric("falcosecurity_falco_start_timestamp_nanoseconds", "gauge", "agent start time", [({}, self.start_ns)])
        metric("falcosecurity_falco_host_boot_timestamp_nanoseconds", "gauge", "host boot time",
               [({}, self.boot_ns)])
        metric("falcosecurity_falco_duration_seconds_total", "counter", "seconds since the agent started",
               [({}, int(self.clock() - self.start))])
        metric("falcosecurity_falco_cpu_usage_ratio", "gauge", "CPU used by the agent (1.0 = one core)",
               [({}, round(self.cpu_perc / 100.0, 4))])
        metric("falcosecurity_falco_memory_rss_bytes", "gauge", "resident memory of the agent", [({}, ru["rss"])])
        metric("falcosecurity_falco_memory_vsz_bytes", "gauge", "virtual memory of the agent", [({}, ru["vsz"])])
        metric("falcosecurity_falco_evts_processed_total", "counter", "events processed by the rules",
               [({}, self.n_evts)])
        metric("falcosecurity_falco_evts_rate_per_second", "gauge", "events per second", [({}, round(self.evts_rate, 3))])
        st = self.capture_stats() or {}
        metric("falcosecurity_scap_n_evts_total", "counter", "events seen by the driver",
               [({}, int(st.get("n_evts", 0)))])
        drops = [({"reason": r}, int(st.get(k, 0))) for r, k in
                 (("buffer", "n_drops_buffer"), ("max_event_size", "n_drops_max_event_size"),
                  ("page_faults", "n_drops_page_faults"), ("bug", "n_drops_bug"))]
        metric("falcosecurity_scap_n_drops_total", "counter", "events dropped by the driver, by reason", drops)
        by_rule, by_priority = self.alert_counts()
        metric("falcosecurity_falco_rules_matches_total", "counter", "alerts by rule",
               [({"rule_name": r, "priority": PRIORITY_NAMES[p], "source": s}, n)
                for (r, p, s), n in sorted(by_rule.items())])
        metric("falcosecurity_falco_alerts_by_priority_total", "counter", "alerts by priority",
               [({"priority": PRIORITY_NAMES[i]}, n) for i, n in enumerate(by_priority)])
        outs = self.outputs
        if outs is not None:
            cnt = outs.counters()
            metric("falcosecurity_falco_outputs_queue_num_drops_total", "counter",
                   "alerts dropped because an output queue was full", [({}, outs.dropped)])
            metric("falcosecurity_falco_outputs_queue_depth", "gauge", "alerts waiting in output queues",
                   [({"output": k}, v["pending"]) for k, v in cnt.items()])
            for key, help_ in (("sent", "alerts delivered"), ("failed", "alerts whose delivery failed"),
                               ("dropped_full", "alerts dropped: queue full"),
                               ("dropped_shutdown", "alerts not delivered at shutdown")):
                metric(f"falcosecurity_falco_outputs_{key}_total", "counter", help_,
                       [({"output": k}, v[key]) for k, v in cnt.items()])
        metric("falcosecurity_falco_reloads_total", "counter", "configuration/rules reloads",
               [({"result": "ok"}, self.reloads), ({"result": "failed"}, self.reload_failures)])
        return "\n".join(lines) + "\n"
