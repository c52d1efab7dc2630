# SPDX-License-Identifier: Apache-2.0
"""Container meta events (Falco's ``container`` event, PPME_CONTAINER_JSON_2_E).

When a live container's metadata lookup ends, the Inspector puts one ``container`` event per
container into the stream, attributed to a thread of only that container; rules written on
Falco's ``container_started`` (``evt.type = container or (spawned_process and proc.vpid = 1)``)
see containers that exit before their own events could carry metadata. Checked here:

* the event itself (no root): its JSON, its fields, once per container, delivered by ``process``
  (to ``meta_handler``) and by ``process_raw`` (to its handler when the type is wanted);
* replays: a capture's container events give their container's fields, as libsinsp does, and a
  live session's recording carries our meta events so the replay fires the same rules;
* live (root): ``podman run --rm --privileged IMG true`` and ``podman run --rm -v
  /proc:/host/proc:ro IMG true`` raise "Launch Privileged Container" / "Launch Sensitive Mount
  Container" from the meta event, with the default rules and with Falco's rule text, also while
  other processes load the capture; a privileged pod container run by containerd through CRI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "rules" / "pyfalco_rules.yaml"
UPSTREAM_RULES = REPO.parent / "shared" / "rules" / "falco_rules.yaml"

#: counts meta events in a session (every container event, whatever the other rules say)
META_RULE = """
- rule: pyfalco test container event
  desc: every container meta event
  condition: evt.type = container
  output: container event %container.id %container.name privileged=%container.privileged
  priority: DEBUG
"""

#: Falco's container-start rules over its stable ruleset (which defines spawned_process and
#: container): Falco's container_started macro and the two rules' conditions, as facts
UPSTREAM_CONTAINER_RULES = """
- macro: container_started
  condition: >
    ((evt.type = container or (spawned_process and proc.vpid=1))
     and container.image.repository != incomplete)

