# SPDX-License-Identifier: Apache-2.0
"""The container model: ContainerInfo (what container.* and k8s.* fields read), its mounts, and
the readers every metadata source shares (image names, RFC 3339 times, OCI runtime specs, the
JSON of a capture's container event)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from .cgroups import TYPE_CONTAINERD, TYPE_CRIO, TYPE_DOCKER, TYPE_PODMAN

__all__ = ["ContainerInfo", "Mount", "split_image", "parse_time", "set_image", "oci_mounts", "oci_privileged",
           "oci_host_namespaces", "container_from_json"]


@dataclass
class Mount:
    """One mount of a container (container.mount.*)."""

    source: str
    dest: str
    mode: str = ""
    rdwr: bool = True
    propagation: str = ""


@dataclass
class ContainerInfo:
    """A container's metadata, filled in as its sources answer (``complete`` once found or given up on)."""

    id: str                       # full id
    type: str = ""
    name: str | None = None
    image: str | None = None
    image_id: str | None = None
    image_repository: str | None = None
    image_tag: str | None = None
    image_digest: str | None = None
    privileged: bool | None = None
    mounts: list[Mount] = field(default_factory=list)
    start_ts: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None
    cni_json: str | None = None
    host_pid: bool | None = None
    host_network: bool | None = None
    host_ipc: bool | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None
    pod_sandbox_id: str | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_ip: str | None = None
    complete: bool = False        # metadata found (or given up on: see ``lookups``)
    lookups: int = 0
    source: str = ""              # where the metadata came from

    @property
    def short_id(self) -> str:
        return self.id[:12]


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repository, tag, digest)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def parse_time(text: str | None) -> int | None:
    """RFC 3339 with nanoseconds -> ns since the epoch."""
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        main, _, frac = text.rstrip("Z").partition(".")
        tz = ""
        for sep in ("+", "-"):
            if sep in frac:
                frac, _, tz = frac.partition(sep)
                tz = sep + tz
                break
        base = datetime.fromisoformat(main + (tz or "+00:00"))
        ns = int((frac + "000000000")[:9]) if frac else 0
        return int(base.timestamp()) * 1_000_000_000 + ns
    except ValueError:
        return None


def set_image(info: ContainerInfo, image: str | None, image_id: str | None) -> None:
    """The image name (split into repository, tag, digest) and id (without "sha256:"), when given."""
    if image:
        info.image = image
        info.image_repository, info.image_tag, info.image_digest = split_image(image)
    if image_id:
        info.image_id = image_id.split(":", 1)[1] if image_id.startswith("sha256:") else image_id


def oci_mounts(spec: dict) -> list[Mount]:
    """The mounts of an OCI runtime spec."""
    out = []
    for m in spec.get("mounts") or []:
        opts = m.get("options") or []
        prop = next((o for o in opts if o in ("rprivate", "private", "rshared", "shared", "rslave", "slave")), "")
        out.append(Mount(m.get("source", ""), m.get("destination", ""), ",".join(opts), "ro" not in opts, prop))
    return out


def oci_privileged(spec: dict) -> bool:
    """Whether an OCI runtime spec is a privileged container's (every capability, no seccomp, no masked paths)."""
    caps = ((spec.get("process") or {}).get("capabilities") or {}).get("bounding") or []
    linux = spec.get("linux") or {}
    return len(caps) >= 38 and not linux.get("seccomp") and not linux.get("maskedPaths")


def oci_host_namespaces(info: ContainerInfo, spec: dict) -> None:
    """host_pid/host_network/host_ipc: the namespaces an OCI runtime spec does not create."""
    kinds = {ns.get("type") for ns in (spec.get("linux") or {}).get("namespaces") or [] if not ns.get("path")}
    info.host_pid = "pid" not in kinds
    info.host_network = "network" not in kinds
    info.host_ipc = "ipc" not in kinds


def container_from_json(text: str) -> ContainerInfo | None:
    """A capture's container event (PPME_CONTAINER_JSON_E/_2_E) -> ContainerInfo."""
    try:
        c = json.loads(text)["container"]
    except (ValueError, KeyError, TypeError):
        return None
    types = {0: TYPE_DOCKER, 7: TYPE_CONTAINERD, 6: TYPE_CRIO, 9: TYPE_PODMAN}
    info = ContainerInfo(c.get("full_id") or c.get("id") or "", types.get(c.get("type"), str(c.get("type", ""))))
    info.name = c.get("name")
    info.image = c.get("image")
    info.image_id = c.get("imageid")
    info.image_repository = c.get("imagerepo")
    info.image_tag = c.get("imagetag")
    info.image_digest = c.get("imagedigest")
    info.privileged = c.get("privileged")
    info.labels = dict(c.get("labels") or {})
    info.mounts = [Mount(m.get("Source", ""), m.get("Destination", ""), m.get("Mode", ""), bool(m.get("RW", True)),
                         m.get("Propagation", "")) for m in c.get("Mounts") or []]
    ts = c.get("created_time")
    info.start_ts = int(ts) * 1_000_000_000 if isinstance(ts, (int, float)) and ts > 0 else None
    info.ip = c.get("ip") if c.get("ip") not in (None, "0.0.0.0") else None
    info.pod_name = info.labels.get("io.kubernetes.pod.name")
    info.pod_namespace = info.labels.get("io.kubernetes.pod.namespace")
    info.pod_uid = info.labels.get("io.kubernetes.pod.uid")
    info.source = "capture"
    return info
