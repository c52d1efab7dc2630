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
  other processes load the capture;
* live through containerd's CRI (a private containerd whose state is where a node's is, under
  /run): short-lived privileged pod containers and pod containers with the host's /proc or /etc
  mounted raise the same rules, with both rulesets and under load; a plain pod container raises
  neither (its mounts are the ones it asked for, as libsinsp has them from CRI, not containerd's
  own binds under /run/containerd).
"""

from __future__ import annotations

import contextlib
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
#: container; the two rules are in Falco's incubating ruleset since rules 3.0): Falco's
#: container_started and sensitive_mount macros and the two rules' conditions, as facts
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

- macro: sensitive_mount
  condition: >
    (container.mount.dest[/proc*] != "N/A" or container.mount.dest[/var/run/docker.sock] != "N/A"
     or container.mount.dest[/var/run/crio/crio.sock] != "N/A"
     or container.mount.dest[/run/containerd/containerd.sock] != "N/A"
     or container.mount.dest[/var/lib/kubelet] != "N/A" or container.mount.dest[/var/lib/kubelet/pki] != "N/A"
     or container.mount.dest[/] != "N/A" or container.mount.dest[/home/admin] != "N/A"
     or container.mount.dest[/etc] != "N/A" or container.mount.dest[/etc/kubernetes] != "N/A"
     or container.mount.dest[/etc/kubernetes/manifests] != "N/A" or container.mount.dest[/root*] != "N/A")

- rule: Launch Sensitive Mount Container
  desc: a container with a sensitive host path mounted started (Falco's condition and sensitive_mount)
  condition: container_started and container and sensitive_mount
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


@contextlib.contextmanager
def _load(seconds: int = 90):
    """A process that opens and closes files in bursts (about twenty thousand events a second,
    what the reader sustains on this 2-core machine), killed on exit."""
    loader = (f"import os, time\nend = time.monotonic() + {seconds}\n"
              "while time.monotonic() < end:\n"
              "    for _ in range(100):\n        os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
              "    time.sleep(0.01)\n")
    p = subprocess.Popen([sys.executable, "-c", loader])
    try:
        yield p
    finally:
        p.kill()
        p.wait()


@pytest.mark.root
def test_short_lived_containers_detected_under_load(default_live, image):
    """A process opens and closes files in bursts (about twenty thousand events a second, what
    the reader sustains on this 2-core machine) while short-lived privileged containers come and
    go: every container's meta event still fires the rule, once."""
    with _load():
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


# ---- containerd through CRI -------------------------------------------------------------------------

