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
  (no root, no driver) and returns a result with the same assertions.

Options: ``--pyfalco-rules FILE`` (repeatable), ``--pyfalco-engine modern_ebpf|kmod``,
``--pyfalco-require`` (fail instead of skip when no live capture can be opened).
"""

from __future__ import annotations

import pytest

from .session import DetectionSession, replay


def pytest_addoption(parser):
    group = parser.getgroup("pyfalco", "pyfalco detections")
    group.addoption("--pyfalco-rules", action="append", default=None, metavar="FILE",
                    help="rules file for the pyfalco fixtures (repeatable; default: pyfalco's default ruleset)")
    group.addoption("--pyfalco-engine", default="modern_ebpf", choices=("modern_ebpf", "kmod"),
                    help="capture engine of the live pyfalco session")
    group.addoption("--pyfalco-require", action="store_true", default=False,
                    help="fail, instead of skipping, tests that need a live capture when none can be opened")
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
