# SPDX-License-Identifier: Apache-2.0
"""Kubernetes audit actions: realistic ``audit.k8s.io/v1`` events POSTed to a running agent's
k8saudit webhook, as a kube-apiserver's audit webhook backend sends them (an ``EventList``).

    pyfalco-event-generator run k8saudit.privileged_pod [--k8s-audit-url URL]
    pyfalco-event-generator run 'k8saudit.*'

The URL defaults to ``$PYFALCO_K8S_AUDIT_URL``, else ``http://127.0.0.1:9765/k8s-audit`` (the
plugin's usual ``open_params`` on this machine). No cluster is touched: the events describe what
an apiserver records for ``kubectl`` commands (pod create, exec, clusterrolebinding create), with
the request and response objects at the ``RequestResponse`` audit level.

The builders (:func:`privileged_pod`, ...) are also what the tests and the benchmark post.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import ssl
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from .context import ActionFailed

__all__ = ["K8sAction", "K8S_ACTIONS", "DEFAULT_URL", "post_events", "event_list", "privileged_pod",
           "sensitive_mount_pod", "exec_pod", "cluster_admin_binding", "kube_system_pod", "benign_events",
           "run_k8s_action"]

DEFAULT_URL = "http://127.0.0.1:9765/k8s-audit"
_KUBECTL = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
_ADMIN = {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]}
_ADMIN_REASON = ('RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" '
                 'to Group "kubeadm:cluster-admins"')


def _rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z"


def _event(verb: str, uri: str, object_ref: dict, *, user: dict | None = None, code: int = 201,
           stage: str = "ResponseComplete", request: dict | None = None, response: dict | None = None,
           user_agent: str = _KUBECTL, reason: str = _ADMIN_REASON, annotations: dict | None = None) -> dict:
    now = time.time_ns()
    ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
          "auditID": str(uuid.uuid4()), "stage": stage, "requestURI": uri, "verb": verb,
          "user": copy.deepcopy(user or _ADMIN), "sourceIPs": ["172.18.0.1"], "userAgent": user_agent,
          "objectRef": object_ref, "responseStatus": {"metadata": {}, "code": code}}
    if request is not None:
        ev["requestObject"] = request
    if response is not None:
        ev["responseObject"] = response
    ev["requestReceivedTimestamp"] = _rfc3339(now - 3_100_000)
    ev["stageTimestamp"] = _rfc3339(now)
    ann = {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": reason}
    ann.update(annotations or {})
    ev["annotations"] = ann
    return ev


def _pod(name: str, ns: str, containers: list, *, volumes: list | None = None, host: dict | None = None) -> dict:
    spec: dict = {"containers": containers}
    if volumes:
        spec["volumes"] = volumes
    spec.update(host or {})
    spec.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30})
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns, "creationTimestamp": None,
                                                          "labels": {"run": name}},
            "spec": spec, "status": {}}


def _pod_created(name: str, ns: str, containers: list, *, user: dict | None = None, volumes: list | None = None,
                 host: dict | None = None, reason: str = _ADMIN_REASON) -> dict:
    req = _pod(name, ns, containers, volumes=volumes, host=host)
    resp = copy.deepcopy(req)
    resp["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="48213", creationTimestamp=_rfc3339(time.time_ns()))
    resp["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return _event("create", f"/api/v1/namespaces/{ns}/pods?fieldManager=kubectl-run",
                  {"resource": "pods", "namespace": ns, "name": name, "apiVersion": "v1"},
                  user=user, request=req, response=resp, reason=reason,
                  annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"})


def _container(name: str, image: str, **security) -> dict:
    c = {"name": name, "image": image, "resources": {}, "terminationMessagePath": "/dev/termination-log",
         "imagePullPolicy": "IfNotPresent"}
    if security:
        c["securityContext"] = security
    return c


# ---- the behaviours ---------------------------------------------------------------------------
def privileged_pod(ns: str = "default", name: str = "priv-debug") -> list[dict]:
    """kubectl run priv-debug --image=busybox --privileged: a pod with a privileged container."""
    return [_pod_created(name, ns, [_container(name, "docker.io/library/busybox:1.36", privileged=True)])]


def sensitive_mount_pod(ns: str = "default", name: str = "host-etc") -> list[dict]:
    """A pod mounting the host's /etc and /var/run/docker.sock through hostPath volumes."""
    vols = [{"name": "etc", "hostPath": {"path": "/etc", "type": ""}},
            {"name": "docker", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}]
    c = _container(name, "docker.io/library/alpine:3.20")
    c["volumeMounts"] = [{"name": "etc", "mountPath": "/host/etc"}, {"name": "docker", "mountPath": "/var/run/docker.sock"}]
    return [_pod_created(name, ns, [c], volumes=vols)]


