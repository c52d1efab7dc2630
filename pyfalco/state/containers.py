# SPDX-License-Identifier: Apache-2.0
"""Container and pod metadata, looked up off the event loop (the model is container_info.py).

``ContainerManager.get(id)`` answers at once with a :class:`ContainerInfo` (only the id and the
runtime type guessed from the cgroup path, the first time) and queues the id for a background
thread, which fills the same object in from, in order:

* podman's storage on disk (``/var/lib/containers/storage/overlay-containers``: containers.json
  and the OCI ``config.json`` of each container);
* containerd's task bundles (``/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/config.json``,
  whose CRI annotations carry the pod's name, namespace and uid);
* the Docker-compatible API on a unix socket (Docker, or ``podman system service``);
* the CRI API (containerd or CRI-O) for pod labels, when a CRI socket exists (container_cri.py).

A lookup that finds nothing is retried a few times (a container being created has no metadata
yet). Capture replays get container metadata from the capture's container events instead.

``start_watch()`` (the live Inspector calls it) also watches podman's storage and containerd's task
bundles for containers being created, and keeps what their files say then: a short-lived container
(``podman run --rm IMG true``) is often gone from disk by the time the event loop, behind under
load, asks about it; the lookup then answers from that copy.
"""


from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import socket
import threading
import time

from ..hostroot import host_path
from .cgroups import TYPE_CONTAINERD, TYPE_CRIO, TYPE_DOCKER, TYPE_PODMAN
from .container_cri import enrich_from_cri
from .container_info import (ContainerInfo, Mount, container_from_json, oci_host_namespaces, oci_mounts,
                             oci_privileged, parse_time, set_image, split_image)

log = logging.getLogger("pyfalco.state.containers")

__all__ = ["ContainerInfo", "ContainerManager", "Mount", "split_image", "container_from_json", "docker_api_get"]

PODMAN_STORAGE = "/var/lib/containers/storage/overlay-containers"
CONTAINERD_TASKS = "/run/containerd/io.containerd.runtime.v2.task"
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/podman/podman.sock")
CRI_SOCKETS = ("/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock")

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 2.0):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def docker_api_get(sock_path: str, url: str, timeout: float = 2.0):
    """GET ``url`` from a Docker-compatible API on a unix socket; (status, parsed JSON or None)."""
    conn = _UnixHTTPConnection(sock_path, timeout)
    try:
        conn.request("GET", url, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body) if body else None
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


def _cri_requested(spec: dict, cid: str, sandbox_id: str | None) -> dict:
    """The OCI spec of a CRI container with only the mounts its pod asked for: what ContainerStatus
    lists and libsinsp reports (container.mounts). Dropped: the kernel filesystems (proc, sysfs,
    ...) and the binds of containerd's per-pod and per-container files (hosts, resolv.conf,
    hostname, /dev/shm, image volumes), whose sources lie under the runtime's state
    (``/run/containerd/...``) and would otherwise match host-path globs such as
    ``container.mount.dest[/run/containerd*]`` for every pod."""
    own = tuple(f"/{kind}/{i}/" for kind, i in (("sandboxes", sandbox_id), ("containers", cid)) if i)
    kept = []
    for m in spec.get("mounts") or []:
        if not isinstance(m, dict):
            continue
        source, opts = str(m.get("source") or ""), m.get("options") or []
        bind = m.get("type") == "bind" or "bind" in opts or "rbind" in opts
        if bind and source.startswith("/") and not any(o in source for o in own):
            kept.append(m)
    return dict(spec, mounts=kept)


