# SPDX-License-Identifier: Apache-2.0
"""Live state-engine tests: one eBPF capture and one Inspector for the session (root)."""

from __future__ import annotations

import os
import sys
import time
import uuid
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


MY = os.getpid()


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

    def _wanted(self, ie, memo: dict) -> bool:
        """Whether the tests may look at this event: this process and its descendants, anything
        in a container, threads the state does not know. Every event goes through the state;
        only these are snapshotted (150 fields an event), so that the reader keeps up with the
        rest of a busy machine (other processes' load is not what these tests are about)."""
        t = ie.thread
        if t is None or t.container_id:
            return True
        pid = t.pid
        got = memo.get(pid)
        if got is None:
            got = pid == MY or any(a.pid == MY for a in self.insp.threads.ancestors(t))
            memo[pid] = got
        return got

    def _dropped(self) -> int:
        st = self.cap.stats()
        return sum(v for k, v in st.items() if k.startswith("n_drops"))

    def drain(self, settle: float = 0.3, limit: float = 10.0, guard: float = 300.0):
        """Processes everything captured so far (every event goes through the state).

        "So far" is made exact with a marker: a failed open of a unique path, issued now; the
        drain goes on until the marker's event has been processed, so every event of this
        process before it is in (on a busy machine the reader may lag seconds behind: a
        time-bounded drain then missed the workload's events). After the marker it goes on
        for ``settle`` s (events of other processes that finish a little later), stopping at the
        first empty read or at ``limit`` s. A marker the driver dropped (a full ring, counted)
        is issued again once the rings ran dry; ``guard`` only bounds a reader that never
        catches up (the failure then says so, with the driver's counters)."""
        def mark() -> str:
            path = f"/proc/self/pyfalco-drain-{uuid.uuid4().hex}"
            try:
                os.close(os.open(path, os.O_RDONLY))
            except OSError:
                pass
            return path
        markers = {mark()}
        out = []
        memo: dict = {}
        seen_at = None
        start = checked = time.monotonic()
        dropped = self._dropped()
        while True:
            batch = self.cap.next_batch(50)
            for evt in batch:
                ie = self.insp.process(evt)
                if seen_at is None and evt.name == "openat" and evt.get("name") in markers:
                    seen_at = time.monotonic()
                if self._wanted(ie, memo):
                    out.append(Snap(ie, self.getters))
            now = time.monotonic()
            if seen_at is None:
                if now - start > guard:
                    raise AssertionError(f"drain: the reader did not catch up in {guard:g}s; driver "
                                         f"counters {self.cap.stats()}")
                if not batch:
                    markers.add(mark())     # ran dry without it: it was dropped
                elif now - checked >= 1.0:
                    checked = now
                    d = self._dropped()
                    if d != dropped:        # the driver dropped events since: maybe the marker
                        dropped = d
                        markers.add(mark())
                continue
            if now - seen_at >= settle and (not batch or now - seen_at >= limit):
                return out

    def run(self, fn, settle: float = 0.4):
        """Drains, runs ``fn()``, drains again; returns (fn's result, events after fn started)."""
        self.drain(0.0, limit=0.0)      # up to the marker: what came before fn is not wanted
        res = fn()
        return res, self.drain(settle, limit=max(settle, 3.0))

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


_LIVE: list = []


def _driver_drops() -> int | None:
    if not _LIVE:
        return None
    try:
        return _LIVE[0]._dropped()
    except Exception:  # noqa: BLE001 - the capture is closed
        return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A live test that fails on a machine too busy for this reader: say when the driver dropped
    events meanwhile (counted, a full ring), so such a failure is not read as a state bug."""
    before = _driver_drops()
    yield
    after = _driver_drops()
    if before is not None and after is not None and after > before:
        item.add_report_section("call", "driver drops", f"the driver dropped {after - before} events during "
                                "this test (a full ring: the reader was behind a busy machine)")


@pytest.fixture(scope="session")
def live():
    if os.geteuid() != 0:
        pytest.fail("state tests need root (live eBPF capture)")
    import pyfalco
    from pyfalco.inspector import Inspector
    with pyfalco.Capture(snaplen=256) as cap:
        insp = Inspector(cap)
        try:
            _LIVE[:] = [Live(cap, insp)]
            yield _LIVE[0]
        finally:
            _LIVE.clear()
            insp.close()