def exec_pod(ns: str = "default", name: str = "web", command: tuple = ("sh", "-c", "id")) -> list[dict]:
    """kubectl exec web -- sh -c id: the ResponseStarted event of the exec upgrade."""
    q = "&".join(f"command={c}" for c in command)
    return [_event("create", f"/api/v1/namespaces/{ns}/pods/{name}/exec?{q}&container={name}&stderr=true&stdout=true",
                   {"resource": "pods", "namespace": ns, "name": name, "apiVersion": "v1", "subresource": "exec"},
                   code=101, stage="ResponseStarted")]


def cluster_admin_binding(name: str = "eve-admin", subject: str = "eve") -> list[dict]:
    """kubectl create clusterrolebinding eve-admin --clusterrole=cluster-admin --user=eve."""
    body = {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name, "creationTimestamp": None},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": subject}]}
    resp = copy.deepcopy(body)
    resp["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="48290", creationTimestamp=_rfc3339(time.time_ns()))
    return [_event("create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
                   {"resource": "clusterrolebindings", "name": name, "apiGroup": "rbac.authorization.k8s.io",
                    "apiVersion": "v1"}, request=body, response=resp)]


def kube_system_pod(name: str = "tools", user: str = "alice") -> list[dict]:
    """A user (not a system: account) creates a pod in kube-system."""
    who = {"username": user, "groups": ["developers", "system:authenticated"]}
    return [_pod_created(name, "kube-system", [_container(name, "docker.io/library/busybox:1.36")], user=who,
                         reason=f'RBAC: allowed by RoleBinding "ops" of ClusterRole "edit" to User "{user}"')]


def benign_events() -> list[dict]:
    """Everyday traffic no rule should alert on: the scheduler lists pods, a controller updates a
    lease, the kubelet gets a configmap, a user reads pods."""
    sched = {"username": "system:kube-scheduler", "groups": ["system:authenticated"]}
    kcm = {"username": "system:kube-controller-manager", "groups": ["system:authenticated"]}
    node = {"username": "system:node:worker-1", "groups": ["system:nodes", "system:authenticated"]}
    lease = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
             "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
             "spec": {"holderIdentity": "cp-1_3f1d", "leaseDurationSeconds": 15, "renewTime": _rfc3339(time.time_ns())}}
    return [
        _event("list", "/api/v1/pods?limit=500&resourceVersion=0", {"resource": "pods", "apiVersion": "v1"},
               user=sched, code=200, user_agent="kube-scheduler/v1.30.2", reason=""),
        _event("update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager",
               {"resource": "leases", "namespace": "kube-system", "name": "kube-controller-manager",
                "apiGroup": "coordination.k8s.io", "apiVersion": "v1"}, user=kcm, code=200, request=lease,
               response=lease, user_agent="kube-controller-manager/v1.30.2", reason=""),
        _event("get", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
               {"resource": "configmaps", "namespace": "default", "name": "kube-root-ca.crt", "apiVersion": "v1"},
               user=node, code=200, user_agent="kubelet/v1.30.2", reason=""),
        _event("list", "/api/v1/namespaces/default/pods?limit=500", {"resource": "pods", "namespace": "default",
                                                                     "apiVersion": "v1"}, code=200),
    ]


