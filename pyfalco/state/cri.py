# SPDX-License-Identifier: Apache-2.0
"""A minimal CRI client (``runtime.v1.RuntimeService``) over a unix socket, stdlib only.

The Container Runtime Interface is gRPC: protobuf messages in HTTP/2 (cleartext, with prior
knowledge) on the runtime's unix socket (containerd: ``/run/containerd/containerd.sock``, CRI-O:
``/var/run/crio/crio.sock``). The wire layers are in ``pyfalco.state.wire``, one module each,
importing only the ones below: errors.py (CRIError with the gRPC status, ProtocolError),
protobuf.py (the wire format), hpack.py (RFC 7541), http2.py (RFC 9113 framing, gRPC unary calls).

``CRIClient`` offers the calls pyfalco needs to read metadata (Version, ContainerStatus,
ListContainers, PodSandboxStatus, ListPodSandbox) and those the tests use to run a pod
(RunPodSandbox, CreateContainer, StartContainer, ExecSync, Stop*/Remove*). Field numbers are those
of the CRI v1 ``api.proto``. What the runtime says about a container becomes container metadata in
``pyfalco.state.container_cri``, on the container model's side, which imports this module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .wire.errors import GRPC_NOT_FOUND, GRPC_UNAVAILABLE, GRPC_UNIMPLEMENTED, CRIError, ProtocolError
from .wire.hpack import HpackDecoder, huffman_decode
from .wire.http2 import Connection as _Connection
from .wire.protobuf import get_int as _int
from .wire.protobuf import get_str as _str
from .wire.protobuf import get_strmap as _strmap
from .wire.protobuf import get_sub as _sub
from .wire.protobuf import get_subs as _subs
from .wire.protobuf import pb_decode, pb_int, pb_map, pb_message, pb_repeated_string, pb_string

__all__ = ["CRIClient", "CRIError", "ProtocolError", "SandboxConfig", "RUNTIME_SERVICE", "NAMESPACE_POD",
           "NAMESPACE_CONTAINER", "NAMESPACE_NODE", "NAMESPACE_TARGET", "GRPC_NOT_FOUND", "GRPC_UNAVAILABLE",
           "GRPC_UNIMPLEMENTED", "HpackDecoder", "huffman_decode", "pb_decode"]

RUNTIME_SERVICE = "runtime.v1.RuntimeService"

# NamespaceMode
NAMESPACE_POD, NAMESPACE_CONTAINER, NAMESPACE_NODE, NAMESPACE_TARGET = 0, 1, 2, 3
_READ_ONLY = frozenset(("Version", "ContainerStatus", "ListContainers", "PodSandboxStatus", "ListPodSandbox"))


@dataclass
class SandboxConfig:
    """The parts of ``PodSandboxConfig`` a pod needs (what kubelet sends, minus DNS and ports)."""

    name: str
    namespace: str = "default"
    uid: str = ""
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    network: int = NAMESPACE_POD
    pid: int = NAMESPACE_CONTAINER
    ipc: int = NAMESPACE_POD
    privileged: bool = False

    def encode(self) -> bytes:
        metadata = pb_string(1, self.name) + pb_string(2, self.uid) + pb_string(3, self.namespace) \
            + pb_int(4, self.attempt)
        nsopts = pb_int(1, self.network) + pb_int(2, self.pid) + pb_int(3, self.ipc)
        secctx = pb_message(1, nsopts) + pb_int(6, self.privileged)
        linux = pb_string(1, self.cgroup_parent) + pb_message(2, secctx)
        return (pb_message(1, metadata) + pb_string(2, self.hostname) + pb_string(3, self.log_directory)
                + pb_map(6, self.labels) + pb_map(7, self.annotations) + pb_message(8, linux))


def _sandbox_dict(m: dict, labels_field: int, annotations_field: int) -> dict:
    meta = _sub(m, 2)
    return {"id": _str(m, 1), "name": _str(meta, 1), "uid": _str(meta, 2), "namespace": _str(meta, 3),
            "attempt": _int(meta, 4), "state": _int(m, 3), "created_at": _int(m, 4),
            "labels": _strmap(m, labels_field), "annotations": _strmap(m, annotations_field)}


class CRIClient:
    """A CRI ``RuntimeService`` client on one unix socket (thread-safe; calls are serialized)."""

    def __init__(self, path: str, timeout: float = 2.0, service: str = RUNTIME_SERVICE):
        self.path = path
        self.timeout = timeout
        self.service = service
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, message: bytes = b"", timeout: float | None = None) -> dict:
        """One unary call; the decoded response ({field: [values]})."""
        path = f"/{self.service}/{method}"
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            for attempt in (0, 1):
                conn = self._conn
                reused = conn is not None and conn.used
                try:
                    if conn is None or conn.next_stream >= 1 << 30:
                        if conn is not None:
                            conn.close()
                        conn = self._conn = _Connection(self.path, timeout)
                    return pb_decode(conn.call(path, message, timeout))
                except CRIError as err:
                    if err.code is not None and not isinstance(err, ProtocolError) and err.code != GRPC_UNAVAILABLE:
                        raise                     # an answer from the runtime: the connection is fine
                    self._drop()
                    if not (attempt == 0 and reused and method in _READ_ONLY):
                        raise
                except OSError as err:
                    self._drop()
                    if not (attempt == 0 and reused and method in _READ_ONLY):
                        raise CRIError(f"{self.path}: {err}", GRPC_UNAVAILABLE) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- metadata
    def version(self) -> dict:
        m = self.call("Version", pb_string(1, "v1"))
        return {"version": _str(m, 1), "runtime_name": _str(m, 2), "runtime_version": _str(m, 3),
                "runtime_api_version": _str(m, 4)}

    def container_status(self, cid: str, verbose: bool = False) -> dict:
        m = self.call("ContainerStatus", pb_string(1, cid) + pb_int(2, verbose))
        s = _sub(m, 1)
        meta, image = _sub(s, 2), _sub(s, 8)
        mounts = [{"container_path": _str(x, 1), "host_path": _str(x, 2), "readonly": bool(_int(x, 3)),
                   "propagation": _int(x, 5)} for x in _subs(s, 14)]
        return {"id": _str(s, 1), "name": _str(meta, 1), "attempt": _int(meta, 2), "state": _int(s, 3),
                "created_at": _int(s, 4), "started_at": _int(s, 5), "finished_at": _int(s, 6),
                "exit_code": _int(s, 7), "image": _str(image, 1), "image_ref": _str(s, 9),
                "reason": _str(s, 10), "message": _str(s, 11), "labels": _strmap(s, 12),
                "annotations": _strmap(s, 13), "mounts": mounts, "log_path": _str(s, 15),
                "image_id": _str(s, 17), "info": _strmap(m, 2)}

    def list_containers(self, cid: str = "", sandbox_id: str = "", labels: dict | None = None) -> list[dict]:
        filt = pb_string(1, cid) + pb_string(3, sandbox_id) + pb_map(4, labels)
        m = self.call("ListContainers", pb_message(1, filt))
        out = []
        for c in _subs(m, 1):
            meta, image = _sub(c, 3), _sub(c, 4)
            out.append({"id": _str(c, 1), "pod_sandbox_id": _str(c, 2), "name": _str(meta, 1),
                        "attempt": _int(meta, 2), "image": _str(image, 1), "image_ref": _str(c, 5),
                        "state": _int(c, 6), "created_at": _int(c, 7), "labels": _strmap(c, 8),
                        "annotations": _strmap(c, 9), "image_id": _str(c, 10)})
        return out

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> dict:
        m = self.call("PodSandboxStatus", pb_string(1, sandbox_id) + pb_int(2, verbose))
        s = _sub(m, 1)
        out = _sandbox_dict(s, 7, 8)
        net = _sub(s, 5)
        out["ip"] = _str(net, 1)
        out["additional_ips"] = [_str(x, 1) for x in _subs(net, 2)]
        nsopts = _sub(_sub(_sub(s, 6), 1), 2)
        out["namespace_options"] = {"network": _int(nsopts, 1), "pid": _int(nsopts, 2), "ipc": _int(nsopts, 3)}
        out["runtime_handler"] = _str(s, 9)
        out["info"] = _strmap(m, 2)
        return out

    def list_pod_sandbox(self, sandbox_id: str = "", labels: dict | None = None) -> list[dict]:
        filt = pb_string(1, sandbox_id) + pb_map(3, labels)
        m = self.call("ListPodSandbox", pb_message(1, filt))
        out = []
        for s in _subs(m, 1):
            d = _sandbox_dict(s, 5, 6)
            d["runtime_handler"] = _str(s, 7)
            out.append(d)
        return out

    # -- lifecycle (tests and tools)
    def run_pod_sandbox(self, config: SandboxConfig, runtime_handler: str = "", timeout: float = 60.0) -> str:
        m = self.call("RunPodSandbox", pb_message(1, config.encode()) + pb_string(2, runtime_handler), timeout)
        return _str(m, 1)

    def stop_pod_sandbox(self, sandbox_id: str, timeout: float = 30.0) -> None:
        self.call("StopPodSandbox", pb_string(1, sandbox_id), timeout)

    def remove_pod_sandbox(self, sandbox_id: str, timeout: float = 30.0) -> None:
        self.call("RemovePodSandbox", pb_string(1, sandbox_id), timeout)

    def create_container(self, sandbox_id: str, sandbox: SandboxConfig, name: str, image: str,
                         command=(), args=(), labels: dict | None = None, annotations: dict | None = None,
                         envs: dict | None = None, working_dir: str = "", log_path: str = "",
                         privileged: bool = False, attempt: int = 0, mounts=(), timeout: float = 60.0) -> str:
        """Creates a container in a pod; ``mounts``: (host path, container path, read-only) triples
        (the bind mounts kubelet asks for, ContainerConfig.mounts). Returns the container's id."""
        metadata = pb_string(1, name) + pb_int(2, attempt)
        secctx = pb_int(2, privileged) + pb_message(3, pb_int(2, sandbox.pid))
        linux = pb_message(2, secctx)
        env = b"".join(pb_message(6, pb_string(1, k) + pb_string(2, v)) for k, v in (envs or {}).items())
        # Mount: container_path = 1, host_path = 2, readonly = 3
        binds = b"".join(pb_message(7, pb_string(1, dest) + pb_string(2, src) + pb_int(3, ro))
                         for src, dest, ro in mounts)
        config = (pb_message(1, metadata) + pb_message(2, pb_string(1, image)) + pb_repeated_string(3, command)
                  + pb_repeated_string(4, args) + pb_string(5, working_dir) + env + binds + pb_map(9, labels)
                  + pb_map(10, annotations) + pb_string(11, log_path) + pb_message(15, linux))
        m = self.call("CreateContainer", pb_string(1, sandbox_id) + pb_message(2, config)
                      + pb_message(3, sandbox.encode()), timeout)
        return _str(m, 1)

    def start_container(self, cid: str, timeout: float = 60.0) -> None:
        self.call("StartContainer", pb_string(1, cid), timeout)

    def stop_container(self, cid: str, grace: int = 0, timeout: float = 30.0) -> None:
        self.call("StopContainer", pb_string(1, cid) + pb_int(2, grace), timeout)

    def remove_container(self, cid: str, timeout: float = 30.0) -> None:
        self.call("RemoveContainer", pb_string(1, cid), timeout)

    def exec_sync(self, cid: str, cmd, timeout: int = 30) -> tuple[int, bytes, bytes]:
        """Runs ``cmd`` in the container; (exit code, stdout, stderr)."""
        m = self.call("ExecSync", pb_string(1, cid) + pb_repeated_string(2, cmd) + pb_int(3, timeout),
                      timeout + 10.0)
        out = m.get(1, [b""])[-1]
        err = m.get(2, [b""])[-1]
        return _int(m, 3), out if isinstance(out, bytes) else b"", err if isinstance(err, bytes) else b""
