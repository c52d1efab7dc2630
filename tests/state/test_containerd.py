# SPDX-License-Identifier: Apache-2.0
"""Real containerd through its CRI socket, the way kubelet runs pods, seen through live eBPF events.

The test starts its own containerd (state, root and socket under a temporary directory, runc,
cgroupfs, no CNI: the pod uses the node's network namespace), imports a busybox-static image built
here into the ``k8s.io`` namespace (``ctr images import`` of a docker-archive tarball: no registry,
no network; the same image is the pod's sandbox image), and drives the pod with pyfalco's own CRI
client (pyfalco.state.cri): RunPodSandbox with io.kubernetes labels, CreateContainer,
StartContainer, ExecSync. The events of the commands run in the container carry container.* and
k8s.* fields from the task bundle's CRI annotations on disk and PodSandboxStatus on the socket.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid

import pytest

pytestmark = pytest.mark.root

IMAGE = "localhost/pyfalco-busybox:cri"
POD_LABELS = {"app": "pyfalco-cri", "tier": "test", "io.kubernetes.pod.name": "pyfalco-pod",
              "io.kubernetes.pod.namespace": "pyfalco-ns"}
BOUND = 60.0     # seconds any start-up or clean-up step may take


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(m, m)


def build_image_archive(path: str, tag: str = IMAGE) -> None:
    """A docker-archive (``docker save`` layout) of a one-layer busybox-static image."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        def add_file(name, data: bytes, mode=0o644):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tar.addfile(ti, io.BytesIO(data))

        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home", "home/bob"):
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        with open("/bin/busybox", "rb") as f:
            add_file("bin/busybox", f.read(), 0o755)
        for applet in ("sh", "cat", "sleep", "ls", "true", "id", "echo"):
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nbob:x:1234:1234:Bob:/home/bob:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\nbobs:x:1234:\n")
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": _arch(), "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sleep", "2147483647"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "pyfalco tests"}],
    }).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [tag],
                            "Layers": [f"{diff_id}/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((f"{diff_id}/layer.tar", layer_bytes), (f"{config_id}.json", config),
                           ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))