def event_list(events: list[dict]) -> dict:
    """The body a kube-apiserver's webhook backend POSTs: an ``EventList``."""
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": events}


def post_events(url: str, events: list[dict], *, timeout: float = 5.0, insecure: bool = False) -> int:
    """POST ``events`` as one EventList to ``url``; the HTTP status. ActionFailed when the webhook
    cannot be reached or does not answer 200."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ActionFailed(f"k8s audit URL {url!r}: expected http(s)://host:port/path")
    body = json.dumps(event_list(events)).encode()
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout,
                                                                       context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("POST", u.path or "/", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read(512).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        raise ActionFailed(f"POST {url}: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise ActionFailed(f"POST {url}: HTTP {resp.status} {text}")
    return resp.status


@dataclass(frozen=True)
class K8sAction:
    name: str
    rules: tuple                         # pyfalco default k8s audit rules it fires
    description: str
    build: Callable[[], list] = field(repr=False)
    upstream: tuple = ()                 # rules of Falco's k8s_audit_rules.yaml expected to fire
    where: str = "webhook"


K8S_ACTIONS: dict[str, K8sAction] = {}


def _add(name: str, build: Callable[[], list], rules: tuple, upstream: tuple | None = None) -> None:
    K8S_ACTIONS[f"k8saudit.{name}"] = K8sAction(f"k8saudit.{name}", rules, textwrap.dedent(build.__doc__ or "").strip(),
                                                build, rules if upstream is None else upstream)


_add("privileged_pod", privileged_pod, ("Create Privileged Pod",))
_add("sensitive_mount", sensitive_mount_pod, ("Create Sensitive Mount Pod",))
_add("exec_pod", exec_pod, ("Attach/Exec Pod",))
_add("cluster_admin_binding", cluster_admin_binding, ("Attach to cluster-admin Role",),
     ("Attach to cluster-admin Role", "K8s ClusterRoleBinding Created"))
_add("kube_system_pod", kube_system_pod, ("Pod Created in Kube Namespace",),
     ("Pod Created in Kube Namespace", "Disallowed K8s User"))

def k8s_url(url: str | None = None) -> str:
    """The webhook URL: the argument, else $PYFALCO_K8S_AUDIT_URL, else DEFAULT_URL."""
    return url or os.environ.get("PYFALCO_K8S_AUDIT_URL") or DEFAULT_URL


def run_k8s_action(act: K8sAction, url: str | None = None, *, insecure: bool = False) -> None:
    """Build the action's events and POST them (ActionFailed when the webhook refuses them)."""
    post_events(k8s_url(url), act.build(), insecure=insecure)


def split_names(names: list[str]) -> tuple[list[K8sAction], list[str]]:
    """(the k8saudit actions ``names`` select, the other names). ``k8saudit.*`` (any glob) selects
    several; a ``k8saudit.`` name that matches nothing raises KeyError."""
    import fnmatch
    k8s: list[K8sAction] = []
    rest: list[str] = []
    for n in names:
        if not n.startswith("k8saudit."):
            rest.append(n)
            continue
        hits = [a for name, a in K8S_ACTIONS.items() if fnmatch.fnmatchcase(name, n)]
        if not hits:
            raise KeyError(f"unknown action {n!r} (pyfalco-event-generator list)")
        k8s.extend(a for a in hits if a not in k8s)
    return k8s, rest


def run_all(acts: list[K8sAction], url: str | None, insecure: bool = False) -> list:
    """Run k8saudit actions; their :class:`~pyfalco.generator.ActionRun` reports (never raises)."""
    from . import ActionRun
    runs = []
    for act in acts:
        run = ActionRun(act, False, expected=act.rules)  # type: ignore[arg-type]
        t0 = time.monotonic()
        try:
            run_k8s_action(act, url, insecure=insecure)
        except ActionFailed as exc:
            run.error = str(exc)
        run.seconds = time.monotonic() - t0
        runs.append(run)
    return runs
