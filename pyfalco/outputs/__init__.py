# SPDX-License-Identifier: Apache-2.0
"""Alert delivery: Falco's outputs (stdout, file, syslog, program, http) off the event loop.

    outs = Outputs.from_config(config)     # the agent's merged configuration (a dict)
    outs.start()
    outs.emit(alert)                       # never blocks; full queues count drops
    outs.stop(timeout=3.5)                 # deliver what is queued, then close (bounded)

Each enabled output has its own bounded queue and worker thread (base.py), so one slow
destination does not delay the others.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping

from .alert import PRIORITY_NAMES, Alert, clean_text, clean_value, hostname, iso_utc, text_time
from .base import DEFAULT_CAPACITY, Channel, Formatter, LogLimiter
from .channels import FileChannel, HttpChannel, ProgramChannel, StdoutChannel, SyslogChannel

__all__ = ["Outputs", "Alert", "Channel", "Formatter", "StdoutChannel", "FileChannel", "SyslogChannel",
           "ProgramChannel", "HttpChannel", "LogLimiter", "PRIORITY_NAMES", "DEFAULT_CAPACITY", "clean_text", "clean_value",
           "hostname", "iso_utc", "text_time"]

log = logging.getLogger("pyfalco.outputs")


def _seconds_ms(value: Any, default: float) -> float:
    try:
        return max(0.05, float(value) / 1000.0)
    except (TypeError, ValueError):
        return default


class Outputs:
    """The set of enabled output channels, with aggregated counters."""

    def __init__(self, channels: list[Channel], formatter: Formatter):
        self.channels = list(channels)
        self.formatter = formatter
        self._drop_lock = threading.Lock()
        self._drops_unreported = 0
        self._last_drop_log = 0.0
        for ch in self.channels:
            ch.on_drop = self._on_drop
        self._offers = [ch.offer for ch in self.channels]
        #: output sets this one replaced (a reload), being stopped or stopped: their counters
        #: stay in this set's account
        self._retired: list[tuple["Outputs", threading.Thread]] = []

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], stdout_stream=None) -> "Outputs":
        fmt = Formatter(json_output=bool(cfg.get("json_output")),
                        include_output=cfg.get("json_include_output_property", True),
                        include_output_fields=cfg.get("json_include_output_fields_property", True),
                        include_tags=cfg.get("json_include_tags_property", True),
                        include_message=cfg.get("json_include_message_property", False))
        cap = int((cfg.get("outputs_queue") or {}).get("capacity") or 0)
        buffered = bool(cfg.get("buffered_outputs"))
        timeout = _seconds_ms(cfg.get("output_timeout", 2000), 2.0)
        chans: list[Channel] = []
        o = cfg.get("stdout_output") or {}
        if o.get("enabled"):
            chans.append(StdoutChannel(fmt, cap, buffered=buffered, stream=stdout_stream))
        o = cfg.get("file_output") or {}
        if o.get("enabled"):
            chans.append(FileChannel(fmt, o.get("filename") or "./events.txt", cap,
                                     keep_alive=bool(o.get("keep_alive")), buffered=buffered))
        o = cfg.get("syslog_output") or {}
        if o.get("enabled"):
            chans.append(SyslogChannel(fmt, o.get("address") or "/dev/log", cap))
        o = cfg.get("program_output") or {}
        if o.get("enabled"):
            if not o.get("program"):
                raise ValueError("program_output.program: empty while program_output is enabled")
            chans.append(ProgramChannel(fmt, o["program"], cap, keep_alive=bool(o.get("keep_alive")),
                                        timeout=timeout))
        o = cfg.get("http_output") or {}
        if o.get("enabled"):
            chans.append(HttpChannel(
                fmt, o.get("url") or "", cap, user_agent=o.get("user_agent") or "falcosecurity/falco",
                insecure=bool(o.get("insecure")), ca_cert=o.get("ca_cert") or "",
                ca_bundle=o.get("ca_bundle") or "", ca_path=o.get("ca_path") or "",
                mtls=bool(o.get("mtls")), client_cert=o.get("client_cert") or "",
                client_key=o.get("client_key") or "", echo=bool(o.get("echo")),
                compress_uploads=bool(o.get("compress_uploads")), keep_alive=bool(o.get("keep_alive")),
                timeout=timeout, max_consecutive_timeouts=int(o.get("max_consecutive_timeouts") or 5)))
        return cls(chans, fmt)

    # -- event loop side --------------------------------------------------------------------
    def emit(self, alert: Alert) -> None:
        for offer in self._offers:
            offer(alert)

    def _on_drop(self, channel: Channel, n: int) -> None:
        with self._drop_lock:
            self._drops_unreported += n
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:  # rate-limited: the counters have every drop
            self._last_drop_log = now
            log.error("outputs queue of %s is full (%d): dropping alerts (%d dropped so far)",
                      channel.name, channel.capacity, channel.dropped_full)

    def take_drops(self) -> int:
        """Drops since the last call (for the agent's internal 'output drops' alert)."""
        with self._drop_lock:
            n, self._drops_unreported = self._drops_unreported, 0
        return n

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Outputs":
        for ch in self.channels:
            ch.start()
        return self

    def retire(self, old: "Outputs", timeout: float = 3.5) -> threading.Thread:
        """Take over from ``old`` (the outputs a reload replaced): ``old`` is stopped on a thread
        of its own, so the event loop never waits for a slow destination; its queued alerts are
        delivered within ``timeout`` seconds or counted as ``dropped_shutdown``, and its counters
        are added to this set's :meth:`counters` (same output names summed), now and after."""
        t = threading.Thread(target=old.stop, args=(timeout,), daemon=True, name="pyfalco-retire-outputs")
        self._retired.append((old, t))
        t.start()
        return t

    @property
    def retiring(self) -> int:
        """Replaced output sets still being stopped."""
        return sum(1 for _, t in self._retired if t.is_alive())

    def stop(self, timeout: float = 3.5) -> None:
        """Deliver what is queued (all channels in parallel) and stop within ``timeout`` seconds
        (plus a few tenths at most): a channel still stuck is abandoned, its alerts counted.
        Replaced sets still being stopped (:meth:`retire`) get the same deadline, then abandoned."""
        end = time.monotonic() + timeout + 0.3
        self._stop_own(timeout, end)
        for old, t in self._retired:
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                for ch in old.channels:
                    ch.abandon()
                log.warning("outputs replaced by a reload: still blocked at shutdown; abandoned")

    def _stop_own(self, timeout: float, end: float) -> None:
        threads = [threading.Thread(target=ch.stop, args=(timeout,), daemon=True,
                                    name=f"pyfalco-stop-{ch.name}") for ch in self.channels]
        for t in threads:
            t.start()
        for ch, t in zip(self.channels, threads):
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                ch.abandon()
                log.warning("output %s: still blocked at shutdown; abandoned", ch.name)

    def reopen(self) -> None:
        for ch in self.channels:
            ch.request_reopen()

    # -- counters ---------------------------------------------------------------------------
    def _all_channels(self) -> list[Channel]:
        return [ch for old, _ in self._retired for ch in old._all_channels()] + self.channels

    def counters(self) -> dict[str, dict]:
        """Each output's account by name, the channels of replaced sets (reloads) included."""
        out: dict[str, dict] = {}
        for ch in self._all_channels():
            c = ch.counters()
            if ch.name in out:
                c = {k: out[ch.name][k] + v for k, v in c.items()}
            out[ch.name] = c
        return out

    @property
    def queue_depth(self) -> int:
        return sum(ch.pending for ch in self._all_channels())

    @property
    def dropped(self) -> int:
        return sum(ch.dropped_full for ch in self._all_channels())
