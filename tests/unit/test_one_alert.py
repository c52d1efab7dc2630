# SPDX-License-Identifier: Apache-2.0
"""pyfalco has one Alert type (pyfalco.outputs.alert.Alert): the engine makes it, outputs render it,
and it carries what the pytest plugin asks about (who caused it)."""

from __future__ import annotations

import json

from pyfalco.outputs.alert import Alert


def test_the_engine_delivers_the_outputs_alert():
    import pyfalco.engine
    assert pyfalco.engine.Alert is Alert


def test_alert_carries_its_process_context_through_truncation():
    a = Alert("r", 4, 1_700_000_000_000_000_000, "x" * 50, {"proc.name": "y" * 50}, host="h",
              pid=10, tid=11, ancestors=(9, 1), container_id="0123456789ab")
    assert (a.pid, a.tid, a.ancestors, a.container_id) == (10, 11, (9, 1), "0123456789ab")
    assert str(a) == "Warning r: " + "x" * 50
    cut = a.truncated(5)
    assert cut.message == "xxxxx..." and cut.fields["proc.name"] == "yyyyy..."
    assert (cut.pid, cut.tid, cut.ancestors, cut.container_id) == (10, 11, (9, 1), "0123456789ab")
    # the context is not part of Falco's JSON keys
    assert set(json.loads(a.json())) == {"hostname", "output", "output_fields", "priority", "rule", "source",
                                         "tags", "time"}


def test_alert_without_a_process():
    a = Alert("r", 6, 1, "m", host="h", source="internal", internal=True)
    assert a.pid is None and a.tid is None and a.ancestors == () and a.container_id is None
