# SPDX-License-Identifier: Apache-2.0
"""deploy/kubernetes/: every manifest parsed with the official Kubernetes client's models (a key
the API does not know fails), the DaemonSet checked against Falco's Helm chart defaults, and its
pod template run for real with ``podman kube play`` (converted into a Pod, as the DaemonSet
controller does, with its ConfigMap): the agent in it detects an action on the host, delivers the
alert to the configured HTTP endpoint, and answers the liveness and readiness probes."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from deploytools import REPO, AlertReader, has_marker, podman, repo_version

MANIFESTS = REPO / "deploy" / "kubernetes"
KINDS = {"Namespace": "V1Namespace", "ServiceAccount": "V1ServiceAccount", "ConfigMap": "V1ConfigMap",
         "DaemonSet": "V1DaemonSet", "ClusterRole": "V1ClusterRole", "ClusterRoleBinding": "V1ClusterRoleBinding",
         "Role": "V1Role", "RoleBinding": "V1RoleBinding", "Service": "V1Service"}


def manifests() -> list[dict]:
    docs = []
    for f in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def one(kind: str) -> dict:
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} manifests"
    return found[0]


def pod_spec() -> dict:
    return one("DaemonSet")["spec"]["template"]["spec"]


def agent_config() -> dict:
    return yaml.safe_load(one("ConfigMap")["data"]["pyfalco.yaml"])


def test_every_manifest_is_a_valid_kubernetes_object():
    from kubernetes import client
    api = client.ApiClient()
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"}
    for doc in docs:
        assert doc["kind"] in KINDS, f"unexpected kind {doc['kind']}"
        model = api._ApiClient__deserialize(doc, KINDS[doc["kind"]])
        # the models keep only the fields the API defines: a misspelt or misplaced key is lost here
        assert api.sanitize_for_serialization(model) == doc, f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == one("Namespace")["metadata"]["name"]


def test_daemonset_follows_falcos_chart_defaults():
    ds = one("DaemonSet")
    spec = pod_spec()
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert spec["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    assert spec["hostPID"] is True
    assert {"operator": "Exists"} in spec["tolerations"]          # every taint: every node
    (c,) = spec["containers"]
    assert c["image"] == f"localhost/pyfalco:{repo_version()}"
    assert c["securityContext"]["privileged"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["HOST_ROOT"]["value"] == "/host"
    assert env["FALCO_HOSTNAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert set(c["resources"]["requests"]) == {"cpu", "memory"} == set(c["resources"]["limits"])
    cfg = agent_config()
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["httpGet"]["path"] == cfg["webserver"]["k8s_healthz_endpoint"] == "/healthz"
        assert probe["httpGet"]["port"] == cfg["webserver"]["listen_port"]
    assert cfg["webserver"]["enabled"] is True and cfg["webserver"]["listen_address"] == "0.0.0.0"
    assert cfg["http_output"]["enabled"] is True and cfg["http_output"]["url"].startswith("http")
    # the host's /proc, /etc and /run read-only under HOST_ROOT; the ConfigMap at -c's folder
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for host in ("/proc", "/etc", "/run"):
        m = mounts["/host" + host]
        assert m["readOnly"] is True and vols[m["name"]]["hostPath"]["path"] == host
    cfg_dir = os.path.dirname(c["args"][c["args"].index("-c") + 1])
    assert vols[mounts[cfg_dir]["name"]]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    rules_local = [r for r in cfg["rules_files"] if r.startswith(cfg_dir + "/")]
    assert [os.path.basename(r) for r in rules_local] == ["pyfalco_rules.local.yaml"]
    assert "pyfalco_rules.local.yaml" in one("ConfigMap")["data"]


# ---- the pod template, for real ---------------------------------------------------------------------

RECEIVER = textwrap.dedent("""
    import http.server, sys
    out = open(sys.argv[2], "ab", buffering=0)
    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            out.write(body.replace(b"\\n", b" ") + b"\\n")
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")
POD = "pyfalco-kube-test"


