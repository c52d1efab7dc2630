# SPDX-License-Identifier: Apache-2.0
"""Live state-engine tests: one eBPF capture and one Inspector for the session (root)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# fields read by the tests: taken when the event is processed, as Falco evaluates rules (the state
# moves on with the next events: parents exit, threads exec)
FIELDS = """evt.type evt.num evt.time evt.rawtime evt.dir evt.category evt.res evt.rawres evt.failed evt.args
evt.arg.res evt.arg.name evt.arg.flags evt.arg.dirfd evt.rawarg.dirfd evt.arg[2] evt.arg.nosuchparam evt.hostname
evt.is_open_read evt.is_open_write evt.is_open_exec evt.is_open_create evt.deltatime evt.type.is[openat]
evt.type.is[open] evt.arg.domain evt.arg.fd
proc.name proc.exe proc.exepath proc.cmdline proc.args proc.pname proc.pcmdline proc.aname[0] proc.aname[1]
proc.aname[2] proc.aname[3] proc.aname[4] proc.aname proc.acmdline[3] proc.apid[1] proc.apid[4] proc.ppid proc.pid
proc.vpid proc.cwd proc.duration proc.ppid.duration proc.sid proc.sname proc.vpgid proc.is_sid_leader
proc.stdout.name proc.loginshellid proc.env proc.env[PYFALCO_MARK] proc.tty proc.pexe proc.pexepath
proc.is_exe_upper_layer proc.exe_ino proc.exe_ino.mtime proc.is_exe_from_memfd proc.vpgid.name
thread.tid thread.ismain thread.vtid thread.cap_effective user.uid user.name user.homedir user.shell user.loginuid
user.loginname group.gid group.name
fd.num fd.type fd.typechar fd.name fd.nameraw fd.directory fd.filename fd.ip fd.cip fd.sip fd.lip fd.rip fd.port
fd.cport fd.sport fd.lport fd.rport fd.l4proto fd.sockfamily fd.is_server fd.connected fd.name_changed fd.types
fd.net fd.snet fs.path.name fs.path.source fs.path.target
container.id container.full_id container.name container.image container.image.repository
container.image.tag container.image.id container.privileged container.type k8s.pod.name k8s.ns.name""".split()


class Snap:
    """An InspectedEvent with the values of FIELDS taken at processing time."""

    __slots__ = ("ie", "values")

    def __init__(self, ie, getters):
        self.ie = ie
        self.values = {name: fn(ie) for name, fn in getters}

    @property
    def name(self):
        return self.ie.name

    @property
    def thread(self):
        return self.ie.thread

    @property
    def evt(self):
        return self.ie.evt

    def get(self, field, default=None):
        if field not in self.values:
            raise KeyError(f"{field} is not snapshotted: add it to FIELDS in tests/state/conftest.py")
        v = self.values[field]
        return default if v is None else v

    def __repr__(self):
        return f"<Snap {self.ie!r}>"


class Live:
    """Runs a workload and collects the events (as Snaps) of the processes it creates."""

    def __init__(self, cap, insp):
        self.cap = cap
        self.insp = insp
        prov = insp.provider
        self.getters = []
        for text in FIELDS:
            name, arg = text, None
            if text.endswith("]"):
                name, _, arg = text[:-1].partition("[")
            self.getters.append((text, prov.accessor(name, arg)))

    def drain(self, settle: float = 0.3, limit: float = 10.0):
        """Processes everything captured so far (every event goes through the state).

        Bounded: on a busy machine the rings never run dry, so after ``settle`` it stops at the
        first empty read or at ``limit`` seconds, whichever comes first."""
        out = []
        start = time.monotonic()
        deadline = start + settle
        while True:
            batch = self.cap.next_batch(50)
            for evt in batch:
                out.append(Snap(self.insp.process(evt), self.getters))
            now = time.monotonic()
            if now >= deadline and (not batch or now - start >= limit):
                return out

    def run(self, fn, settle: float = 0.4):
        """Drains, runs ``fn()``, drains again; returns (fn's result, events after fn started)."""
        self.drain(0.05)
        res = fn()
        return res, self.drain(settle)

    @staticmethod
    def of(events, pids=None, name=None, pred=None):
        out = []
        for ie in events:
            if name is not None and ie.name != name:
                continue
            if pids is not None and (ie.thread is None or ie.thread.pid not in pids):
                continue
            if pred is not None and not pred(ie):
                continue
            out.append(ie)
        return out

    def descendants_of(self, events, root_pid):
        """pids of every process that descends from root_pid, as the state saw them."""
        pids = {root_pid}
        for ie in events:
            t = ie.thread
            if t is None:
                continue
            for a in [t] + list(self.insp.threads.ancestors(t)):
                if a.pid in pids:
                    pids.add(t.pid)
                    break
        return pids


@pytest.fixture(scope="session")
def live():
    if os.geteuid() != 0:
        pytest.fail("state tests need root (live eBPF capture)")
    import pyfalco
    from pyfalco.inspector import Inspector
    with pyfalco.Capture(snaplen=256) as cap:
        insp = Inspector(cap)
        try:
            yield Live(cap, insp)
        finally:
            insp.close()
