# SPDX-License-Identifier: Apache-2.0
"""The analysis behind the kernel-side filter (pyfalco/kfilter.py): what the rules let the driver
drop, and the rules that keep it from dropping anything (the live proof is test_kfilter_live.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyfalco import kfilter
from pyfalco.kfilter import KF_CLOSE, KF_OPENAT, PPM_O_RDONLY, PPM_O_WRONLY
from pyfalco.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
STABLE = ROOT.parent / "shared" / "rules" / "falco_rules.yaml"


def _kf(rules_yaml: str) -> kfilter.KernelFilter:
    res = load_rules(rules_yaml)
    assert res.ok, res.as_text(verbose=True)
    return kfilter.derive(res.ruleset)


def _rule(cond: str, output: str = "x %proc.name", name: str = "r") -> str:
    return f"- rule: {name}\n  desc: d\n  condition: {cond}\n  output: {output}\n  priority: WARNING\n"


def test_stable_rules_send_only_what_a_rule_can_match():
    kf = kfilter.derive(load_rules(str(STABLE)).ruleset)
    assert kf.on & KF_OPENAT and kf.on & KF_CLOSE, kf.describe()
    assert not kf.wanted(PPM_O_RDONLY, "/dev/null")
    assert not kf.wanted(PPM_O_RDONLY, "/usr/lib/x86_64-linux-gnu/libc.so.6")
    assert kf.wanted(PPM_O_RDONLY, "/etc/shadow") and kf.wanted(PPM_O_RDONLY, "/etc/sudoers.d/x")
    assert kf.wanted(PPM_O_WRONLY, "/dev/null")           # a written file: 'release_agent' rule
    for always in ("relative", "/etc/../etc/hostname", "/a//b", "/root/.ssh/id_rsa", "/a/b/", "/caf\u00e9"):
        assert kf.wanted(PPM_O_RDONLY, always), always
    assert kf.wanted(PPM_O_RDONLY, "/usr/lib", is_dir=True)
    text = kf.describe()
    assert "Read sensitive file untrusted" in text and "/etc/shadow" in text


def test_default_rules_hold_opens_and_say_before_what():
    """pyfalco's default rules read fd.name on fchmod/fchown/setns/unlinkat: the opens the filter
    drops are held in the kernel and sent before such an event uses their fd, so the filter is on
    and says which rules read which events' fds."""
    kf = kfilter.derive(load_rules(str(ROOT / "rules" / "pyfalco_rules.yaml")).ruleset)
    assert kf.on & KF_OPENAT and kf.on & KF_CLOSE, kf.describe()
    assert not kf.wanted(PPM_O_RDONLY, "/etc/hostname")
    assert {"fchmod", "fchown", "setns", "unlinkat"} <= set(kf.release_types), kf.release_types
    text = kf.describe()
    assert "held in the kernel" in text and "setns" in text
    reasons = "\n".join(kf.reasons)
    for rule in ("Set Setuid or Setgid bit", "Change thread namespace", "Delete or rename shell history"):
        assert f"rule {rule!r} reads fd." in reasons, reasons


def test_uses_table_names_the_fds_each_event_reads():
    """The driver sends a held open before an event whose fd parameter names it: the table has
    the used fds of the schema, never the one an event creates (that one is forgotten)."""
    from pyfalco import _schema
    uses = struct.unpack("<1024H", kfilter._uses_table())
    by_name = {(e.name, e.enum.endswith("_X")): e for e in _schema.EVENTS if not "OLD_VERSION" in e.flags}

    def bits(name: str) -> set:
        e = by_name[(name, True)]
        return {e.params[i].name for i in range(16) if uses[e.code] >> i & 1}
    assert bits("fchmod") == {"fd"} and bits("fchown") == {"fd"} and bits("setns") == {"fd"}
    assert bits("unlinkat") == {"dirfd"} and bits("openat") == {"dirfd"} and bits("close") == {"fd"}
    assert bits("dup2") == {"oldfd"} and bits("fcntl") == {"fd"} and bits("read") == {"fd"}
    assert bits("renameat2") == {"olddirfd", "newdirfd"}


