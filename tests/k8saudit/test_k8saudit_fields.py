# SPDX-License-Identifier: Apache-2.0
"""ka.* and json.*/jevt.* extraction on audit events: names, values, lists, arguments and <NA>."""

from __future__ import annotations

import copy
import json

import pytest

from k8sauditkit import as_events
from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.api import PluginError, PluginEvent
from pyfalco.plugins.json_plugin import JsonPlugin
from pyfalco.plugins.k8saudit import K8sAuditPlugin, KA_FIELDS, PayloadError, parse_payload, parse_timestamp

POD = {
    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "5d1c-9e",
    "stage": "ResponseComplete", "verb": "create",
    "requestURI": "/api/v1/namespaces/team-a/pods/web/exec?command=sh&command=-c&container=web&tty=",
    "user": {"username": "alice", "groups": ["devs", "system:authenticated"]},
    "impersonatedUser": {"username": "bob"},
    "sourceIPs": ["10.1.2.3", "10.9.9.9"], "userAgent": "kubectl/v1.30.2",
    "objectRef": {"resource": "pods", "namespace": "team-a", "name": "web", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {"kind": "Pod", "spec": {
        "hostNetwork": True, "hostPID": False,
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000, 3001]},
        "containers": [
            {"name": "web", "image": "registry.example:5000/web:1.2", "command": ["nginx", "-g"],
             "ports": [{"containerPort": 80}, {"containerPort": 443, "hostPort": 8443}],
             "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}}},
            {"name": "side", "image": "busybox@sha256:0123", "securityContext": {"readOnlyRootFilesystem": True}}],
        "initContainers": [{"name": "init", "image": "alpine:3.20", "securityContext": {"privileged": False}}],
        "volumes": [{"name": "root", "hostPath": {"path": "/etc/kubernetes", "type": ""}},
                    {"name": "fx", "flexVolume": {"driver": "acme/fx"}}, {"name": "tmp", "emptyDir": {}}]}},
    "responseObject": {"metadata": {"name": "web-resp"}},
    "requestReceivedTimestamp": "2026-12-06T17:00:00.000100Z", "stageTimestamp": "2026-12-06T17:00:00.123456789Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: ok",
                    "pod-security.kubernetes.io/audit-violations": "privileged (container \"web\")"},
}


@pytest.fixture(scope="module")
def ka():
    p = K8sAuditPlugin()
    p.init("")
    return p


def event(doc: dict, num: int = 1) -> PluginEvent:
    (ts, data), = parse_payload(json.dumps(doc).encode())[0]
    return PluginEvent(num, ts, 1, "k8s_audit", data)


def test_every_field_is_declared_as_falco_declares_it(ka):
    specs = {s.name: s for s in ka.fields()}
    assert len(specs) == len(KA_FIELDS) >= 90
    assert all(s.type == "string" for s in specs.values())
    lists = {n for n, s in specs.items() if s.is_list}
    assert {"ka.user.groups", "ka.req.pod.containers.image", "ka.req.pod.volumes.hostpath", "ka.req.role.rules",
            "ka.req.role.rules.verbs", "ka.req.binding.subjects", "ka.sourceips"} <= lists
    assert not {"ka.verb", "ka.user.name", "ka.req.pod.host_network", "ka.req.container.image"} & lists
    assert specs["ka.uri.param"].arg_required and specs["ka.uri.param"].arg_key
    assert specs["ka.req.pod.containers.image"].arg_index and not specs["ka.req.pod.containers.image"].arg_required
    assert ka.id == 1 and ka.event_source == "k8s_audit" and ka.name == "k8saudit"