class Containerd:
    """A private containerd: its own root, state, socket and config (CRI plugin, runc, cgroupfs)."""

    def __init__(self, base: str):
        self.base = base
        self.root = f"{base}/root"
        self.state = f"{base}/state"
        self.sock = f"{base}/containerd.sock"
        self.config = f"{base}/config.toml"
        self.log = f"{base}/containerd.log"
        self.proc: subprocess.Popen | None = None
        # containerd 1.6 puts shim sockets and fifos under /run/containerd whatever its state dir
        self.made_run = not os.path.exists("/run/containerd")
        for d in (self.root, self.state, f"{base}/cni/bin", f"{base}/cni/conf"):
            os.makedirs(d, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        with open(self.config, "w") as f:
            f.write(f"""version = 2
root = "{self.root}"
state = "{self.state}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.cni]
    bin_dir = "{base}/cni/bin"
    conf_dir = "{base}/cni/conf"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{base}/runc"
""")

    @property
    def tasks(self) -> str:
        return f"{self.state}/io.containerd.runtime.v2.task"

    def start(self) -> None:
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        logf.close()
        from pyfalco.state.cri import CRIClient, CRIError
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited ({self.proc.returncode}):\n{self.tail()}")
            if os.path.exists(self.sock):
                try:
                    with CRIClient(self.sock, timeout=2) as c:
                        c.version()
                    return
                except CRIError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not answer on {self.sock}:\n{self.tail()}")

    def ctr(self, *args, timeout=BOUND, check=True):
        return subprocess.run(["ctr", "--address", self.sock, "--namespace", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def tail(self, n: int = 40) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def shim_pids(self) -> list[int]:
        """Shims started by this containerd (their command line names our socket)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and self.sock.encode() in argv:
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in self.shim_pids():      # left over only when a sandbox could not be removed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # mounts left under our directories (rootfs overlays, sandbox shm), deepest first
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in sorted((p for p in points if p.startswith(self.base + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=10)
        if self.made_run:
            for top, _dirs, _files in sorted(os.walk("/run/containerd"), key=lambda w: len(w[0]), reverse=True):
                try:
                    os.rmdir(top)            # empty directories only
                except OSError:
                    pass


@pytest.fixture(scope="module")
def containerd():
    for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (tools/setup installs containerd and runc)")
    if not os.path.exists("/bin/busybox"):
        pytest.fail("busybox-static is needed (tools/setup installs it)")
    base = tempfile.mkdtemp(prefix="pyfalco-containerd-")
    ctd = Containerd(base)
    try:
        ctd.start()
        archive = f"{base}/image.tar"
        build_image_archive(archive)
        ctd.ctr("images", "import", archive)
        yield ctd
    finally:
        from pyfalco.state import container_cri
        container_cri.forget(ctd.sock)
        ctd.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pod(containerd):
    """A pod (host network, no CNI) with one busybox container running ``sleep``."""
    from pyfalco.state.cri import CRIClient, NAMESPACE_CONTAINER, NAMESPACE_NODE, NAMESPACE_POD, SandboxConfig
    client = CRIClient(containerd.sock, timeout=10)
    uid = str(uuid.uuid4())
    sandbox = SandboxConfig(
        name="pyfalco-pod", namespace="pyfalco-ns", uid=uid, attempt=0,
        labels=dict(POD_LABELS, **{"io.kubernetes.pod.uid": uid}),
        annotations={"kubernetes.io/config.source": "api", "pyfalco/test": "cri"},
        log_directory=f"{containerd.base}/pods/pyfalco-ns_pyfalco-pod_{uid}",
        cgroup_parent=f"/kubepods/besteffort/pod{uid}",
        network=NAMESPACE_NODE, pid=NAMESPACE_CONTAINER, ipc=NAMESPACE_POD)
    os.makedirs(sandbox.log_directory, exist_ok=True)
    sandbox_id = cid = None
    try:
        sandbox_id = client.run_pod_sandbox(sandbox, timeout=BOUND)
        cid = client.create_container(
            sandbox_id, sandbox, "web", IMAGE, command=["/bin/sleep"], args=["600"],
            labels={"io.kubernetes.container.name": "web", "io.kubernetes.pod.name": "pyfalco-pod",
                    "io.kubernetes.pod.namespace": "pyfalco-ns", "io.kubernetes.pod.uid": uid},
            annotations={"io.kubernetes.container.restartCount": "0"}, log_path="web/0.log", timeout=BOUND)
        client.start_container(cid, timeout=BOUND)
        yield {"client": client, "sandbox_id": sandbox_id, "cid": cid, "uid": uid, "config": sandbox}
    finally:
        try:
            if cid is not None:
                client.stop_container(cid, grace=0, timeout=BOUND)
                client.remove_container(cid, timeout=BOUND)
            if sandbox_id is not None:
                client.stop_pod_sandbox(sandbox_id, timeout=BOUND)
                client.remove_pod_sandbox(sandbox_id, timeout=BOUND)
        finally:
            client.close()


@pytest.fixture
def manager_on(live, containerd):
    """Points the session's ContainerManager at the private containerd (restored afterwards)."""
    mgr = live.insp.containers
    saved = (mgr.containerd_tasks, mgr.cri_sockets)
    mgr.containerd_tasks, mgr.cri_sockets = containerd.tasks, (containerd.sock,)
    yield mgr
    mgr.containerd_tasks, mgr.cri_sockets = saved


def test_codecs_without_a_runtime():
    """HPACK (RFC 7541 C.4 vectors: Huffman, dynamic table) and protobuf round trips."""
    from pyfalco.state import cri
    from pyfalco.state.wire import protobuf as pb
    assert cri.huffman_decode(bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    assert cri.huffman_decode(bytes.fromhex("a8eb10649cbf")) == b"no-cache"
    dec = cri.HpackDecoder()
    assert dec.decode(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))[-1] == (":authority", "www.example.com")
    assert dec.decode(bytes.fromhex("828684be5886a8eb10649cbf"))[-2:] == [(":authority", "www.example.com"),
                                                                          ("cache-control", "no-cache")]
    hdrs = dec.decode(bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))
    assert hdrs[-1] == ("custom-key", "custom-value") and dec.size == 164
    with pytest.raises(cri.CRIError):
        cri.huffman_decode(b"\x00\x00\x00\x00")        # padding must be ones
    cfg = cri.SandboxConfig(name="p", namespace="ns", uid="u", labels={"app": "x", "e": ""}, network=2)
    msg = cri.pb_decode(cfg.encode())
    meta = pb.get_sub(msg, 1)
    assert (pb.get_str(meta, 1), pb.get_str(meta, 2), pb.get_str(meta, 3)) == ("p", "u", "ns")
    assert pb.get_strmap(msg, 6) == {"app": "x", "e": ""}
    nsopts = pb.get_sub(pb.get_sub(pb.get_sub(msg, 8), 2), 1)
    assert pb.get_int(nsopts, 1) == 2 and pb.get_int(nsopts, 2) == 1
    assert pb.get_int(pb.pb_decode(pb.pb_int(7, -5)), 7) == -5
    with pytest.raises(cri.CRIError):
        cri.pb_decode(b"\x0a\x05ab")                     # truncated


def test_cri_client_version_and_listing(containerd, pod):
    client = pod["client"]
    v = client.version()
    assert v["runtime_name"] == "containerd" and v["runtime_api_version"].startswith("v1")
    sandboxes = client.list_pod_sandbox(labels={"app": "pyfalco-cri"})
    assert [s["id"] for s in sandboxes] == [pod["sandbox_id"]]
    s = sandboxes[0]
    assert s["name"] == "pyfalco-pod" and s["namespace"] == "pyfalco-ns" and s["uid"] == pod["uid"]
    assert s["labels"]["tier"] == "test" and s["annotations"]["pyfalco/test"] == "cri"
    status = client.pod_sandbox_status(pod["sandbox_id"])
    assert status["state"] == 0 and status["created_at"] > 0            # SANDBOX_READY
    assert status["labels"]["app"] == "pyfalco-cri"
    assert status["namespace_options"]["network"] == 2                   # NODE: no CNI needed
    containers = client.list_containers(sandbox_id=pod["sandbox_id"])
    assert [c["id"] for c in containers] == [pod["cid"]]
    assert containers[0]["name"] == "web" and containers[0]["state"] == 1   # CONTAINER_RUNNING
    cs = client.container_status(pod["cid"], verbose=True)
    assert cs["name"] == "web" and cs["image"] == IMAGE and cs["started_at"] > 0
    info = json.loads(cs["info"]["info"])
    assert info["sandboxID"] == pod["sandbox_id"]
    code, out, err = client.exec_sync(pod["cid"], ["/bin/echo", "hello"], timeout=20)
    assert (code, out, err) == (0, b"hello\n", b"")


def test_cri_client_errors(containerd, pod):
    from pyfalco.state.cri import CRIError
    client = pod["client"]
    with pytest.raises(CRIError) as exc:
        client.container_status("0" * 64)
    assert exc.value.code in (2, 5) and "not found" in str(exc.value).lower()
    # the connection survives an error answer
    assert client.version()["runtime_name"] == "containerd"


def test_task_bundle_has_cri_annotations(containerd, pod):
    with open(f"{containerd.tasks}/k8s.io/{pod['cid']}/config.json") as f:
        ann = json.load(f)["annotations"]
    assert ann["io.kubernetes.cri.sandbox-id"] == pod["sandbox_id"]
    assert ann["io.kubernetes.cri.sandbox-name"] == "pyfalco-pod"
    assert ann["io.kubernetes.cri.sandbox-namespace"] == "pyfalco-ns"
    assert ann["io.kubernetes.cri.container-name"] == "web"


def test_manager_lookup_from_bundle_and_cri(containerd, pod):
    from pyfalco.state.containers import ContainerInfo, ContainerManager
    mgr = ContainerManager(live=False, podman_storage="/nonexistent", containerd_tasks=containerd.tasks,
                           docker_sockets=[], cri_sockets=[containerd.sock])
    info = ContainerInfo(pod["cid"], "")
    assert mgr.lookup(info)
    assert info.type == "containerd" and info.name == "web" and info.image == IMAGE
    assert info.image_repository == "localhost/pyfalco-busybox" and info.image_tag == "cri"
    assert info.pod_name == "pyfalco-pod" and info.pod_namespace == "pyfalco-ns" and info.pod_uid == pod["uid"]
    assert info.pod_sandbox_id == pod["sandbox_id"]
    assert info.pod_labels["app"] == "pyfalco-cri" and info.pod_labels["tier"] == "test"
    assert info.host_network is True and info.privileged is False
    assert "containerd-bundle" in info.source and "cri:" in info.source
    sb = ContainerInfo(pod["sandbox_id"], "")
    assert mgr.lookup(sb)
    assert sb.name == "pyfalco-pod" and sb.pod_name == "pyfalco-pod" and sb.pod_labels["app"] == "pyfalco-cri"
    # no files on disk: everything from the socket (ContainerStatus + PodSandboxStatus)
    mgr2 = ContainerManager(live=False, podman_storage="/nonexistent", containerd_tasks="/nonexistent",
                            docker_sockets=[], cri_sockets=[containerd.sock])
    info2 = ContainerInfo(pod["cid"], "")
    assert mgr2.lookup(info2)
    assert info2.source.startswith("cri:")
    assert info2.name == "web" and info2.image == IMAGE and info2.image_id and len(info2.image_id) == 64
    assert info2.pod_name == "pyfalco-pod" and info2.pod_namespace == "pyfalco-ns"
    assert info2.pod_uid == pod["uid"] and info2.pod_sandbox_id == pod["sandbox_id"]
    assert info2.pod_labels["app"] == "pyfalco-cri" and info2.privileged is False
    # the sandbox ("pause") container itself
    info3 = ContainerInfo(pod["sandbox_id"], "")
    assert mgr2.lookup(info3)
    assert info3.pod_name == "pyfalco-pod" and info3.pod_sandbox_id == pod["sandbox_id"]
    # an id the runtime does not know
    assert not mgr2.lookup(ContainerInfo("f" * 64, ""))


def test_live_events_of_a_pod_container(live, containerd, pod, manager_on):
    cid = pod["cid"]
    client = pod["client"]

    def run(*cmd):
        code, _out, err = client.exec_sync(cid, list(cmd), timeout=20)
        assert code == 0, err
    _, events = live.run(lambda: run("/bin/cat", "/etc/passwd"), settle=0.6)
    # (other containers may run on this machine meanwhile: only ours counts)
    opens = [e for e in events if e.name in ("open", "openat") and e.get("fd.name") == "/etc/passwd"
             and e.get("container.full_id") == cid]
    assert opens, "no open of /etc/passwd inside the pod's container"
    ie = opens[0]
    assert ie.get("container.id") == cid[:12] and ie.get("proc.vpid") != ie.get("proc.pid")
    assert ie.get("proc.name") == "cat"
    # the first event of the container queued the lookup; the metadata arrives off the event loop
    info = manager_on.wait(cid, timeout=20)
    assert info is not None and info.complete and info.pod_labels, info
    _, events = live.run(lambda: run("/bin/cat", "/etc/group"), settle=0.6)
    ie = [e for e in events if e.name in ("open", "openat") and e.get("fd.name") == "/etc/group"
          and e.get("container.id") == cid[:12]][0]
    prov = live.insp.provider
    label = prov.accessor("k8s.pod.label", "app")
    labels = prov.accessor("k8s.pod.labels", None)
    sandbox = prov.accessor("k8s.pod.sandbox_id", None)
    assert ie.get("container.name") == "web"
    assert ie.get("container.image") == IMAGE
    assert ie.get("container.image.repository") == "localhost/pyfalco-busybox"
    assert ie.get("container.image.tag") == "cri"
    assert ie.get("container.type") == "containerd"
    assert ie.get("container.privileged") is False
    assert ie.get("k8s.pod.name") == "pyfalco-pod"
    assert ie.get("k8s.ns.name") == "pyfalco-ns"
    assert prov.accessor("k8s.pod.uid", None)(ie.ie) == pod["uid"]
    assert label(ie.ie) == "pyfalco-cri"
    assert "app:pyfalco-cri" in str(labels(ie.ie))
    assert sandbox(ie.ie) == pod["sandbox_id"][:12]