class ContainerManager:
    """Container id -> ContainerInfo, filled in by a background thread (``live=True``)."""

    def __init__(self, live: bool = True, retries: int = 20, retry_delay: float = 0.25,
                 podman_storage: str | None = None, containerd_tasks: str | None = None,
                 docker_sockets=None, cri_sockets=None, max_containers: int = 4096):
        self.live = live
        self.retries = retries
        self.retry_delay = retry_delay
        # the default places are the host's: under $HOST_ROOT when the agent runs in a container
        self.podman_storage = podman_storage if podman_storage is not None else host_path(PODMAN_STORAGE)
        self.containerd_tasks = containerd_tasks if containerd_tasks is not None else host_path(CONTAINERD_TASKS)
        self.docker_sockets = tuple(docker_sockets if docker_sockets is not None
                                    else (host_path(p) for p in DOCKER_SOCKETS))
        self.cri_sockets = tuple(cri_sockets if cri_sockets is not None else (host_path(p) for p in CRI_SOCKETS))
        self.max_containers = max_containers
        self.containers: dict[str, ContainerInfo] = {}
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        #: callables(ContainerInfo) run (in the worker) once a lookup ends: metadata found or given up
        self.listeners: list = []
        self.watch_interval = 0.05
        self._prefetched: dict[str, ContainerInfo] = {}
        self._watch_thread: threading.Thread | None = None
        self._watch_state: dict = {}

    # -- API used by the event loop (never blocks)
    def get(self, cid: str, rtype: str = "") -> ContainerInfo:
        info = self.containers.get(cid)
        if info is not None:
            return info
        info = ContainerInfo(cid, rtype)
        if len(self.containers) >= self.max_containers:
            self._evict()
        self.containers[cid] = info
        if self.live:
            self._ensure_worker()
            self._queue.put((0.0, cid))
        return info

    def add(self, info: ContainerInfo) -> None:
        """Metadata from elsewhere (a capture's container event)."""
        old = self.containers.get(info.id)
        info.complete = True
        self.containers[info.id] = info
        if old is not None and old is not info:
            old.__dict__.update(info.__dict__)

    def _evict(self) -> None:
        for cid in list(self.containers)[: max(1, self.max_containers // 8)]:
            del self.containers[cid]

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pyfalco-containers", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._queue.put((0.0, None))
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=2)
            self._watch_thread = None

    # -- creation-time copies of the runtimes' files
    def start_watch(self) -> None:
        """Starts the thread that notes new containers' metadata while their files exist."""
        if not self.live or (self._watch_thread is not None and self._watch_thread.is_alive()):
            return
        self._stop.clear()
        self._watch_thread = threading.Thread(target=self._watch, name="pyfalco-containers-watch", daemon=True)
        self._watch_thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_interval):
            try:
                self.poll_runtimes()
            except Exception as err:   # a half-written file must not stop the watch
                log.debug("container watch: %s", err)

    def poll_runtimes(self) -> int:
        """One look at podman's storage and containerd's bundles; returns how many containers were
        noted. Cheap when nothing changed (a stat and a directory listing or two)."""
        noted = 0
        st = self._watch_state
        try:
            mtime = os.stat(os.path.join(self.podman_storage, "containers.json")).st_mtime_ns
        except OSError:
            mtime = None
        pending = st.setdefault("podman_pending", set())
        if mtime is not None and (mtime != st.get("podman_mtime") or pending):
            st["podman_mtime"] = mtime
            try:
                with open(os.path.join(self.podman_storage, "containers.json")) as f:
                    ids = {e.get("id") for e in json.load(f) if isinstance(e, dict)}
            except (OSError, ValueError):
                ids = set()
            seen = st.setdefault("podman_seen", set())
            for cid in ids - seen:
                if cid:
                    pending.add(cid)
            seen.intersection_update(ids)
            for cid in list(pending):
                if cid not in ids:
                    pending.discard(cid)
                    continue
                # the OCI spec is written when the container is initialised, after its entry
                if not os.path.exists(os.path.join(self.podman_storage, cid, "userdata", "config.json")):
                    continue
                info = ContainerInfo(cid, TYPE_PODMAN)
                if self._from_podman_storage(info):
                    self._note(info)
                    noted += 1
                pending.discard(cid)
                seen.add(cid)
        try:
            namespaces = os.listdir(self.containerd_tasks)
        except OSError:
            namespaces = []
        seen = st.setdefault("containerd_seen", set())
        now: set = set()
        for ns in namespaces:
            try:
                ids = os.listdir(os.path.join(self.containerd_tasks, ns))
            except OSError:
                continue
            for cid in ids:
                now.add(cid)
                if cid in seen:
                    continue
                info = ContainerInfo(cid, "")
                if self._from_containerd_bundle(info):
                    self._note(info)
                    noted += 1
                    seen.add(cid)
        seen.intersection_update(now)
        return noted

    def _note(self, info: ContainerInfo) -> None:
        if len(self._prefetched) >= 1024:
            for cid in list(self._prefetched)[:128]:
                del self._prefetched[cid]
        self._prefetched[info.id] = info

    def wait(self, cid: str, timeout: float = 5.0) -> ContainerInfo | None:
        """Blocks until the metadata of ``cid`` is in (tests and tools; never the event loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.containers.get(cid)
            if info is not None and info.complete:
                return info
            time.sleep(0.02)
        return self.containers.get(cid)

    # -- worker
    def _run(self) -> None:
        delayed: list[tuple[float, str]] = []
        while not self._stop.is_set():
            now = time.monotonic()
            ready = [d for d in delayed if d[0] <= now]
            delayed = [d for d in delayed if d[0] > now]
            for _t, cid in ready:
                self._queue.put((0.0, cid))
            try:
                _t, cid = self._queue.get(timeout=0.05 if delayed else 0.5)
            except queue.Empty:
                continue
            if cid is None:
                break
            info = self.containers.get(cid)
            if info is None or info.complete:
                continue
            try:
                found = self.lookup(info)
            except Exception as err:   # a runtime answering garbage must not kill the worker
                log.debug("container %s: lookup failed: %s", cid[:12], err)
                found = False
            info.lookups += 1
            if not found and info.lookups < self.retries:
                delayed.append((time.monotonic() + self.retry_delay * min(info.lookups, 8), cid))
                continue
            info.complete = True
            for fn in self.listeners:
                try:
                    fn(info)
                except Exception:
                    log.exception("container listener")

    def lookup(self, info: ContainerInfo) -> bool:
        """Fills ``info`` from the sources this machine has; True when something was found."""
        found = False
        if info.type in ("", TYPE_PODMAN):
            found = self._from_podman_storage(info)
        if not found and info.type in ("", TYPE_CONTAINERD, TYPE_CRIO):
            found = self._from_containerd_bundle(info)
        for sock_path in self.docker_sockets:
            if os.path.exists(sock_path):
                found = self._from_docker_api(info, sock_path) or found
                if found and info.source.startswith("docker-api"):
                    break
        if not found:
            noted = self._prefetched.get(info.id)
            if noted is not None:
                # gone from disk already: what its files said when it was created
                for key, value in noted.__dict__.items():
                    if key not in ("lookups", "complete"):
                        setattr(info, key, value)
                found = True
        if info.pod_sandbox_id or info.type in (TYPE_CONTAINERD, TYPE_CRIO, ""):
            for sock_path in self.cri_sockets:
                if os.path.exists(sock_path):
                    found = enrich_from_cri(info, sock_path) or found
                    break
        return found

    def _from_podman_storage(self, info: ContainerInfo) -> bool:
        try:
            with open(os.path.join(self.podman_storage, "containers.json")) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return False
        entry = next((e for e in entries if e.get("id") == info.id), None)
        if entry is None:
            return False
        info.type = info.type or TYPE_PODMAN
        meta = {}
        try:
            meta = json.loads(entry.get("metadata") or "{}")
        except ValueError:
            pass
        names = entry.get("names") or []
        info.name = meta.get("name") or (names[0] if names else None)
        set_image(info, meta.get("image-name"), meta.get("image-id") or entry.get("image"))
        try:
            with open(os.path.join(self.podman_storage, info.id, "userdata", "config.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError):
            spec = {}
            if info.id in self._prefetched:
                # being removed (a --rm container that already exited: its entry is still listed,
                # its files are gone): what its files said at creation is the complete answer
                return False
        ann = spec.get("annotations") or {}
        priv = ann.get("io.podman.annotations.privileged")
        info.privileged = priv.upper() == "TRUE" if priv else oci_privileged(spec) if spec else None
        info.mounts = oci_mounts(spec)
        if spec:
            oci_host_namespaces(info, spec)
        info.start_ts = parse_time(ann.get("io.kubernetes.cri-o.Created") or entry.get("created"))
        info.source = "podman-storage"
        return True

    def _from_containerd_bundle(self, info: ContainerInfo) -> bool:
        try:
            namespaces = os.listdir(self.containerd_tasks)
        except OSError:
            return False
        for ns in namespaces:
            path = os.path.join(self.containerd_tasks, ns, info.id, "config.json")
            try:
                with open(path) as f:
                    spec = json.load(f)
            except (OSError, ValueError):
                continue
            ann = spec.get("annotations") or {}
            info.type = TYPE_CONTAINERD if info.type in ("", TYPE_CONTAINERD) else info.type
            info.name = ann.get("io.kubernetes.cri.container-name") or info.name or info.id[:12]
            set_image(info, ann.get("io.kubernetes.cri.image-name"), None)
            info.pod_name = ann.get("io.kubernetes.cri.sandbox-name") or info.pod_name
            info.pod_namespace = ann.get("io.kubernetes.cri.sandbox-namespace") or info.pod_namespace
            info.pod_uid = ann.get("io.kubernetes.cri.sandbox-uid") or info.pod_uid
            info.pod_sandbox_id = ann.get("io.kubernetes.cri.sandbox-id") or info.pod_sandbox_id
            info.privileged = oci_privileged(spec)
            info.mounts = oci_mounts(_cri_requested(spec, info.id, info.pod_sandbox_id)
                                     if ann.get("io.kubernetes.cri.container-type") else spec)
            oci_host_namespaces(info, spec)
            try:
                info.start_ts = os.stat(path).st_mtime_ns
            except OSError:
                pass
            info.source = f"containerd-bundle:{ns}"
            return True
        return False

    def _from_docker_api(self, info: ContainerInfo, sock_path: str) -> bool:
        try:
            status, data = docker_api_get(sock_path, f"/containers/{info.id}/json")
        except OSError:
            return False
        if status != 200 or not isinstance(data, dict):
            return False
        cfg = data.get("Config") or {}
        host = data.get("HostConfig") or {}
        state = data.get("State") or {}
        net = data.get("NetworkSettings") or {}
        if not info.type:
            info.type = TYPE_PODMAN if sock_path.endswith("podman.sock") else TYPE_DOCKER
        info.name = (data.get("Name") or "").lstrip("/") or info.name
        set_image(info, cfg.get("Image") or info.image, data.get("Image"))
        info.privileged = bool(host.get("Privileged"))
        info.mounts = [Mount(m.get("Source", ""), m.get("Destination", ""), m.get("Mode", ""),
                             bool(m.get("RW", True)), m.get("Propagation", "")) for m in data.get("Mounts") or []]
        info.start_ts = parse_time(state.get("StartedAt")) or info.start_ts
        info.labels = dict(cfg.get("Labels") or {})
        info.ip = net.get("IPAddress") or info.ip
        info.host_pid = host.get("PidMode") == "host"
        info.host_network = host.get("NetworkMode") == "host"
        info.host_ipc = host.get("IpcMode") == "host"
        labels = info.labels
        info.pod_name = labels.get("io.kubernetes.pod.name") or info.pod_name
        info.pod_namespace = labels.get("io.kubernetes.pod.namespace") or info.pod_namespace
        info.pod_uid = labels.get("io.kubernetes.pod.uid") or info.pod_uid
        info.source = "docker-api:" + sock_path
        return True
