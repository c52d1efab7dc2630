# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the default-ruleset tests: live detection sessions (root + eBPF) shared by a
module, the generator runs they watched, and the paths of the two rulesets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "rules" / "pyfalco_rules.yaml"
UPSTREAM_RULES = REPO.parent / "shared" / "rules" / "falco_rules.yaml"


def live_session(rules):
    """A started DetectionSession, or a test failure saying why none can run here."""
    if os.geteuid() != 0:
        pytest.skip("live eBPF detection tests need root")
    from pyfalco.testing import DetectionSession
    return DetectionSession([str(r) for r in rules]).start()


@pytest.fixture(scope="module")
def default_session():
    s = live_session([DEFAULT_RULES])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def upstream_session():
    if not UPSTREAM_RULES.exists():
        pytest.fail(f"the upstream stable ruleset is missing: {UPSTREAM_RULES}")
    s = live_session([UPSTREAM_RULES])
    yield s
    s.stop()