@pytest.mark.parametrize("field,arg,value", [
    ("ka.auditid", None, "5d1c-9e"),
    ("ka.stage", None, "ResponseComplete"),
    ("ka.verb", None, "create"),
    ("ka.user.name", None, "alice"),
    ("ka.user.groups", None, ("devs", "system:authenticated")),
    ("ka.impuser.name", None, "bob"),
    ("ka.auth.decision", None, "allow"),
    ("ka.auth.reason", None, "RBAC: ok"),
    ("ka.security.pod.violations", None, "privileged (container \"web\")"),
    ("ka.uri.param", "command", "sh"),            # the first of repeated parameters
    ("ka.uri.param", "tty", ""),                  # present and empty
    ("ka.uri.param", "missing", None),
    ("ka.target.resource", None, "pods"),
    ("ka.target.namespace", None, "team-a"),
    ("ka.target.name", None, "web"),
    ("ka.target.subresource", None, None),
    ("ka.target.pod.name", None, "web"),
    ("ka.resp.name", None, "web-resp"),
    ("ka.response.code", None, "201"),            # a JSON number as its text
    ("ka.response.reason", None, None),
    ("ka.useragent", None, "kubectl/v1.30.2"),
    ("ka.sourceips", None, ("10.1.2.3", "10.9.9.9")),
    ("ka.sourceips", "1", ("10.9.9.9",)),
    ("ka.req.pod.containers.image", None, ("registry.example:5000/web:1.2", "busybox@sha256:0123")),
    ("ka.req.pod.containers.image", "1", ("busybox@sha256:0123",)),
    ("ka.req.pod.containers.image", "7", None),   # out of range
    # the repository is what precedes the first ':' then '@' (k8saudit's split, registry ports included)
    ("ka.req.pod.containers.image.repository", None, ("registry.example", "busybox")),
    ("ka.req.container.image", None, "registry.example:5000/web:1.2"),
    ("ka.req.pod.containers.name", None, ("web", "side")),
    ("ka.req.pod.containers.command", None, ('["nginx","-g"]',)),
    ("ka.req.pod.containers.privileged", None, ("true",)),        # containers without the flag add nothing
    ("ka.req.container.privileged", None, "true"),
    ("ka.req.pod.containers.read_only_fs", None, ("true",)),
    ("ka.req.pod.containers.run_as_user", None, ("0",)),
    ("ka.req.pod.containers.eff_run_as_user", None, ("0", "1000")),   # own value, else the pod's
    ("ka.req.pod.containers.eff_run_as_group", None, ("0", "0")),     # nobody sets it: 0
    # one value per container: its whole list as compact JSON (as the plugin extracts it)
    ("ka.req.pod.containers.add_capabilities", None, ('["NET_ADMIN","SYS_TIME"]',)),
    ("ka.req.pod.containers.host_port", None, ("80", "8443")),       # hostPort, else containerPort
    ("ka.req.pod.initContainers.image", None, ("alpine:3.20",)),
    ("ka.req.pod.initContainers.privileged", None, ("false",)),
    ("ka.req.pod.ephemeralContainers.image", None, None),
    ("ka.req.pod.host_network", None, "true"),
    ("ka.req.pod.host_pid", None, "false"),
    ("ka.req.pod.host_ipc", None, None),
    ("ka.req.pod.run_as_user", None, "1000"),
    ("ka.req.pod.fs_group", None, "2000"),
    ("ka.req.pod.supplemental_groups", None, ("3000", "3001")),
    ("ka.req.pod.volumes.hostpath", None, ("/etc/kubernetes",)),
    ("ka.req.volume.hostpath", "/etc/kubernetes", "true"),
    ("ka.req.volume.hostpath", "/etc*", "true"),
    ("ka.req.volume.hostpath", "/proc", "false"),
    ("ka.req.pod.volumes.flexvolume_driver", None, ("acme/fx",)),
    ("ka.req.pod.volumes.volume_type", None, ("hostPath", "flexVolume", "emptyDir")),
    ("ka.req.role.rules", None, None),
    ("ka.req.binding.role", None, None),
])
def test_pod_event_values(ka, field, arg, value):
    assert ka.extract(event(POD), field, arg) == value


