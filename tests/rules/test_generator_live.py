# SPDX-License-Identifier: Apache-2.0
"""Every generator action, run for real under live eBPF with the default ruleset, fires exactly
the rules it names (alerts of its own process tree and containers), on the host and, for the
actions that run either way, in a container; together they fire every default rule."""

from __future__ import annotations

import pytest

from pyfalco.generator import ACTIONS, action_names, check_actions
from pyfalco.generator.actions import expected_rules
from pyfalco.generator.image import ensure_image

pytestmark = [pytest.mark.root, pytest.mark.slow]

BOTH = [n for n, a in ACTIONS.items() if a.where == "both"]


@pytest.fixture(scope="module")
def generator_image():
    """The generator's image, built (on a fresh machine) before any action's window opens, so its
    import is no action's activity (test_runtime_benign_live checks that it raises nothing)."""
    return ensure_image()


@pytest.fixture(scope="module")
def host_runs(default_session, generator_image):
    return {r.action.name: r for r in check_actions(action_names(), default_session)}


@pytest.fixture(scope="module")
def container_runs(default_session, generator_image):
    return {r.action.name: r for r in check_actions(BOTH, default_session, container=True)}


def _explain(run) -> str:
    return "\n".join(f"  {a}" for a in run.alerts) or "  (no alerts)"


def _check(run):
    assert run.error is None, f"{run.action.name} could not run: {run.error}"
    expected = set(expected_rules(run.action, run.in_container))
    assert run.fired == expected, (f"{run.action.name}: missing {sorted(expected - run.fired)}, "
                                   f"unexpected {sorted(run.fired - expected)}\n{_explain(run)}")


@pytest.mark.parametrize("name", action_names())
def test_action_fires_its_rules(host_runs, name):
    _check(host_runs[name])


@pytest.mark.parametrize("name", BOTH)
def test_action_in_container_fires_its_rules(container_runs, name):
    run = container_runs[name]
    assert run.in_container
    _check(run)


def test_every_default_rule_is_fired_by_an_action(default_session, host_runs, container_runs):
    fired = set().union(*(r.fired for r in host_runs.values()), *(r.fired for r in container_runs.values()))
    names = {r.name for r in default_session.ruleset.rules}
    assert names - fired == set()


def test_alerts_carry_the_responder_fields(host_runs):
    alert = host_runs["read_sensitive_file"].alerts[0]
    assert alert.fields["fd.name"] == "/etc/shadow"
    assert alert.fields["proc.name"] == "cat"
    assert alert.fields["container.id"] == "host"
    assert alert.fields["user.uid"] == 0
    assert "mitre_credential_access" in alert.tags