- rule: Launch Privileged Container
  desc: a privileged container started (Falco's condition)
  condition: container_started and container and container.privileged=true
  output: Privileged container started (container_id=%container.id image=%container.image.repository)
  priority: INFO

- rule: Launch Sensitive Mount Container
  desc: a container with /proc of the host mounted started (Falco's condition, one mount)
  condition: container_started and container and container.mount.dest[/proc] != "N/A"
  output: Container with sensitive mount started (container_id=%container.id mounts=%container.mounts)
  priority: INFO
"""


def _info(cid: str, **kw):
    from pyfalco.state.containers import ContainerInfo, Mount
    info = ContainerInfo(cid, "podman")
    info.name = kw.get("name", "web")
    info.image = "localhost/app:1"
    info.image_repository, info.image_tag = "localhost/app", "1"
    info.privileged = kw.get("privileged", True)
    info.mounts = [Mount("/proc", "/host/proc", "ro", False, "rprivate")]
    info.source = "test"
    info.complete = True
    return info


# ---- the event itself -------------------------------------------------------------------------------

def test_meta_event_fields_and_once_per_container():
    from pyfalco.inspector import Inspector
    from pyfalco.state.containers import container_from_json
    insp = Inspector(None, live=False)
    cid = "ab" * 32
    info = _info(cid)
    insp.containers.add(info)
    insp._meta_pending.extend([info, info])       # a second notification of the same container
    events = insp.meta_events(1_700_000_000_000_000_000)
    assert len(events) == 1
    ie = events[0]
    assert ie.name == "container" and ie.evt.num > 0 and ie.ts == 1_700_000_000_000_000_000
    assert ie.get("container.id") == cid[:12] and ie.get("container.full_id") == cid
    assert ie.get("container.privileged") is True and ie.get("container.name") == "web"
    assert ie.get("container.mount.dest[/proc]") == "/host/proc"
    assert ie.get("container.image.repository") == "localhost/app"
    back = container_from_json(ie.evt.get("json").rstrip("\0") if isinstance(ie.evt.get("json"), str)
                               else bytes(ie.evt.get("json")).decode().rstrip("\0"))
    assert back.id == cid and back.privileged is True and back.mounts[0].dest == "/host/proc"
    insp._meta_pending.append(info)
    assert insp.meta_events() == []


def test_meta_event_json_survives_hostile_names():
    from pyfalco.inspector import container_event_record
    from pyfalco.events import Event
    info = _info("cd" * 32, name='evil"\n\u2028name\\')
    evt = Event.from_bytes(container_event_record(info, 5))
    raw = evt.get("json")
    text = raw if isinstance(raw, str) else bytes(raw).decode()
    assert json.loads(text.rstrip("\0"))["container"]["name"] == 'evil"\n\u2028name\\'


def _batch(records: list[bytes]) -> bytes:
    """A libpyfalco batch buffer of records (the ENTRY header process_raw reads)."""
    from pyfalco.events import ENTRY_HDR, ENTRY_SIZE, HDR
    out = bytearray()
    for rec in records:
        ts, tid, length, etype, nparams = HDR.unpack_from(rec)
        entry = ENTRY_HDR.pack(0, 0, len(rec), ts, tid, length, etype, nparams)[:ENTRY_SIZE]
        body = entry + rec
        out += body + b"\0" * ((-len(body)) % 8)
    return bytes(out)


def test_process_and_process_raw_deliver_meta_events():
    from pyfalco.inspector import Inspector, container_event_record
    from pyfalco.events import Event
    from pyfalco import _schema
    insp = Inspector(None, live=False)
    a, b = _info("ef" * 32), _info("01" * 32, privileged=False)
    insp.containers.add(a)
    insp.containers.add(b)
    # process(): meta_handler first, then the event
    seen = []
    insp.meta_handler = seen.append
    insp._meta_pending.append(a)
    plain = Event.from_bytes(container_event_record(_info("23" * 32), 10))
    ie = insp.process(plain)
    assert [m.get("container.full_id") for m in seen] == [a.id] and ie.evt is plain
    # process_raw(): into the handler when the container type is wanted, dropped otherwise
    code = next(e.code for e in _schema.EVENTS if e.enum == "PPME_CONTAINER_JSON_2_E")
    rec = container_event_record(_info("45" * 32), 20)
    buf = _batch([rec])
    got = []
    wanted = bytearray(65536)
    wanted[code] = 1
    insp._meta_pending.append(b)
    insp.process_raw(buf, 1, 0, bytes(wanted), got.append)
    assert [g.get("container.full_id") for g in got] == [b.id, "45" * 32]
    assert got[0].get("container.privileged") is False
    insp._meta_pending.append(_info("67" * 32))
    got.clear()
    insp.process_raw(buf, 1, 0, bytes(65536), got.append)
    assert got == [] and "67" * 32 in insp._meta_done


# ---- replays ----------------------------------------------------------------------------------------

def test_capture_container_events_carry_their_container():
    """falco_old_empty.scap holds three container events (docker, 2016): each gives its container's
    fields, and the container's own processes see the same metadata."""
    import pyfalco
    from pyfalco.inspector import Inspector
    path = REPO.parent / "shared" / "captures" / "falco_old_empty.scap"
    if not path.exists():
        pytest.fail(f"missing shared capture {path}")
    got = []
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        for ie in insp.events():
            if ie.name == "container":
                got.append((ie.get("container.id"), ie.get("container.name"), ie.get("container.image")))
    assert got[0] == ("ad8301db070e", "mitm_nginx", "nginx:latest")
    assert ("c644607f2c4e", "attacker_botnet_master", "alpine:latest") in got
    assert insp.stats()["n_containers"] == 2


# ---- live -------------------------------------------------------------------------------------------

def _root():
    if os.geteuid() != 0:
        pytest.skip("live eBPF tests need root")


@pytest.fixture(scope="module")
def image():
    _root()
    from pyfalco.generator.image import ensure_image
    return ensure_image()


def _session(rules_sources, **kw):
    from pyfalco.testing import DetectionSession
    return DetectionSession(rules_sources, **kw).start()


@pytest.fixture(scope="module")
def default_live(image):
    s = _session([str(DEFAULT_RULES), META_RULE])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def upstream_live(image):
    if not UPSTREAM_RULES.exists():
        pytest.fail(f"the upstream stable ruleset is missing: {UPSTREAM_RULES}")
    s = _session([str(UPSTREAM_RULES), UPSTREAM_CONTAINER_RULES, META_RULE])
    yield s
    s.stop()


def _podman_true(image: str, *options: str) -> str:
    from pyfalco.generator.context import PODMAN, RUN_OPTS
    with tempfile.TemporaryDirectory() as d:
        cidfile = os.path.join(d, "cid")
        cp = subprocess.run(PODMAN + ["run", *RUN_OPTS, "--cidfile", cidfile, *options, image, "/bin/true"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        with open(cidfile) as f:
            return f.read().strip()


def _alerts_of(session, w, cid: str, rule: str, bound: float = 15.0):
    """The window's alerts of ``rule`` for container ``cid`` once its meta event is in (the lookup
    runs off the event loop; each read of the window syncs with the capture)."""
    deadline = time.monotonic() + bound
    while True:
        try:
            alerts = w.alerts
        except TimeoutError:
            # the reader is behind by more than sync's 10 s (a machine loaded by other work):
            # it is still reading; a sync that never comes back fails at the deadline
            if time.monotonic() > deadline:
                raise
            continue
        mine = [a for a in alerts if cid.startswith(a.container_id)]
        if any(a.rule == "pyfalco test container event" for a in mine) or time.monotonic() > deadline:
            return [a for a in mine if a.rule == rule], mine
        time.sleep(0.2)


CASES = [("Launch Privileged Container", ("--privileged",)),
         ("Launch Sensitive Mount Container", ("-v", "/proc:/host/proc:ro"))]


@pytest.mark.root
@pytest.mark.parametrize("rule,options", CASES, ids=["privileged", "proc-mount"])
@pytest.mark.parametrize("ruleset", ["default", "upstream"])
def test_short_lived_podman_container_is_detected(request, image, ruleset, rule, options):
    session = request.getfixturevalue(f"{ruleset}_live")
    with session.watch() as w:
        cid = _podman_true(image, *options)
        w.add_container(cid)
        hits, mine = _alerts_of(session, w, cid, rule)
    metas = [a for a in mine if a.rule == "pyfalco test container event"]
    assert len(metas) == 1, [str(a) for a in mine]
    # the rule fired on the meta event itself (same event: same time), not only on an exec
    assert [a for a in hits if a.time_ns == metas[0].time_ns], [str(a) for a in mine]
    # a plain container raises neither rule
    with session.watch() as w2:
        plain = _podman_true(image)
        w2.add_container(plain)
        _, mine2 = _alerts_of(session, w2, plain, rule)
    assert [a for a in mine2 if a.rule == "pyfalco test container event"], [str(a) for a in mine2]
    assert not [a for a in mine2 if a.rule == rule], [str(a) for a in mine2]


@pytest.mark.root
def test_meta_event_alert_names_the_container(default_live, image):
    with default_live.watch() as w:
        cid = _podman_true(image, "--privileged", "--name", f"pyfalco-meta-{uuid.uuid4().hex[:8]}")
        w.add_container(cid)
        hits, _ = _alerts_of(default_live, w, cid, "Launch Privileged Container")
    meta = [a for a in hits if "evt_type=container" in a.message]
    assert meta, [str(a) for a in hits]
    assert "container_name=pyfalco-meta-" in meta[0].message and meta[0].container_id == cid[:12]


@pytest.mark.root
def test_short_lived_containers_detected_under_load(default_live, image):
    """A process opens and closes files in bursts (about twenty thousand events a second, what
    the reader sustains on this 2-core machine) while short-lived privileged containers come and
    go: every container's meta event still fires the rule, once."""
    loader = ("import os, time\nend = time.monotonic() + 90\n"
              "while time.monotonic() < end:\n"
              "    for _ in range(100):\n        os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
              "    time.sleep(0.01)\n")
    load = [subprocess.Popen([sys.executable, "-c", loader])]
    try:
        cids = []
        with default_live.watch() as w:
            for _ in range(3):
                cid = _podman_true(image, "--privileged")
                w.add_container(cid)
                cids.append(cid)
            # the reader may be well behind real time here: wait for each meta event itself (the
            # bound is a hang guard; the assertions below are about what the meta event said)
            for cid in cids:
                _alerts_of(default_live, w, cid, "Launch Privileged Container", bound=240.0)
        mgr = default_live.inspector.containers
        for cid in cids:
            mine = [a for a in w.alerts if cid.startswith(a.container_id)]
            info = mgr.containers.get(cid)
            why = (cid, info and (info.source, info.privileged, info.lookups, info.complete), [str(a) for a in mine])
            assert any(a.rule == "pyfalco test container event" for a in mine), ("no meta event", why)
            fired = [a for a in mine if "evt_type=container" in a.message and a.rule == "Launch Privileged Container"]
            assert len(fired) == 1, why
    finally:
        for p in load:
            p.kill()
            p.wait()


@pytest.mark.root
def test_recorded_meta_events_replay_the_same_alert(image, tmp_path):
    """A live session's recording carries the meta event: the replay raises the same alert."""
    from pyfalco.testing import replay
    rec = tmp_path / "live.scap"
    s = _session([str(DEFAULT_RULES), META_RULE], record=str(rec))
    try:
        with s.watch() as w:
            cid = _podman_true(image, "--privileged")
            w.add_container(cid)
            _alerts_of(s, w, cid, "Launch Privileged Container")
    finally:
        s.stop()
    res = replay(str(rec), [str(DEFAULT_RULES), META_RULE])
    metas = [a for a in res.alerts if a.rule == "pyfalco test container event" and cid.startswith(a.container_id)]
    assert len(metas) == 1
    assert [a for a in res.alerts if a.rule == "Launch Privileged Container" and "evt_type=container" in a.message
            and cid.startswith(a.container_id)]


@pytest.mark.root
def test_containerd_cri_privileged_container(default_live):
    """A privileged container of a pod, run by a private containerd through its CRI socket: the
    meta event carries the CRI metadata (the task bundle's annotations) and fires the rule."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from test_containerd import IMAGE, Containerd, build_image_archive
    finally:
        sys.path.pop(0)
    from pyfalco.state import container_cri
    from pyfalco.state.cri import CRIClient, NAMESPACE_CONTAINER, NAMESPACE_NODE, NAMESPACE_POD, SandboxConfig
    base = tempfile.mkdtemp(prefix="pyfalco-containerd-")
    ctd = Containerd(base)
    mgr = default_live.inspector.containers
    saved = (mgr.containerd_tasks, mgr.cri_sockets)
    client = sandbox_id = cid = None
    try:
        ctd.start()
        build_image_archive(f"{base}/image.tar")
        ctd.ctr("images", "import", f"{base}/image.tar")
        mgr.containerd_tasks, mgr.cri_sockets = ctd.tasks, (ctd.sock,)
        client = CRIClient(ctd.sock, timeout=10)
        uid = str(uuid.uuid4())
        sandbox = SandboxConfig(name="pyfalco-meta-pod", namespace="pyfalco-ns", uid=uid, privileged=True,
                                labels={"io.kubernetes.pod.name": "pyfalco-meta-pod",
                                        "io.kubernetes.pod.namespace": "pyfalco-ns", "io.kubernetes.pod.uid": uid},
                                log_directory=f"{base}/pods/{uid}", cgroup_parent=f"/kubepods/besteffort/pod{uid}",
                                network=NAMESPACE_NODE, pid=NAMESPACE_CONTAINER, ipc=NAMESPACE_POD)
        os.makedirs(sandbox.log_directory, exist_ok=True)
        with default_live.watch(scope="all") as w:
            sandbox_id = client.run_pod_sandbox(sandbox, timeout=60)
            cid = client.create_container(sandbox_id, sandbox, "priv", IMAGE, command=["/bin/true"], privileged=True,
                                          labels={"io.kubernetes.container.name": "priv"}, log_path="priv/0.log",
                                          timeout=60)
            client.start_container(cid, timeout=60)
            hits, mine = _alerts_of(default_live, w, cid, "Launch Privileged Container", bound=30.0)
        meta = [a for a in hits if "evt_type=container" in a.message]
        assert meta, [str(a) for a in mine]
        assert "container_name=priv" in meta[0].message
    finally:
        mgr.containerd_tasks, mgr.cri_sockets = saved
        try:
            if client is not None:
                if cid is not None:
                    client.stop_container(cid, grace=0, timeout=60)
                    client.remove_container(cid, timeout=60)
                if sandbox_id is not None:
                    client.stop_pod_sandbox(sandbox_id, timeout=60)
                    client.remove_pod_sandbox(sandbox_id, timeout=60)
                client.close()
        finally:
            container_cri.forget(ctd.sock)
            ctd.stop()
            import shutil
            shutil.rmtree(base, ignore_errors=True)