def kube_yaml(image: str, receiver_port: int) -> str:
    """The DaemonSet's pod template as a Pod of this node, with its ConfigMap: what the DaemonSet
    controller and the kubelet would run here. The fieldRef spec.nodeName (which podman cannot
    resolve) becomes this node's name; the alerts go to a receiver in the pod's network."""
    ds, cm = one("DaemonSet"), copy.deepcopy(one("ConfigMap"))
    spec = copy.deepcopy(ds["spec"]["template"]["spec"])
    for c in spec["containers"]:
        c["image"] = image
        for e in c.get("env", []):
            if (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                del e["valueFrom"]
                e["value"] = socket.gethostname()
    cfg = yaml.safe_load(cm["data"]["pyfalco.yaml"])
    cfg["http_output"]["url"] = f"http://127.0.0.1:{receiver_port}/"
    cm["data"]["pyfalco.yaml"] = yaml.safe_dump(cfg)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": POD, "labels": ds["spec"]["template"]["metadata"]["labels"]}, "spec": spec}
    return yaml.safe_dump_all([cm, pod], sort_keys=False)


def in_pod_netns(pid: int, code: str, *args, background=False):
    """Python of this venv run in the pod's network namespace (its loopback is the pod's)."""
    cmd = ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code, *map(str, args)]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def probe(pid: int, path: str, port: int) -> tuple[int, str]:
    """A kubelet httpGet probe: GET http://<pod address>:<port><path>, 2xx/3xx is success."""
    r = in_pod_netns(pid, "import sys, urllib.request\n"
                          "try:\n"
                          "    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status, r.read().decode())\n"
                          "except Exception as e:\n"
                          "    print(0, e)\n", f"http://127.0.0.1:{port}{path}")
    code, _, body = r.stdout.strip().partition(" ")
    return int(code or 0), body


@pytest.fixture
def played_pod(pyfalco_image, tmp_path):
    port = 2801
    play = tmp_path / "play.yaml"
    play.write_text(kube_yaml(pyfalco_image, port))
    # the sandbox's hard limits: podman's default RLIMIT_NOFILE for the pod cannot be set here
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    podman("pod", "rm", "-f", "-t", "0", POD, check=False)
    r = subprocess.run(["podman", "kube", "play", str(play)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    ctr = f"{POD}-{pod_spec()['containers'][0]['name']}"
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", ctr).stdout)
    received = tmp_path / "received.jsonl"
    recv = in_pod_netns(pid, RECEIVER, port, received, background=True)
    logs = subprocess.Popen(["podman", "logs", "-f", ctr], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    reader = AlertReader(logs)
    yield reader, pid, received
    recv.terminate()
    recv.wait(timeout=10)
    podman("pod", "rm", "-f", "-t", "5", POD, check=False, timeout=120)
    logs.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.root
def test_pod_template_runs_detects_delivers_and_answers_probes(played_pod, marker):
    reader, pid, received = played_pod
    spec = pod_spec()
    c = spec["containers"][0]

    def attack():
        subprocess.run(["cat", "/etc/shadow", f"/nonexistent/{marker}"], capture_output=True, check=False)
    a = reader.wait_for(lambda a: has_marker(marker)(a) and a["rule"] == "Read sensitive file untrusted", attack,
                        timeout=120)
    assert a is not None, f"no alert from the pod; it said:\n{reader.text()}"
    f = a["output_fields"]
    assert f["fd.name"] == "/etc/shadow" and f["proc.name"] == "cat" and f["container.id"] == "host"
    assert a["hostname"] == socket.gethostname()          # FALCO_HOSTNAME: the node's name

    # the same alert reached the http_output endpoint (the pod's network)
    got = None
    end = time.monotonic() + 60
    while time.monotonic() < end and got is None:
        for line in received.read_text().splitlines() if received.exists() else []:
            obj = json.loads(line)
            if marker in obj["output_fields"].get("proc.cmdline", "") and obj["rule"] == a["rule"]:
                got = obj
        if got is None:
            attack()
            time.sleep(1)
    assert got is not None, f"no alert reached the http_output endpoint; the pod said:\n{reader.text()}"
    assert got["output_fields"]["fd.name"] == "/etc/shadow"

    # kubelet's probes, as the manifest declares them
    for name in ("livenessProbe", "readinessProbe"):
        get = c[name]["httpGet"]
        status, body = probe(pid, get["path"], get["port"])
        assert 200 <= status < 400, f"{name}: {status} {body}"
        assert json.loads(body) == {"status": "ok"}
    # and a path that is not a probe's is not answered as one
    status, _ = probe(pid, "/healthz-not", c["livenessProbe"]["httpGet"]["port"])
    assert status != 200
