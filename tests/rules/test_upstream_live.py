# SPDX-License-Identifier: Apache-2.0
"""The generator under Falco's stable ruleset (../shared/rules/falco_rules.yaml) loaded in
pyfalco: the upstream rules covering an action's behaviour fire, except where documented
(docs/rules-default.md, "Upstream ruleset"), and the differences are pinned here so a change in
either direction is noticed."""

from __future__ import annotations

import pytest

from pyfalco.generator import ACTIONS, action_names, check_actions
from pyfalco.generator.actions import expected_upstream

pytestmark = [pytest.mark.root, pytest.mark.slow]

BOTH = [n for n, a in ACTIONS.items() if a.where == "both"]

#: upstream rules covering the behaviour that do not fire in pyfalco, and why
UPSTREAM_MISSES = {
    # the rule matches fd.sip.name = kubernetes.default.svc.cluster.local: needs DNS name tracking
    "k8s_api_from_container": {"Contact K8S API Server From Container"},
}
#: upstream rules that fire beyond the behaviour (upstream false positives pyfalco's rules avoid)
UPSTREAM_EXTRAS = {
    # busybox passwd links /etc/shadow to its /etc/shadow- backup
    "user_management": {"Create Hardlink Over Sensitive Files"},
}


@pytest.fixture(scope="module")
def runs(upstream_session):
    host = check_actions(action_names(), upstream_session, upstream=True)
    cont = check_actions(BOTH, upstream_session, container=True, upstream=True)
    return {(r.action.name, r.in_container): r for r in host + cont}


def _expect(name, in_container):
    return (set(expected_upstream(ACTIONS[name], in_container)) - UPSTREAM_MISSES.get(name, set())) \
        | UPSTREAM_EXTRAS.get(name, set())


@pytest.mark.parametrize("name", action_names())
def test_upstream_rules_on_host_actions(runs, name):
    run = runs[(name, ACTIONS[name].where == "container")]
    assert run.error is None
    assert run.fired == _expect(name, run.in_container), "\n".join(str(a) for a in run.alerts)


@pytest.mark.parametrize("name", BOTH)
def test_upstream_rules_in_containers(runs, name):
    run = runs[(name, True)]
    assert run.error is None
    assert run.fired == _expect(name, True), "\n".join(str(a) for a in run.alerts)


def test_upstream_coverage_summary(runs):
    """Sanity: the stable ruleset fires for most behaviours both rulesets cover."""
    fired = set().union(*(r.fired for r in runs.values()))
    assert len(fired) >= 18, sorted(fired)
