#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: the k8s audit webhook's body parser (pyfalco/plugins/k8saudit/payload.py) and
the ``ka.*`` field extraction over what it accepts (pyfalco/plugins/k8saudit/fields.py).

Input: a request body as the webhook receives it (an ``Event``, an ``EventList``, a JSON array
of either, or anything else). Oracles besides "no exception but the expected one":

* differential: the parser's own scanner (which keeps each item's JSON text as sent) must
  accept exactly what ``json.loads`` + the plain event walk accept, and give the same events;
* each accepted event's payload is that event's JSON: it decodes to the event's document;
* every ``ka.*`` field of each event extracts (a value, a list or None), with index and key
  arguments, and the webhook's answer for a refused body is one line.

Expected errors: ``PayloadError`` (the body is refused as a whole: HTTP 400).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = "pyfalco.plugins.k8saudit.payload.PayloadError"
MAX_LEN = 8192
CI_RUNS = 3000
#: arguments tried for fields that take one (index fields; key fields)
INDEXES = ("0", "1")
KEYS = ("app", "kubernetes.io/name", "x")

_G: dict = {}


def setup() -> None:
    import pyfalco.plugins.k8saudit.fields  # noqa: F401 - instrumented
    import pyfalco.plugins.k8saudit.payload as payload
    import pyfalco.plugins.k8saudit.plugin as plugin
    from pyfalco.plugins.api import PluginEvent
    _G["parse"] = payload.parse_payload
    _G["events_of"] = payload.events_of
    _G["one"] = payload._one
    _G["expected"] = (payload.PayloadError,)
    _G["PluginEvent"] = PluginEvent
    p = plugin.K8sAuditPlugin()
    p.init("")
    _G["plugin"] = p
    calls = []
    for f in p.fields():
        if f.arg_index:
            calls += [(f.name, a) for a in INDEXES] + ([(f.name, None)] if not f.arg_required else [])
        elif f.arg_key or f.arg_required:
            calls += [(f.name, a) for a in KEYS]
        else:
            calls.append((f.name, None))
    _G["calls"] = calls


def _canon(v) -> str:
    # NaN != NaN: compare documents by their canonical JSON text
    return json.dumps(v, sort_keys=True, ensure_ascii=True)


def _plain(text: str):
    """What the body holds by the plain reading: the accepted documents, or None (refused)."""
    try:
        value = json.loads(text)
        items = _G["events_of"](value)
    except (ValueError, RecursionError):      # PayloadError is a ValueError
        return None
    out = []
    for it in items:
        try:
            _G["one"](it, None, 262144, None)
        except ValueError:
            continue
        out.append(_canon(it))
    return out


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    try:
        events, problems = _G["parse"](data)
    except _G["expected"] as exc:
        if len(str(exc).splitlines()) > 1:
            raise AssertionError(f"refusal of more than one line: {str(exc)!r}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        if _plain(text) is not None:
            raise AssertionError("refused a body that json.loads and the event walk accept") from None
        return
    want = _plain(data.decode("utf-8"))
    if want is None:
        raise AssertionError("accepted a body that json.loads or the event walk refuses")
    got = [_canon(p.doc) for _ts, p in events]
    if got != want:
        raise AssertionError(f"events differ from the plain parse: {got[:3]!r} != {want[:3]!r}")
    for msg in problems:
        if len(msg.splitlines()) > 1:
            raise AssertionError(f"problem of more than one line: {msg!r}")
    plugin, calls, PluginEvent = _G["plugin"], _G["calls"], _G["PluginEvent"]
    for n, (ts, payload) in enumerate(events):
        if _canon(json.loads(bytes(payload))) != _canon(payload.doc):
            raise AssertionError(f"payload text is not its document: {bytes(payload)[:200]!r}")
        evt = PluginEvent(n + 1, ts, 1, "k8s_audit", payload)
        for name, arg in calls:
            plugin.extract(evt, name, arg)
        # the same fields on a payload without its parsed document (a capture file's event)
        evt = PluginEvent(n + 1, ts, 1, "k8s_audit", bytes(payload))
        for name, arg in calls:
            plugin.extract(evt, name, arg)


if __name__ == "__main__":
    # JSON is structure: libFuzzer gets the audit event's keys and tokens as a dictionary
    if not any(a.startswith("-dict=") for a in sys.argv):
        sys.argv.insert(1, "-dict=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8saudit.dict"))
    fuzzlib.main(setup, TestOneInput, MAX_LEN)
