# SPDX-License-Identifier: Apache-2.0
"""The open prefilter (pyfalco.rules.prefilter) never changes which rules match: on real open
events of the shared captures, re-parsed by the state engine with other paths and flags (the
rules' own paths, their neighbours, paths the analysis must leave alone), the compiled bucket
with its prefilter returns exactly the rules ``Ruleset.match`` finds rule by rule, for pyfalco's
default rules, Falco's stable rules and rules using every kind of path test."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco import kfilter
from pyfalco.events import Event
from pyfalco.rules.prefilter import open_guard
from pyfalco.state.parser import E_OPEN, E_OPENAT, E_OPENAT2

ROOT = Path(__file__).resolve().parents[3]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
PATHS = ["/etc/shadow", "/etc/shadow-", "/etc/passwd", "/etc/pam.d/sshd", "/etc/pam.d", "/etc/ssh/sshd_config",
         "/etc/ssh/ssh_host_rsa_key", "/etc/sudoers", "/etc/sudoers.d/x", "/var/log/syslog", "/var/log/x/auth.log",
         "/var/log/auth.log", "/var/lib/dpkg/status", "/var/lib/rpm/x", "/dev/null", "/dev/shm/x", "/dev/log",
         "/root/.ssh/id_rsa", "/home/u/.ssh/id_rsa", "/home/u/.ssh/id_rsa.pub", "/home/u/.bash_history",
         "/root/.zsh_history", "/bin/sh", "/usr/bin/x", "/usr/local/sbin/y", "/tmp/x", "/proc/1/status",
         "/lib/x.so", "/lib64/ld.so", "/usr/lib/x", "/boot/vmlinuz", "/etc", "/etcx/shadow", "/", "/x",
         "relative/x", "/a/../etc/shadow", "/x//etc/shadow", "/tmp/.hidden", "/tmp/caf\u00e9", "/etc/",
         "/var/log", "/tmp/x/access_log", "/srv/cron", "/run/utmp", "/etc/security/opasswd"]
FLAGS = [0, 1, 2, 3, 1 | 4096, 2 | 4 | 256, 2 | 256, 1 | 16384, 2 | 4 | 16384, 1 | 1024, 1 | 8192, 2 | 8]
KINDS = """
- rule: exact
  desc: x
  condition: evt.type = openat and fd.name in (/etc/shadow, /tmp/x) and evt.is_open_read = true
  output: "%fd.name"
  priority: WARNING
- rule: prefix and flags
  desc: x
  condition: evt.type in (open, openat) and fd.name startswith /var/log and evt.arg.flags contains O_TRUNC
  output: "%fd.name"
  priority: WARNING
- rule: directory and file name
  desc: x
  condition: evt.type = openat and (fd.directory = /etc/pam.d or fd.filename in (auth.log, access_log))
  output: "%fd.name"
  priority: WARNING
- rule: glob pmatch endswith
  desc: x
  condition: >
    evt.type = openat and (fd.name glob '/dev/s*' or fd.name pmatch (/lib64, /boot)
    or (fd.nameraw endswith _history and evt.is_open_write = true)) and not fd.name contains "/."
  output: "%fd.name"
  priority: WARNING
- rule: writes
  desc: x
  condition: evt.type = openat and evt.is_open_write = true and not fd.name startswith /proc
  output: "%fd.name"
  priority: WARNING
"""
RULES = {"default": ROOT / "rules" / "pyfalco_rules.yaml",
         "stable": ROOT.parent / "shared" / "rules" / "falco_rules.yaml", "kinds": KINDS}


def _variant(evt: Event, path: str, flags: int) -> Event:
    """The same record with the path and flags parameters replaced (in its decoded values)."""
    names = evt.params
    vals = list(evt.values())
    keys = list(names)
    vals[keys.index("name")] = path
    vals[keys.index("flags")] = flags
    new = Event.__new__(Event)
    for attr in ("ts", "tid", "len", "type", "nparams", "cpu", "flags", "num", "buf", "off"):
        setattr(new, attr, getattr(evt, attr))
    new._vals = tuple(vals)
    new._params = None
    return new


@pytest.mark.parametrize("rules", sorted(RULES))
def test_bucket_with_prefilter_matches_rule_by_rule(rules):
    engine = pyfalco.Engine(RULES[rules], capture=pyfalco.Capture("replay", capture_file=str(CAPTURES[0])),
                            rule_matching="all")
    ruleset = engine.ruleset
    insp = engine.inspector
    matchers, _mask = ruleset.code_matchers(insp.event_code_names, "syscall")
    trees = [r.tree for r in ruleset.enabled_rules("syscall") if r.evttypes & {"open", "openat", "openat2"}]
    guard = open_guard(trees, kfilter)
    assert guard is not None
    skipped = matched = compared = 0
    for capture in CAPTURES:
        insp = pyfalco.Inspector()
        with pyfalco.Capture("replay", capture_file=str(capture)) as cap:
            insp.attach(cap)
            seen = 0
            for evt in cap:
                insp.process(evt)
                if evt.type not in (E_OPEN, E_OPENAT, E_OPENAT2) or seen >= 8:
                    continue
                seen += 1
                for path in PATHS:
                    for flags in FLAGS:
                        ie = insp.process(_variant(evt, path, flags))
                        if ie.fd is None:
                            continue
                        want = tuple(ruleset.match(ie))
                        got = matchers[evt.type](ie)
                        assert got == want, (capture.name, path, flags)
                        compared += 1
                        matched += bool(want)
                        if not guard(ie):
                            skipped += 1
                            assert not want, (capture.name, path, flags)
    # the engine's buckets of open events do test the prefilter first
    assert any("if not _guard(evt)" in getattr(matchers[c], "source", "") for c in (E_OPEN, E_OPENAT, E_OPENAT2))
    # not vacuous: the prefilter skipped events and rules matched others
    assert compared > 1000 and skipped > 100 and matched > 10, (compared, skipped, matched)
