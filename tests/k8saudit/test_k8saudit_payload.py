# SPDX-License-Identifier: Apache-2.0
"""The webhook body parser keeps the same events whichever way it reads a body (fuzz findings)."""

from __future__ import annotations

import json

from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.api import PluginEvent
from pyfalco.plugins.k8saudit import K8sAuditPlugin, parse_payload


def test_lone_surrogate_escape_is_kept_on_every_path():
    # fuzz finding (tools/fuzz/regressions/k8saudit/crash-b95e70...): "\ud800" is valid JSON that
    # json decodes to a lone surrogate. An EventList item (its text kept) was accepted, while the
    # same event re-serialised (inside an array, with header fields, or compacted for the size
    # limit) was dropped with "'utf-8' codec can't encode character '\ud800'".
    ev = gen.benign_events()[0]
    ev["annotations"] = {"note": "x\ud800y", "\udfff": "key"}
    text = json.dumps(ev, indent=1)        # ensure_ascii: the surrogates are sent as escapes
    assert "\\ud800" in text and "\\udfff" in text
    bodies = {
        "kept text": '{"kind": "EventList", "items": [' + text + "]}",
        "array of an EventList": json.dumps([gen.event_list([ev])]),
        "lone event": text,
    }
    for how, body in bodies.items():
        for kw in ({}, {"extra": {"h": "v"}}, {"max_event_size": len(text) - 1}):
            got, problems = parse_payload(body.encode(), **kw)
            assert problems == [], (how, kw)
            (ts, payload), = got
            want = dict(ev, **kw.get("extra", {}))
            assert payload.doc == want, (how, kw)
            # the payload is UTF-8 JSON text that decodes to the same document, surrogates included
            assert json.loads(bytes(payload).decode("utf-8")) == want, (how, kw)
            if "max_event_size" in kw:
                assert len(payload) <= kw["max_event_size"] and b"\\ud800" in bytes(payload)
    # the field reads the same from the payload alone (a capture file's event)
    ka = K8sAuditPlugin()
    ka.init("")
    evt = PluginEvent(1, ts, 1, "k8s_audit", bytes(payload))
    assert ka.extract(evt, "ka.auditid", None) == ev["auditID"]
