# SPDX-License-Identifier: Apache-2.0
"""The engine's two paths over the syscall source give the same alerts: the batch path
(Capture.next_raw_batch -> Inspector.process_raw, only the events some rule can match decoded)
and the per-event path (every Event parsed by Inspector.process, matched by Ruleset.match), on
every shared capture, with pyfalco's default rules, Falco's stable rules and a broad ruleset whose
conditions hold often (many alerts, fields shared between rules, fds read after later closes);
with Falco's "first" rule matching too, and the state engine's counters equal at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
BROAD = """
- macro: opens
  condition: evt.type in (open, openat, openat2)
- rule: any open
  desc: x
  condition: opens and fd.name startswith / and proc.name exists
  output: "%proc.name %fd.name %fd.typechar %proc.pname %user.name"
  priority: INFO
- rule: open under etc
  desc: x
  condition: opens and fd.directory = /etc and evt.is_open_read = true
  output: "%fd.name %proc.cmdline"
  priority: WARNING
- rule: io
  desc: x
  condition: evt.type in (read, recvfrom, sendto, write) and fd.typechar in (f, 4, 6, u) and evt.res exists
  output: "%fd.name %fd.sip %fd.sport %evt.res"
  priority: INFO
- rule: spawned
  desc: x
  condition: evt.type in (clone, execve) and evt.dir = < and proc.pname exists
  output: "%proc.pname %proc.name %proc.aname[2] %proc.exepath"
  priority: NOTICE
- rule: connects
  desc: x
  condition: evt.type = connect and fd.sip exists and fd.sport > 0
  output: "%fd.name %fd.cip %fd.cport"
  priority: INFO
- rule: every close of a known fd
  desc: x
  condition: evt.type = close and fd.num >= 0 and not fd.name = ""
  output: "%fd.name %fd.num %thread.tid"
  priority: DEBUG
"""
RULES = {"broad": BROAD, "default": ROOT / "rules" / "pyfalco_rules.yaml",
         "stable": ROOT.parent / "shared" / "rules" / "falco_rules.yaml"}


def _alerts(capture: Path, rules, batch: bool, matching: str = "all") -> tuple[list, int]:
    return _run(capture, rules, batch, matching)[:2]


def _run(capture: Path, rules, batch: bool, matching: str) -> tuple[list, int, dict]:
    engine = pyfalco.Engine(rules, capture=pyfalco.Capture("replay", capture_file=str(capture)),
                            rule_matching=matching, batch=batch)
    with engine:
        got = [(a.rule, a.time_ns, a.priority, a.source, a.message, a.fields) for a in engine.alerts()]
        stats = engine.inspector.stats()
    return got, engine.n_events, stats


@pytest.mark.parametrize("rules", sorted(RULES))
@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_batch_and_per_event_paths_give_the_same_alerts(capture, rules):
    batch, n_batch, st_batch = _run(capture, RULES[rules], True, "all")
    single, n_single, st_single = _run(capture, RULES[rules], False, "all")
    assert n_batch == n_single
    assert batch == single
    assert st_batch == st_single      # the same state: threads, fds, users seen by both


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_first_match_is_the_same_on_both_paths(capture):
    """Falco's default "first": the batch path's per-code matchers stop at the same rule."""
    batch, _ = _alerts(capture, BROAD, batch=True, matching="first")
    single, _ = _alerts(capture, BROAD, batch=False, matching="first")
    assert batch == single


def test_the_comparison_is_not_vacuous():
    """The broad rules fire often on the largest capture: the comparison covers many alerts and
    field values."""
    big = max(CAPTURES, key=lambda p: p.stat().st_size)
    got, n = _alerts(big, BROAD, batch=True)
    assert n > 10000 and len(got) > 1000
    assert {a[0] for a in got} >= {"any open", "every close of a known fd"}
