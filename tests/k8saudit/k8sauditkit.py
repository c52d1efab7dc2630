# SPDX-License-Identifier: Apache-2.0
"""Helpers of the k8saudit tests: a real HTTP client for the webhook, plugin events, rulesets."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from pyfalco.plugins.api import PluginEvent

REPO = Path(__file__).resolve().parents[2]
FALCO_K8S_RULES = REPO.parent / "shared" / "rules" / "k8s_audit_rules.yaml"
DEFAULT_K8S_RULES = REPO / "rules" / "pyfalco_k8s_audit_rules.yaml"


def post(port: int, body: bytes | str | dict | list, *, path: str = "/k8s-audit", method: str = "POST",
         content_type: str | None = "application/json", tls: ssl.SSLContext | None = None,
         headers: dict | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """One request to 127.0.0.1:port with http.client (status, body text)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if tls is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if content_type is not None:
        h["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body if method != "GET" else None, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def raw_request(port: int, data: bytes, *, shutdown: bool = False, timeout: float = 5.0) -> bytes:
    """Send raw bytes, optionally close our side, and read what comes back (b'' on a reset)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shutdown:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:     # the server already closed: read what it answered
                pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def drain(instance: Any, want: int, timeout: float = 10.0) -> list:
    """Read next_batch until ``want`` events arrived (or the deadline passed)."""
    out: list = []
    end = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < end:
        batch = instance.next_batch(0.2)
        if batch is None:
            break
        out.extend(batch)
    return out


def as_events(batch: list, source: str = "k8s_audit") -> list[PluginEvent]:
    """PluginEvents of ``(ts, payload)`` items, numbered from 1 (what the framework does)."""
    return [PluginEvent(i + 1, ts, 1, source, data, plugin_name="k8saudit") for i, (ts, data) in enumerate(batch)]


def k8s_ruleset(path: Path, *, json_plugin: bool = True, rule_matching: str = "all"):
    """Load ``path`` with the built-in k8saudit (+ json) plugins as the k8s_audit source (the
    plugin framework's PluginProvider): (LoadResult, provider)."""
    from pyfalco.plugins.provider import PluginProvider
    from pyfalco.plugins.registry import PluginSet, load_plugin
    from pyfalco.rules import load_rules
    entries = [{"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": ""}]
    if json_plugin:
        entries.append({"name": "json", "library_path": "libjson.so", "init_config": ""})
    plugins = PluginSet([load_plugin(e) for e in entries])
    provider = PluginProvider("k8s_audit", plugins)
    res = load_rules(str(path), extra_sources={"k8s_audit": provider}, plugins=plugins.versions(),
                     rule_matching=rule_matching)
    return res, provider
