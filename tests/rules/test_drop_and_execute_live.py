# SPDX-License-Identifier: Apache-2.0
"""Falco's "Drop and execute new binary in container" (../shared/rules/falco_rules.yaml) on real
podman containers (overlay storage, the generator's busybox image built like the other live
tests): it fires when a container writes a binary after it started and executes it (the
driver's PPM_EXE_UPPER_LAYER, proc.is_exe_upper_layer), and stays quiet for the image's own
binaries, which the driver marks as the lower layer (proc.is_exe_lower_layer, checked through a
rule of this test's own so the quiet case is not vacuous)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyfalco.generator.context import Context

pytestmark = [pytest.mark.root, pytest.mark.slow]

UPSTREAM_RULES = Path(__file__).resolve().parents[3] / "shared" / "rules" / "falco_rules.yaml"

DROP = "Drop and execute new binary in container"
LOWER = "Image binary executed in container (test)"
LOWER_RULE = f"""
- rule: {LOWER}
  desc: an executable of the image's own (lower) layer ran in a container
  condition: spawned_process and container and proc.is_exe_lower_layer = true
  output: lower-layer exec name=%proc.name exe=%proc.exepath flags=%evt.arg.flags upper=%proc.is_exe_upper_layer
  priority: NOTICE
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    if not UPSTREAM_RULES.exists():
        pytest.fail(f"the upstream stable ruleset is missing: {UPSTREAM_RULES}")
    if os.geteuid() != 0:
        pytest.skip("live eBPF detection tests need root")
    from pyfalco.testing import DetectionSession
    extra = tmp_path_factory.mktemp("rules") / "lower.yaml"
    extra.write_text(LOWER_RULE)
    s = DetectionSession([str(UPSTREAM_RULES), str(extra)]).start()
    yield s
    s.stop()


def _in_container(session, script: str):
    with session.watch() as w:
        with Context(container=True) as ctx:
            ctx.container_sh(script)
            for cid in ctx.containers:
                w.add_container(cid)
    return list(w.alerts)


def test_dropped_binary_fires(session):
    alerts = _in_container(session, "/bin/mkdir /tmp/drop; /bin/cp /bin/busybox /tmp/drop/true; /tmp/drop/true")
    drops = [a for a in alerts if a.rule == DROP]
    assert len(drops) == 1, "\n".join(str(a) for a in alerts)
    (a,) = drops
    assert a.fields["proc.exepath"] == "/tmp/drop/true"
    assert "EXE_UPPER_LAYER" in str(a.fields["evt.arg.flags"])
    assert not [x for x in alerts if x.rule == LOWER and x.fields.get("proc.exepath") == "/tmp/drop/true"]


def test_image_binaries_stay_quiet(session):
    alerts = _in_container(session, "/bin/true; /bin/ls / >/dev/null; /bin/cat /etc/hostname >/dev/null")
    assert not [a for a in alerts if a.rule == DROP], "\n".join(str(a) for a in alerts)
    lower = {a.fields["proc.name"] for a in alerts if a.rule == LOWER}
    # every exec of the image's busybox links (exepath /bin/busybox) is from the lower layer
    assert {"true", "ls", "cat"} <= lower, "\n".join(str(a) for a in alerts)
    assert all(a.fields["proc.is_exe_upper_layer"] is False for a in alerts if a.rule == LOWER)