class _Pod:
    """A private containerd (tests/state/test_containerd.py's) with one privileged pod, in which the
    tests create short-lived containers through the CRI socket as kubelet does."""

    def __init__(self, base: str):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from test_containerd import IMAGE, Containerd, build_image_archive
        finally:
            sys.path.pop(0)
        from pyfalco.state.cri import CRIClient, NAMESPACE_CONTAINER, NAMESPACE_NODE, NAMESPACE_POD, SandboxConfig
        self.base, self.image = base, IMAGE
        self.ctd = Containerd(base)
        try:
            self.ctd.start()
            build_image_archive(f"{base}/image.tar")
            self.ctd.ctr("images", "import", f"{base}/image.tar")
        except BaseException:
            self.ctd.stop()
            raise
        self.client = CRIClient(self.ctd.sock, timeout=10)
        uid = str(uuid.uuid4())
        # privileged: containerd refuses a privileged container in an unprivileged pod
        self.sandbox = SandboxConfig(name="pyfalco-meta-pod", namespace="pyfalco-ns", uid=uid, privileged=True,
                                     labels={"io.kubernetes.pod.name": "pyfalco-meta-pod",
                                             "io.kubernetes.pod.namespace": "pyfalco-ns", "io.kubernetes.pod.uid": uid},
                                     log_directory=f"{base}/pods/{uid}", cgroup_parent=f"/kubepods/besteffort/pod{uid}",
                                     network=NAMESPACE_NODE, pid=NAMESPACE_CONTAINER, ipc=NAMESPACE_POD)
        os.makedirs(self.sandbox.log_directory, exist_ok=True)
        self.cids: list[str] = []
        try:
            self.sandbox_id = self.client.run_pod_sandbox(self.sandbox, timeout=60)
        except BaseException:
            self.client.close()
            self.ctd.stop()
            raise

    def true(self, name: str, privileged: bool = False, mounts=()) -> str:
        """Creates and starts a container of the pod that runs ``/bin/true``; its id."""
        cid = self.client.create_container(self.sandbox_id, self.sandbox, name, self.image, command=["/bin/true"],
                                           privileged=privileged, mounts=mounts,
                                           labels={"io.kubernetes.container.name": name},
                                           log_path=f"{name}/0.log", timeout=60)
        self.cids.append(cid)
        self.client.start_container(cid, timeout=60)
        return cid

    def close(self) -> None:
        from pyfalco.state import container_cri
        from pyfalco.state.cri import CRIError
        try:
            for cid in self.cids:
                # a container that exits while it is being stopped can be reported running for a
                # moment after StopContainer returns: ask again until the bound
                deadline = time.monotonic() + 30
                while True:
                    self.client.stop_container(cid, grace=0, timeout=60)
                    try:
                        self.client.remove_container(cid, timeout=60)
                        break
                    except CRIError as err:
                        if "still running" not in str(err) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
            self.client.stop_pod_sandbox(self.sandbox_id, timeout=60)
            self.client.remove_pod_sandbox(self.sandbox_id, timeout=60)
            self.client.close()
        finally:
            container_cri.forget(self.ctd.sock)
            self.ctd.stop()


@pytest.fixture(scope="module")
def cri_pod():
    _root()
    import shutil
    for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (tools/setup installs containerd and runc)")
    if not os.path.exists("/bin/busybox"):
        pytest.fail("busybox-static is needed for the pod's image (tools/setup installs it)")
    # a node's containerd keeps its state (the pod's /dev/shm) under /run/containerd: the private
    # one's is where the same globs (sensitive_mount's /run/containerd*) see it
    base = tempfile.mkdtemp(prefix="containerd-pyfalco-", dir="/run")
    pod = None
    try:
        pod = _Pod(base)
        yield pod
    finally:
        try:
            if pod is not None:
                pod.close()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _on_containerd(session, pod: _Pod):
    """Points the session's ContainerManager at the private containerd (restored afterwards)."""
    mgr = session.inspector.containers
    saved = (mgr.containerd_tasks, mgr.cri_sockets)
    mgr.containerd_tasks, mgr.cri_sockets = pod.ctd.tasks, (pod.ctd.sock,)
    try:
        yield mgr
    finally:
        mgr.containerd_tasks, mgr.cri_sockets = saved


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.mark.root
def test_containerd_cri_privileged_container(default_live, cri_pod):
    """A privileged container of a pod, run by a private containerd through its CRI socket: the
    meta event carries the CRI metadata (the task bundle's annotations) and fires the rule."""
    with _on_containerd(default_live, cri_pod), default_live.watch(scope="all") as w:
        name = _name("priv")
        cid = cri_pod.true(name, privileged=True)
        hits, mine = _alerts_of(default_live, w, cid, "Launch Privileged Container", bound=30.0)
    meta = [a for a in hits if "evt_type=container" in a.message]
    assert meta, [str(a) for a in mine]
    assert f"container_name={name}" in meta[0].message


#: host paths a pod container gets mounted (kubelet's hostPath volumes), each sensitive by both
#: rulesets' sensitive_mount: the host's /proc, and its /etc
CRI_MOUNTS = [("/proc", "/host/proc"), ("/etc", "/host/etc")]