@pytest.mark.parametrize("cond,why", [
    ("evt.type = openat and fd.name contains secret", "whatever its path and flags"),
    ("evt.type = openat and not fd.name startswith /tmp", "whatever its path and flags"),
    ("evt.type = openat and evt.num > 5", "counts or times"),
    ("evt.type = poll and evt.args contains shadow", "evt.args"),
    ("evt.type = poll and evt.arg.fds contains shadow", "evt.arg"),
    ("evt.type = execve and proc.fdopencount > 10", "proc.fdopencount"),
    ("evt.type = execve and fdlist.names contains shadow", "fdlist.names"),
])
def test_what_turns_it_off(cond, why):
    kf = _kf(_rule(cond))
    assert kf.on == 0 and why in "\n".join(kf.reasons), kf.reasons


@pytest.mark.parametrize("cond", [
    "evt.type = openat and fd.name = /etc/shadow and not evt.num = 0",    # Falco's never_true
    "evt.type = connect and fd.typechar in (4, 6) and fd.sip = 10.0.0.1",  # sockets only
    "evt.type = socket and evt.args contains AF_PACKET",                   # its own, new fd
    "evt.type = execve and proc.name = bash",                              # no fd at all
    "evt.type = openat and fd.directory endswith /.ssh",                   # always sent anyway
    "evt.type = read and fd.name = /etc/shadow",                           # held opens: sent first
    "evt.type = dup and evt.args contains shadow",
    "evt.type = fchmod and evt.arg.fd contains shadow",
])
def test_what_keeps_it_on(cond):
    kf = _kf(_rule(cond))
    assert kf.on & KF_OPENAT, kf.reasons
    assert not kf.wanted(PPM_O_RDONLY, "/dev/null")


def test_flags_and_patterns_of_one_rule():
    kf = _kf(_rule("evt.type in (open, openat) and ((evt.is_open_write = true and fd.name startswith /var/log/)"
                   " or fd.filename = id_rsa or fd.directory in (/etc/ssh) or fd.name pmatch (/srv/data))"))
    assert kf.wanted(PPM_O_WRONLY, "/var/log/x") and not kf.wanted(PPM_O_RDONLY, "/var/log/x")
    assert kf.wanted(PPM_O_RDONLY, "/home/u/id_rsa") and not kf.wanted(PPM_O_RDONLY, "/home/u/id_rsa.pub")
    assert kf.wanted(PPM_O_RDONLY, "/etc/ssh/sshd_config") and not kf.wanted(PPM_O_RDONLY, "/etc/ssh/a/b")
    assert kf.wanted(PPM_O_RDONLY, "/srv/data/f") and not kf.wanted(PPM_O_RDONLY, "/srv/dat")
    assert not kf.wanted(PPM_O_RDONLY, "/etc/passwd")


def test_a_close_rule_keeps_closes():
    kf = _kf(_rule("evt.type = openat and fd.name = /etc/shadow", name="a")
             + _rule("evt.type = close and proc.name = nginx", name="b"))
    assert kf.on & KF_OPENAT and not kf.on & KF_CLOSE


def test_spec_layout():
    kf = _kf(_rule("evt.type = openat and fd.name in (/a/b, /c)"))
    spec = kf.spec()
    magic, on, flags_any, n = struct.unpack_from("<IIII", spec)
    assert (magic, on, n) == (kfilter.MAGIC, kf.on, 2) and len(spec) == 16 + 20 * 2 + 1024 + 2048
    h, ln, kind, mask = struct.unpack_from("<QIII", spec, 16)
    assert (h, ln, kind, mask) == (kfilter.path_hash(b"/a/b"), 4, kfilter.EXACT, kfilter.ANY)
    assert kfilter.path_hash(b"") == 0xCBF29CE484222325


def test_path_hash_is_word_at_a_time():
    """The driver (pf_kf_mix) folds 8 bytes at a time, the last word zero-padded; the pattern
    key carries the length, so a padded and an unpadded name hash alike by design."""
    m = (1 << 64) - 1
    h = ((0xCBF29CE484222325 ^ int.from_bytes(b"/ab", "little")) * 0x100000001B3) & m
    h ^= h >> 32
    assert kfilter.path_hash(b"/ab") == h == kfilter.path_hash(b"/ab\0")
    w1, w2 = int.from_bytes(b"/dev/nul", "little"), int.from_bytes(b"l", "little")
    h = ((0xCBF29CE484222325 ^ w1) * 0x100000001B3) & m
    h ^= h >> 32
    h2 = ((h ^ w2) * 0x100000001B3) & m
    assert kfilter.path_hash(b"/dev/nul") == h and kfilter.path_hash(b"/dev/null") == h2 ^ (h2 >> 32)
