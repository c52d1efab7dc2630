# SPDX-License-Identifier: Apache-2.0
"""pytest plugin (entry point ``pyfalco`` in the ``pytest11`` group): detection fixtures.

Fixtures:

* ``falco`` — a :class:`~pyfalco.testing.Watch` over a live capture for one test: alerts of the
  test's process and its descendants (add containers with ``falco.add_container(cid)``);
  ``falco.assert_fired(rule)``, ``falco.assert_not_fired(rule)``, ``falco.assert_no_alerts()``;
* ``pyfalco_session`` — the session-wide :class:`~pyfalco.testing.DetectionSession` (one capture
  for the whole run; skipped when the capture cannot be opened: not root, no eBPF);
* ``pyfalco_rules`` — the rules the session loads: ``--pyfalco-rules`` / ini ``pyfalco_rules``,
  else pyfalco's default ruleset; override the fixture in a conftest.py for your own;
* ``pyfalco_replay`` — ``pyfalco_replay(path, rules=None)`` evaluates rules over a capture file
  (no root, no driver) and returns a result with the same assertions;
* ``falco_k8saudit`` — a :class:`~pyfalco.testing.Watch` over Kubernetes audit events for one
  test: the session-wide ``pyfalco_k8saudit`` session serves k8saudit's webhook on a free loopback
  port (``pyfalco_k8saudit.webhook_url()``; ``$PYFALCO_K8S_AUDIT_URL`` is set to it during the
  test, so ``pyfalco-event-generator run k8saudit.*`` posts there); needs no root;
* ``pyfalco_k8s_rules`` — the rules of that session: ``--pyfalco-k8s-rules FILE`` (repeatable),
  else pyfalco's default k8s audit rules.

Options: ``--pyfalco-rules FILE`` (repeatable), ``--pyfalco-engine modern_ebpf|kmod``,
``--pyfalco-require`` (fail instead of skip when no live capture can be opened),
``--pyfalco-k8s-rules FILE`` (repeatable).
"""

from __future__ import annotations

import pytest

from .session import DetectionSession, default_k8s_rules_path, k8saudit_plugins, replay


def pytest_addoption(parser):
    group = parser.getgroup("pyfalco", "pyfalco detections")
    group.addoption("--pyfalco-rules", action="append", default=None, metavar="FILE",
                    help="rules file for the pyfalco fixtures (repeatable; default: pyfalco's default ruleset)")
    group.addoption("--pyfalco-engine", default="modern_ebpf", choices=("modern_ebpf", "kmod"),
                    help="capture engine of the live pyfalco session")
    group.addoption("--pyfalco-require", action="store_true", default=False,
                    help="fail, instead of skipping, tests that need a live capture when none can be opened")
    group.addoption("--pyfalco-k8s-rules", action="append", default=None, metavar="FILE",
                    help="rules file for the k8s audit fixtures (repeatable; default: pyfalco's k8s audit rules)")
    parser.addini("pyfalco_rules", type="linelist", default=[],
                  help="rules files for the pyfalco fixtures (default: pyfalco's default ruleset)")


def pytest_configure(config):
    config.addinivalue_line("markers", "pyfalco: uses a live pyfalco capture (root, eBPF)")


@pytest.fixture(scope="session")
def pyfalco_rules(pytestconfig):
    """Rules sources for the pyfalco session: paths or rules text; None = pyfalco's default."""
    rules = pytestconfig.getoption("pyfalco_rules") or pytestconfig.getini("pyfalco_rules")
    return list(rules) if rules else None


@pytest.fixture(scope="session")
def pyfalco_session(pytestconfig, pyfalco_rules):
    """One live detection session for the whole test run."""
    import pyfalco
    session = DetectionSession(pyfalco_rules, engine=pytestconfig.getoption("pyfalco_engine"))
    session.load()          # a broken ruleset is an error, never a skip
    try:
        session.start()
    except (pyfalco.DriverPermissionError, pyfalco.DriverUnavailableError, pyfalco.NativeError, ImportError) as err:
        if pytestconfig.getoption("pyfalco_require"):
            pytest.fail(f"pyfalco: cannot open a live capture: {err}")
        pytest.skip(f"pyfalco: no live capture here ({err}); run as root with eBPF, or use pyfalco_replay")
    yield session
    session.stop()


@pytest.fixture
def falco(pyfalco_session):
    """A window over the alerts caused by this test (its process tree and added containers)."""
    with pyfalco_session.watch() as w:
        yield w


@pytest.fixture
def pyfalco_replay(pyfalco_rules):
    """``pyfalco_replay(capture_file, rules=None, **kw)``: alerts of a capture file."""
    def run(capture_file, rules=None, **kw):
        return replay(capture_file, rules if rules is not None else pyfalco_rules, **kw)
    return run


@pytest.fixture(scope="session")
def pyfalco_k8s_rules(pytestconfig):
    """Rules sources for the k8s audit session: ``--pyfalco-k8s-rules``, else pyfalco's default
    k8s audit rules."""
    rules = pytestconfig.getoption("pyfalco_k8s_rules")
    return list(rules) if rules else [default_k8s_rules_path()]


@pytest.fixture(scope="session")
def pyfalco_k8saudit(pyfalco_k8s_rules):
    """One k8s audit session for the run: the built-in k8saudit plugin's webhook on a free
    loopback port (no syscall capture, no root)."""
    session = DetectionSession(pyfalco_k8s_rules, engine=None, plugins=k8saudit_plugins())
    session.start()
    yield session
    session.stop()


@pytest.fixture
def falco_k8saudit(pyfalco_k8saudit, monkeypatch):
    """A window over the alerts of the audit events posted during this test;
    ``$PYFALCO_K8S_AUDIT_URL`` is the session's webhook meanwhile."""
    monkeypatch.setenv("PYFALCO_K8S_AUDIT_URL", pyfalco_k8saudit.webhook_url("k8s_audit"))
    with pyfalco_k8saudit.watch() as w:
        yield w