@pytest.mark.root
@pytest.mark.parametrize("source,dest", CRI_MOUNTS, ids=["proc", "etc"])
@pytest.mark.parametrize("ruleset", ["default", "upstream"])
def test_containerd_cri_sensitive_mount_container(request, cri_pod, ruleset, source, dest):
    """A short-lived pod container with a host path mounted raises "Launch Sensitive Mount
    Container" from its meta event (mounts from the task bundle and CRI's ContainerStatus), with
    the default rules and Falco's; a plain container of the same pod raises neither container rule."""
    session = request.getfixturevalue(f"{ruleset}_live")
    rule = "Launch Sensitive Mount Container"
    with _on_containerd(session, cri_pod):
        with session.watch(scope="all") as w:
            cid = cri_pod.true(_name("mnt"), mounts=[(source, dest, True)])
            hits, mine = _alerts_of(session, w, cid, rule, bound=30.0)
        metas = [a for a in mine if a.rule == "pyfalco test container event"]
        assert len(metas) == 1, [str(a) for a in mine]
        assert [a for a in hits if a.time_ns == metas[0].time_ns], [str(a) for a in mine]
        assert f"{source}:{dest}" in next(a for a in hits if a.time_ns == metas[0].time_ns).message
        assert not [a for a in mine if a.rule == "Launch Privileged Container"], [str(a) for a in mine]
        with session.watch(scope="all") as w2:
            plain = cri_pod.true(_name("plain"))
            _, mine2 = _alerts_of(session, w2, plain, rule, bound=30.0)
        mgr = session.inspector.containers
        # container.mounts as libsinsp has them from CRI: the pod's requested binds only
        assert [(m.source, m.dest) for m in mgr.containers[cid].mounts] == [(source, dest)]
        assert mgr.containers[plain].mounts == []
    assert [a for a in mine2 if a.rule == "pyfalco test container event"], [str(a) for a in mine2]
    assert not [a for a in mine2 if a.rule in (rule, "Launch Privileged Container")], [str(a) for a in mine2]


def test_cri_bundle_mounts_are_the_requested_ones(tmp_path):
    """A node's containerd task bundle (its state under /run/containerd, the pod's files under
    /var/lib/containerd): the runtime's own mounts and binds are not container mounts, so a plain
    pod container matches none of sensitive_mount's host paths; a requested bind is kept."""
    from pyfalco.state.containers import ContainerInfo, ContainerManager
    cid, sid = "c1" * 32, "5a" * 32
    cri_dir = "io.containerd.grpc.v1.cri"
    mounts = [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec"]},
              {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
              {"destination": "/etc/hosts", "type": "bind", "source": f"/var/lib/containerd/{cri_dir}/sandboxes/{sid}/hosts",
               "options": ["rbind", "rprivate", "rw"]},
              {"destination": "/dev/shm", "type": "bind", "source": f"/run/containerd/{cri_dir}/sandboxes/{sid}/shm",
               "options": ["rbind", "rprivate", "rw"]},
              {"destination": "/data", "type": "bind", "source": f"/var/lib/containerd/{cri_dir}/containers/{cid}/volumes/x",
               "options": ["rbind"]},
              {"destination": "/host/run", "type": "bind", "source": "/run/containerd", "options": ["ro"]},
              {"destination": "/host/proc", "source": "/proc", "options": ["rbind", "rprivate", "ro"]}]
    spec = {"annotations": {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sid,
                            "io.kubernetes.cri.container-name": "app"}, "mounts": mounts}
    bundle = tmp_path / "k8s.io" / cid
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(spec))
    mgr = ContainerManager(live=False, podman_storage="/nonexistent", containerd_tasks=str(tmp_path),
                           docker_sockets=[], cri_sockets=[])
    info = ContainerInfo(cid, "containerd")
    assert mgr.lookup(info)
    assert [(m.source, m.dest, m.rdwr) for m in info.mounts] == [("/run/containerd", "/host/run", False),
                                                                 ("/proc", "/host/proc", False)]
    # the same layout for a plain container: no mount left for any sensitive_mount glob to match
    spec["mounts"] = mounts[:5]
    (bundle / "config.json").write_text(json.dumps(spec))
    info = ContainerInfo(cid, "containerd")
    assert mgr.lookup(info) and info.mounts == []


