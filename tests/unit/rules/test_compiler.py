# SPDX-License-Identifier: Apache-2.0
"""Generated code: shape of the source, bound constants, folding, and compiled == reference on the
stable ruleset for many random events."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyfalco.rules import compile_filter, load_rules
from pyfalco.rules.compiler import fold_constants
from pyfalco.rules.provider import DictProvider

STABLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rules" / "falco_rules.yaml"


def test_source_binds_accessors_and_sets_as_defaults():
    flt = compile_filter("evt.type in (open, openat) and proc.name = cat")
    assert "def filter(evt, _a0=_a0, _s1=_s1, _a2=_a2):" in flt.source
    assert "return ((_a0(evt) in _s1) and (_a2(evt) == 'cat'))" in flt.source
    assert "#   _a0 = accessor('evt.type', None)" in flt.source
    defaults = flt.fn.__defaults__
    assert frozenset({"open", "openat"}) in defaults


def test_short_circuit_is_kept():
    calls = []

    class Counting(DictProvider):
        def accessor(self, name, arg):
            get = super().accessor(name, arg)

            def acc(evt):
                calls.append(name)
                return get(evt)
            return acc

    flt = compile_filter("proc.name = a and proc.pname = b or fd.name = c", Counting())
    assert flt.matches({"proc.name": "x", "fd.name": "c"})
    assert calls == ["proc.name", "fd.name"]


def test_constant_folding():
    flt = compile_filter("proc.name in () or (fd.name = x and not proc.pname pmatch ())")
    assert "return (_a0(evt) == 'x')" in flt.source
    assert compile_filter("proc.name in ()").source.rstrip().endswith("return False")


def test_fold_keeps_macros_out():
    from pyfalco.rules import nodes as n
    tree = n.Macro("m", n.Not(n.Const(False)))
    assert fold_constants(tree, DictProvider()) == n.Const(True)


def test_regex_and_glob_are_precompiled():
    flt = compile_filter("proc.name regex 'a.c' and fd.name glob '/etc/*'")
    assert "_r" in flt.source and "_g" in flt.source
    assert flt.matches({"proc.name": "abc", "fd.name": "/etc/x"})


_VALUES = {
    "evt.type": ["open", "openat", "openat2", "execve", "execveat", "connect", "sendto", "dup2", "ptrace", "socket",
                 "symlink", "link", "init_module", "close"],
    "proc.name": ["cat", "bash", "sh", "sshd", "python3", "nc", "ncat", "grep", "find", "shred", "debugfs",
                  "memfd:x", "sudo", "mandb", None],
    "proc.pname": ["bash", "sshd", "runc", "containerd-shim", "systemd", None],
    "proc.aname[2]": ["bash", "sshd", None], "proc.aname[3]": ["sshd", None],
    "proc.aname": [("bash", "sshd"), ("runc",), None],
    "fd.name": ["/etc/shadow", "/etc/passwd", "/var/log/syslog", "/dev/shm/x", "/root/.ssh/id_rsa", "/tmp/x",
                "10.0.0.1:22->8.8.8.8:443", None],
    "fd.directory": ["/etc", "/var/log", "/dev/shm", "/tmp", None],
    "fd.filename": ["shadow", "syslog", "x", None],
    "fd.typechar": ["f", "4", "6", "u", None], "fd.num": [3, -1, 0, None], "fd.type": ["ipv4", "file", None],
    "evt.is_open_read": [True, False, None], "evt.is_open_write": [True, False, None],
    "evt.arg.flags": ["O_TRUNC", "O_RDONLY", None], "evt.arg.request": ["PTRACE_ATTACH", "PTRACE_TRACEME", None],
    "evt.arg.domain": ["AF_PACKET", "AF_INET", None], "evt.arg.target": ["/etc", "/tmp/x", None],
    "evt.arg.oldpath": ["/etc/shadow", "/x", None], "evt.rawres": [0, -1, 3, None], "evt.res": ["SUCCESS", "EINPROGRESS", None],
    "container.id": ["host", "abcdef123456", "", None], "container.image.repository": ["docker.io/library/nginx", None],
    "container.privileged": [True, False, None], "proc.tty": [0, 34816, None], "proc.args": ["-la", "-c id", "", None],
    "proc.cmdline": ["bash -i", "nc -e /bin/sh", "grep -r password", "find / -name id_rsa", None],
    "proc.exe": ["/bin/bash", "/dev/shm/x", "memfd:x", None], "proc.exepath": ["/bin/bash", "/dev/shm/x", None],
    "proc.is_exe_upper_layer": [True, False, None], "proc.is_exe_from_memfd": [True, False, None],
    "user.name": ["root", "www-data", "nobody", None], "user.uid": [0, 33, None], "user.loginuid": [-1, 0, 1000, None],
    "thread.cap_effective": ["CAP_SYS_ADMIN", "", None], "fd.sip": ["10.0.0.1", "8.8.8.8", None],
    "fd.ip": [("0.0.0.0",), ("10.1.1.1", "8.8.8.8"), ("10.1.1.1",), None],      # both ends
    "fd.net": [("127.0.0.1",), ("10.1.1.1", "8.8.8.8"), ("127.0.0.1", "8.8.8.8"), None],
    "fd.snet": ["10.1.1.1", "8.8.8.8", None], "fd.sport": [22, 443, 4444, None], "fd.l4proto": ["tcp", "udp", None],
    "fd.connected": [True, False, None], "fd.name_changed": [True, False, None], "k8s.ns.name": ["kube-system", None],
    "proc.duration": [10, 10**12, None], "proc.pexe": ["/bin/bash", None], "proc.pcmdline": ["bash", None],
}


def _random_event(rng):
    evt = {}
    for key, values in _VALUES.items():
        value = rng.choice(values)
        if value is not None:
            evt[key] = value
    return evt


def test_compiled_equals_reference_on_the_stable_ruleset():
    if not STABLE.exists():
        pytest.skip("shared/rules/falco_rules.yaml not present")
    rules = load_rules(STABLE).ruleset.rules
    rng = random.Random(1234)
    hits = 0
    for _ in range(1500):
        evt = _random_event(rng)
        for rule in rules:
            compiled = rule.matches(evt)
            assert compiled == rule.reference_matches(evt), (rule.name, evt)
            hits += compiled
    assert hits > 0


def test_bucket_reads_unwrapped_extractors_and_falls_back_to_wrapped_ones():
    """compile_bucket calls extractors without fields.common.safe's wrapper; when one raises, the
    wrapped bucket answers for the event: the results are those of the wrapped extractors (None
    for a value that raised) either way."""
    from pyfalco.fields.common import safe
    from pyfalco.rules.compiler import compile_bucket

    class Raising(DictProvider):
        def accessor(self, name, arg):
            get = super().accessor(name, arg)

            def extract(evt):
                if evt.get("boom") == name:
                    raise KeyError(name)
                return get(evt)
            return safe(extract)

    trees = [compile_filter(c, Raising(), check_evttypes=False).tree
             for c in ("proc.name = a and fd.name exists", "not fd.name exists", "proc.name = b")]
    errors = []
    fn = compile_bucket(trees, Raising(), [("r0",), ("r1",), ("r2",)], False, lambda e: errors.append(e) or ("err",))
    assert fn.safe_bucket is not fn and "_on_error" in fn.source
    # no raise: the fast bucket answers
    assert fn({"proc.name": "a", "fd.name": "x"}) == ("r0",)
    # fd.name raises: the wrapped extractor gives None, so "not fd.name exists" holds and r0 does not
    assert fn({"proc.name": "a", "fd.name": "x", "boom": "fd.name"}) == ("r1",)
    assert fn({"proc.name": "b", "boom": "proc.name"}) == ("r1",)
    assert errors == []