def test_binding_and_role_fields(ka):
    (binding,) = gen.cluster_admin_binding(subject="eve")
    binding["requestObject"]["subjects"] += [{"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                                              {"kind": "Group", "name": "ops"}]
    e = event(binding)
    assert ka.extract(e, "ka.req.binding.role", None) == "cluster-admin"
    subjects = ka.extract(e, "ka.req.binding.subjects", None)
    assert [json.loads(s) for s in subjects] == binding["requestObject"]["subjects"]
    assert subjects[0] == '{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"eve"}'  # compact JSON
    assert ka.extract(e, "ka.req.binding.subjects.user_names", None) == ("eve",)
    assert ka.extract(e, "ka.req.binding.subjects.serviceaccount_names", None) == ("ci",)
    assert ka.extract(e, "ka.req.binding.subjects.serviceaccount_ns_names", None) == ("build:ci",)
    assert ka.extract(e, "ka.req.binding.subjects.group_names", None) == ("ops",)
    role = copy.deepcopy(binding)
    role["objectRef"]["resource"] = "clusterroles"
    role["requestObject"] = {"kind": "ClusterRole", "rules": [
        {"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["*"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}
    r = event(role)
    assert ka.extract(r, "ka.req.role.rules.verbs", None) == ("*", "get")
    assert ka.extract(r, "ka.req.role.rules.verbs", "1") == ("get",)
    assert ka.extract(r, "ka.req.role.rules.resources", None) == ("pods", "pods/exec")
    assert ka.extract(r, "ka.req.role.rules.apiGroups", None) == ("",)
    assert ka.extract(r, "ka.req.role.rules.nonResourceURLs", None) == ("/metrics",)
    assert len(ka.extract(r, "ka.req.role.rules", None)) == 2


def test_not_an_audit_event_is_all_na(ka):
    # JSON, but no auditID: the plugin treats it as unrelated, every ka.* field is <NA>
    e = PluginEvent(1, 5, 1, "k8s_audit", json.dumps({"verb": "create", "user": {"username": "x"}}).encode())
    assert all(ka.extract(e, f, "x" if KA_FIELDS[f].arg == "key" else None) is None for f in KA_FIELDS)
    garbage = PluginEvent(2, 5, 1, "k8s_audit", b"\xff not json")
    assert ka.extract(garbage, "ka.verb", None) is None
    assert JsonPlugin().extract(garbage, "json.obj", None) is None


def test_wrong_types_are_na_not_errors(ka):
    doc = copy.deepcopy(POD)
    doc["user"]["groups"] = "not-a-list"
    doc["requestObject"]["spec"]["containers"] = [{"name": "noimage"}]
    doc["requestObject"]["spec"]["volumes"] = "x"
    e = event(doc)
    assert ka.extract(e, "ka.user.groups", None) is None
    assert ka.extract(e, "ka.req.pod.containers.image", None) is None      # a container without image
    assert ka.extract(e, "ka.req.pod.volumes.hostpath", None) is None
    doc["requestURI"] = "/api?bad=%zz%"
    assert ka.extract(event(doc, 2), "ka.uri.param", "bad") is None


def test_bad_arguments_are_errors_naming_the_plugin(ka):
    e = event(POD)
    with pytest.raises(PluginError, match="k8saudit.*requires an argument"):
        ka.extract(e, "ka.uri.param", None)
    with pytest.raises(PluginError, match="numeric index"):
        ka.extract(e, "ka.req.pod.containers.image", "first")
    with pytest.raises(PluginError, match="does not take an argument"):
        ka.extract(e, "ka.verb", "x")
    with pytest.raises(PluginError, match="ka.nope"):
        ka.extract(e, "ka.nope", None)


def test_json_plugin_fields():
    j = JsonPlugin()
    assert [s.name for s in j.fields()] == ["json.value", "json.obj", "json.rawtime", "jevt.value", "jevt.obj",
                                            "jevt.rawtime"]
    e = event(POD)
    for prefix in ("json", "jevt"):
        assert j.extract(e, f"{prefix}.value", "/stage") == "ResponseComplete"
        assert j.extract(e, f"{prefix}.value", "stage") == "ResponseComplete"       # leading / optional
        assert j.extract(e, f"{prefix}.value", "/responseStatus/code") == "201"
        assert j.extract(e, f"{prefix}.value", "/requestObject/spec/containers/1/name") == "side"
        assert j.extract(e, f"{prefix}.value", "/annotations/authorization.k8s.io~1decision") == "allow"
        assert j.extract(e, f"{prefix}.value", "/annotations/authorization.k8s.io/decision") is None
        assert j.extract(e, f"{prefix}.value", "/requestObject/spec/volumes/9") is None
        assert json.loads(j.extract(e, f"{prefix}.value", "/requestObject/spec/volumes")) == \
            POD["requestObject"]["spec"]["volumes"]
        assert j.extract(e, f"{prefix}.rawtime", None) == str(e.ts) == "1796576400123456789"
        obj = j.extract(e, f"{prefix}.obj", None)
        assert json.loads(obj) == POD and obj.startswith('{\n  "kind": "Event"')
    # "~1" is "/" inside a key
    doc = copy.deepcopy(POD)
    doc["annotations"]["a/b"] = "slash"
    assert j.extract(event(doc, 3), "jevt.value", "/annotations/a~1b") == "slash"
    with pytest.raises(PluginError, match="requires an argument"):
        j.extract(e, "json.value", "")


def test_timestamps_and_payload_shapes():
    assert parse_timestamp("2026-12-06T17:00:00Z") == 1796576400 * 10**9
    assert parse_timestamp("2026-12-06T18:00:00.5+01:00") == 1796576400 * 10**9 + 500_000_000
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
    evs = gen.benign_events()
    as_list, _ = parse_payload(json.dumps(gen.event_list(evs)))
    as_array, _ = parse_payload(json.dumps(evs))
    nested, _ = parse_payload(json.dumps([gen.event_list(evs[:2]), evs[2], [evs[3]]]))
    assert len(as_list) == len(as_array) == len(nested) == 4
    assert [json.loads(d)["auditID"] for _, d in as_list] == [e["auditID"] for e in evs]
    events = as_events(as_list)
    assert events[0].num == 1 and events[0].ts == parse_timestamp(evs[0]["stageTimestamp"])


def test_payload_is_each_event_as_sent():
    evs = gen.benign_events()
    texts = [json.dumps(e, indent=1) for e in evs]
    body = '{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [\n' + ",\n".join(texts) + "\n]}"
    got, problems = parse_payload(body.encode(), max_event_size=1 << 20)
    assert not problems and [bytes(d) for _, d in got] == [t.encode() for t in texts]
    assert [d.doc for _, d in got] == evs
    # the size limit is on the compact JSON: pretty-printed events are compacted, not refused
    compact = max(len(json.dumps(e, separators=(",", ":"))) for e in evs)
    got, problems = parse_payload(body.encode(), max_event_size=compact)
    assert not problems and len(got) == len(evs) and all(len(d) <= compact for _, d in got)
    assert [json.loads(d) for _, d in got] == evs
    # what the scanner does not take (an array holding an EventList, a broken body) goes the plain way
    nested, _ = parse_payload(json.dumps([gen.event_list(evs[:2]), evs[2]]).encode())
    assert [json.loads(d)["auditID"] for _, d in nested] == [e["auditID"] for e in evs[:3]]
    with pytest.raises(PayloadError, match="invalid JSON"):
        parse_payload(body[:-3].encode())
    with pytest.raises(PayloadError, match="not recognized"):
        parse_payload(b'{"kind": "EventList", "items": 3}')


def test_json_obj_is_the_payload_reindented_as_sent():
    # numbers and escapes as written (Go's json.Indent), one member per line, ": " after keys
    doc = dict(POD, weight=1.50e3, note="<b>\u00e9")
    text = json.dumps(doc, ensure_ascii=True).replace("1500.0", "1.50e3")
    (ts, data), = parse_payload(text.encode())[0]
    obj = JsonPlugin().extract(PluginEvent(1, ts, 1, "k8s_audit", data), "jevt.obj", None)
    assert '"weight": 1.50e3' in obj and '"note": "<b>\\u00e9"' in obj
    assert obj.startswith('{\n  "kind": "Event",\n  "apiVersion": "audit.k8s.io/v1",')
    assert '"subresource"' not in obj and '"volumes": [\n' in obj and '"emptyDir": {}' in obj
    assert json.loads(obj) == json.loads(text)


def test_json_null_is_a_value_a_missing_key_is_not(ka):
    # the plugin renders a JSON null as "null"; a key that is not there adds nothing (or <NA>)
    doc = copy.deepcopy(POD)
    spec = doc["requestObject"]["spec"]
    spec["containers"] = [{"name": "a", "image": None, "securityContext": {"privileged": None}}, {"name": "b"}]
    spec["volumes"] = [{"name": "v", "hostPath": {"path": None}}, {"name": "w", "emptyDir": {}}]
    e = event(doc)
    assert ka.extract(e, "ka.req.pod.containers.privileged", None) == ("null",)
    assert ka.extract(e, "ka.req.pod.containers.image", None) is None      # "b" has no image at all
    assert ka.extract(e, "ka.req.pod.containers.image", "0") == ("null",)
    assert ka.extract(e, "ka.req.pod.volumes.hostpath", None) == ("null",)
    assert ka.extract(e, "ka.req.volume.hostpath", "null") == "true"
    doc["responseStatus"]["code"] = None
    assert ka.extract(event(doc, 2), "ka.response.code", None) == "null"