@contextlib.contextmanager
def _kubelet_pod_dir(uid: str):
    """The files kubelet mounts into every container of a pod (its /etc/hosts, the termination
    log, the service account token volume), at kubelet's paths: /var/lib/kubelet/pods/<uid>/.
    Only what this makes is removed (a node's own kubelet directory is left as it was)."""
    import shutil
    top = Path("/var/lib/kubelet")
    made = next((p for p in (top, top / "pods") if not p.exists()), None)
    pod = top / "pods" / uid
    token = pod / "volumes" / "kubernetes.io~projected" / "kube-api-access-pyfal"
    term = pod / "containers" / "app" / uuid.uuid4().hex[:8]
    try:
        token.mkdir(parents=True)
        term.parent.mkdir(parents=True)
        term.write_text("")
        (token / "token").write_text("not-a-token\n")
        (pod / "etc-hosts").write_text("127.0.0.1\tlocalhost\n")
        yield [(str(pod / "etc-hosts"), "/etc/hosts", False), (str(term), "/dev/termination-log", False),
               (str(token), "/var/run/secrets/kubernetes.io/serviceaccount", True)]
    finally:
        shutil.rmtree(made if made is not None else pod, ignore_errors=True)


@pytest.mark.root
@pytest.mark.parametrize("ruleset", ["default", "upstream"])
def test_containerd_cri_kubelet_pod_container_is_not_sensitive(request, cri_pod, ruleset):
    """A pod container with what kubelet mounts into every container (sources under
    /var/lib/kubelet/pods/<uid>/) raises no container rule: it is every pod of a node, not a
    container given the kubelet's state (Falco's sensitive_mount names /var/lib/kubelet itself
    and its pki directory); one with /var/lib/kubelet mounted raises "Launch Sensitive Mount
    Container"."""
    session = request.getfixturevalue(f"{ruleset}_live")
    with _kubelet_pod_dir(cri_pod.sandbox.uid) as mounts, _on_containerd(session, cri_pod) as mgr:
        with session.watch(scope="all") as w:
            cid = cri_pod.true(_name("app"), mounts=mounts)
            _, mine = _alerts_of(session, w, cid, "Launch Sensitive Mount Container", bound=30.0)
        assert [a for a in mine if a.rule == "pyfalco test container event"], [str(a) for a in mine]
        assert sorted(m.dest for m in mgr.containers[cid].mounts) == sorted(m[1] for m in mounts)
        # the kubelet's directory itself is sensitive in both
        with session.watch(scope="all") as w2:
            state = cri_pod.true(_name("kstate"), mounts=[("/var/lib/kubelet", "/host/kubelet", True)])
            hits, mine2 = _alerts_of(session, w2, state, "Launch Sensitive Mount Container", bound=30.0)
    assert not [a for a in mine if a.rule in ("Launch Sensitive Mount Container", "Launch Privileged Container")], \
        [str(a) for a in mine]
    metas = [a.time_ns for a in mine2 if a.rule == "pyfalco test container event"]
    assert metas and [a for a in hits if a.time_ns == metas[0]], [str(a) for a in mine2]


@pytest.mark.root
def test_containerd_cri_short_lived_containers_under_load(default_live, cri_pod):
    """The podman under-load case through containerd's CRI: while a process opens and closes files
    in bursts, short-lived privileged and /proc-mount pod containers come and go; each one's meta
    event fires its rule, once."""
    cases = [("Launch Privileged Container", {"privileged": True}),
             ("Launch Sensitive Mount Container", {"mounts": [("/proc", "/host/proc", True)]})] * 2
    with _load(), _on_containerd(default_live, cri_pod) as mgr:
        started = []
        with default_live.watch(scope="all") as w:
            for rule, kw in cases:
                started.append((cri_pod.true(_name("load"), **kw), rule))
            for cid, rule in started:
                _alerts_of(default_live, w, cid, rule, bound=240.0)
        for cid, rule in started:
            mine = [a for a in w.alerts if cid.startswith(a.container_id)]
            info = mgr.containers.get(cid)
            why = (cid, info and (info.source, info.privileged, info.mounts, info.lookups, info.complete),
                   [str(a) for a in mine])
            assert len([a for a in mine if a.rule == "pyfalco test container event"]) == 1, ("meta events", why)
            fired = [a for a in mine if "evt_type=container" in a.message and a.rule == rule]
            assert len(fired) == 1, why
