# SPDX-License-Identifier: Apache-2.0
"""The ``ka.*`` fields of Kubernetes audit events: names, types, arguments and extraction.

Every field is a string (Falco's k8saudit plugin declares no other type); list fields yield a
tuple of strings. Values follow the plugin's rules:

* an event without ``auditID`` is not an audit event: every field is ``<NA>`` (None);
* a missing key anywhere on the path is ``<NA>``; an empty list is ``<NA>`` too (no values);
* a JSON string is its text, any other JSON value its compact JSON text (``true``, ``200``,
  ``{"kind":"User","name":"bob"}``, ``null``);
* list fields over containers/volumes/rules take an optional ``[index]`` (that element only;
  out of range is ``<NA>``); ``ka.uri.param``, ``ka.req.volume.hostpath`` and
  ``ka.req.binding.subject.has_name`` take a required ``[key]``.

:func:`compile_field` turns a field use (name, argument) into a function ``doc -> value`` once,
so evaluating a rule costs dictionary walks only.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qs, urlsplit

__all__ = ["KaField", "KA_FIELDS", "compile_field", "as_text", "FieldArgError"]

_MISSING = object()
MISSING = _MISSING           # what walk() returns for an absent key
_NA = None
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
Getter = Callable[[dict], Any]


class FieldArgError(ValueError):
    """A field use with an argument the field does not accept (caught at rules load)."""


class KaField(NamedTuple):
    name: str
    is_list: bool
    arg: str          # "none" | "index" (optional integer) | "key" (required text)
    desc: str


def as_text(v: Any) -> str:
    """A JSON value as the plugin renders it: strings as they are, anything else compact JSON."""
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def walk(doc: Any, keys: tuple) -> Any:
    """Walk ``keys`` (object keys; numeric keys index arrays, as fastjson's Get); MISSING if absent
    (the json plugin's pointers walk the same way)."""
    v = doc
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, _MISSING)
            if v is _MISSING:
                return _MISSING
        elif isinstance(v, list) and k.isdigit():
            i = int(k)
            if i >= len(v):
                return _MISSING
            v = v[i]
        else:
            return _MISSING
    return v


def _values(doc: Any, index: int | None, keys: tuple) -> list | None:
    """Values at ``keys`` fanning out over arrays met on the way (every element, or element
    ``index``). A branch that lacks the rest of the path adds _MISSING (a JSON null is None, a
    value: the plugin renders it "null"); None when the path breaks
    before any array (nothing to report)."""
    v = doc
    for i, k in enumerate(keys):
        if isinstance(v, list):
            if index is None:
                out: list = []
                rest = keys[i:]
                for item in v:
                    sub = _values(item, None, rest)
                    if sub is None:
                        out.append(_MISSING)
                    else:
                        out.extend(sub)
                return out
            if index >= len(v):
                return None
            v = v[index]
        if k == "":
            # "" selects the element itself (volume_type walks each volume object)
            continue
        if not isinstance(v, dict):
            return None
        v = v.get(k, _MISSING)
        if v is _MISSING:
            return None
    return [v]


def _tup(values: list | None) -> tuple | None:
    if not values:
        return _NA
    return tuple(values)


def _skip_none(values: list | None) -> tuple | None:
    if values is None:
        return _NA
    return _tup([as_text(v) for v in values if v is not _MISSING])


def _all_or_na(values: list | None) -> tuple | None:
    """Every value as text; any missing one makes the whole field <NA> (the plugin errors)."""
    if values is None or any(v is _MISSING for v in values):
        return _NA
    return _tup([as_text(v) for v in values])


# ---- field getters --------------------------------------------------------------------------
def _scalar(*keys: str) -> Callable[[Any], Getter]:
    def make(arg: Any) -> Getter:
        def get(doc: dict) -> Any:
            v = walk(doc, keys)
            return _NA if v is _MISSING else as_text(v)
        return get
    return make


def _scalar_list(*keys: str) -> Callable[[Any], Getter]:
    def make(arg: Any) -> Getter:
        def get(doc: dict) -> Any:
            v = walk(doc, keys)
            if not isinstance(v, list) or not v:
                return _NA
            return tuple(as_text(x) for x in v)
        return get
    return make


def _recursive(*keys: str, skip_none: bool = True) -> Callable[[Any], Getter]:
    conv = _skip_none if skip_none else _all_or_na

    def make(index: Any) -> Getter:
        return lambda doc: conv(_values(doc, index, keys))
    return make


def _repos(images: tuple | None) -> tuple | None:
    # the repository is what precedes the first ':' then the first '@' (the plugin's split)
    if images is None:
        return _NA
    return tuple(i.split(":", 1)[0].split("@", 1)[0] for i in images)


def _images(kind: str, repository: bool) -> Callable[[Any], Getter]:
    keys = ("requestObject", "spec", kind, "image")

    def make(index: Any) -> Getter:
        if repository:
            return lambda doc: _repos(_all_or_na(_values(doc, index, keys)))
        return lambda doc: _all_or_na(_values(doc, index, keys))
    return make


def _first(make_list: Callable[[Any], Getter]) -> Callable[[Any], Getter]:
    def make(arg: Any) -> Getter:
        inner = make_list(0)

        def get(doc: dict) -> Any:
            v = inner(doc)
            return v[0] if v else _NA
        return get
    return make


def _host_ports(kind: str) -> Callable[[Any], Getter]:
    keys = ("requestObject", "spec", kind, "ports")

    def make(index: Any) -> Getter:
        def get(doc: dict) -> Any:
            per = _values(doc, index, keys)
            if per is None:
                return _NA
            out = []
            for ports in per:
                if ports is _MISSING:
                    continue
                if not isinstance(ports, list):
                    return _NA
                for p in ports:
                    if not isinstance(p, dict):
                        continue
                    if "hostPort" in p:
                        out.append(as_text(p["hostPort"]))
                    elif "containerPort" in p:   # with hostNetwork this is the host port
                        out.append(as_text(p["containerPort"]))
            return _tup(out)
        return get
    return make


def _effective(kind: str, key: str) -> Callable[[Any], Getter]:
    """The id every container starts with: its own securityContext value, else the pod's, else 0."""
    def make(index: Any) -> Getter:
        def get(doc: dict) -> Any:
            pod = walk(doc, ("requestObject", "spec", "securityContext", key))
            default = "0" if pod is _MISSING else as_text(pod)
            per = walk(doc, ("requestObject", "spec", kind))
            if not isinstance(per, list):
                return _NA
            if index is not None:
                if index >= len(per):
                    return _NA
                per = per[index:index + 1]
            out = []
            for c in per:
                v = walk(c, ("securityContext", key)) if isinstance(c, dict) else _MISSING
                out.append(default if v is _MISSING else as_text(v))
            return _tup(out)
        return get
    return make


def _any_privileged(arg: Any) -> Getter:
    keys = ("requestObject", "spec", "containers", "securityContext", "privileged")

    def get(doc: dict) -> Any:
        per = _values(doc, None, keys)
        if per is None:
            return _NA
        return "true" if any(v is True for v in per) else "false"
    return get


def _rules_field(key: str) -> Callable[[Any], Getter]:
    keys = ("requestObject", "rules", key)

    def make(index: Any) -> Getter:
        def get(doc: dict) -> Any:
            per = _values(doc, index, keys)
            if per is None:
                return _NA
            out = []
            for v in per:
                if isinstance(v, list):
                    out.extend(as_text(x) for x in v)
            return _tup(out)
        return get
    return make


def _items(*keys: str) -> Callable[[Any], Getter]:
    """Each element of the array at ``keys`` (or element ``index``) as text."""
    def make(index: Any) -> Getter:
        def get(doc: dict) -> Any:
            v = walk(doc, keys)
            if not isinstance(v, list):
                return _NA
            if index is not None:
                return (as_text(v[index]),) if index < len(v) else _NA
            return _tup([as_text(x) for x in v])
        return get
    return make


def _uri_param(key: Any) -> Getter:
    def get(doc: dict) -> Any:
        uri = walk(doc, ("requestURI",))
        if uri is _MISSING:
            return _NA
        try:
            query = urlsplit(as_text(uri)).query
            if _BAD_ESCAPE.search(query):   # Go's ParseQuery refuses the whole query: <NA>
                return _NA
            vals = parse_qs(query, keep_blank_values=True, errors="strict").get(key)
        except ValueError:
            return _NA
        return vals[0] if vals else _NA
    return get


def _volume_hostpath(key: Any) -> Getter:
    keys = ("requestObject", "spec", "volumes", "hostPath", "path")
    prefix = key[:-1] if key.endswith("*") else None

    def get(doc: dict) -> Any:
        per = _values(doc, None, keys)
        if per is None:
            return _NA
        for v in per:
            if v is _MISSING:
                continue
            p = as_text(v)
            if p == key or (prefix is not None and p.startswith(prefix)):
                return "true"
        return "false"
    return get


def _volume_types(index: Any) -> Getter:
    def get(doc: dict) -> Any:
        per = _values(doc, index, ("requestObject", "spec", "volumes", ""))
        if per is None:
            return _NA
        out = []
        for v in per:
            if isinstance(v, dict):
                out.extend(k for k in v if k != "name")
        return _tup(out)
    return get


def _subjects(kind: str, with_ns: bool = False) -> Callable[[Any], Getter]:
    def make(arg: Any) -> Getter:
        def get(doc: dict) -> Any:
            subs = walk(doc, ("requestObject", "subjects"))
            if not isinstance(subs, list):
                return _NA
            out = []
            for s in subs:
                if isinstance(s, dict) and s.get("kind") == kind and "name" in s:
                    name = as_text(s["name"])
                    out.append(f"{as_text(s.get('namespace', ''))}:{name}" if with_ns else name)
            return _tup(out)
        return get
    return make


def _target_pod_name(arg: Any) -> Getter:
    def get(doc: dict) -> Any:
        ref = doc.get("objectRef")
        if isinstance(ref, dict) and ref.get("resource") == "pods" and "name" in ref:
            return as_text(ref["name"])
        return _NA
    return get


def _always_true(arg: Any) -> Getter:
    # documented as N/A, but the plugin (like the legacy implementation) answers "true"
    return lambda doc: "true"


# ---- the table ------------------------------------------------------------------------------
_SPECS: list[tuple[str, bool, str, Callable[[Any], Getter], str]] = []


def _f(name: str, make: Callable[[Any], Getter], desc: str, *, is_list: bool = False, arg: str = "none") -> None:
    _SPECS.append((name, is_list, arg, make, desc))


_ANN = "annotations"
_f("ka.auditid", _scalar("auditID"), "The unique id of the audit event")
_f("ka.stage", _scalar("stage"), "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)")
_f("ka.auth.decision", _scalar(_ANN, "authorization.k8s.io/decision"), "The authorization decision")
_f("ka.auth.reason", _scalar(_ANN, "authorization.k8s.io/reason"), "The authorization reason")
_f("ka.auth.openshift.decision", _scalar(_ANN, "authentication.openshift.io/decision"),
   "The authentication decision of the openshift apiserver extension. Only available on openshift clusters")
_f("ka.validations.admission.policy.failure", _scalar(_ANN, "validation.policy.admission.k8s.io/validation_failure"),
   "The validation failure reason from a Validation Admission Policy")
_f("ka.security.pod.violations", _scalar(_ANN, "pod-security.kubernetes.io/audit-violations"),
   "The violation reason for pod security policy")
_f("ka.auth.openshift.username", _scalar(_ANN, "authentication.openshift.io/username"),
   "The user name performing the openshift authentication operation. Only available on openshift clusters")
_f("ka.user.name", _scalar("user", "username"), "The user name performing the request")
_f("ka.user.groups", _scalar_list("user", "groups"), "The groups to which the user belongs", is_list=True)
_f("ka.impuser.name", _scalar("impersonatedUser", "username"), "The impersonated user name")
_f("ka.verb", _scalar("verb"), "The action being performed")
_f("ka.uri", _scalar("requestURI"), "The request URI as sent from client to server")
_f("ka.uri.param", _uri_param, "The value of a given query parameter in the uri (e.g. when uri=/foo?key=val, "
   "ka.uri.param[key] is val).", arg="key")
_f("ka.target.name", _scalar("objectRef", "name"), "The target object name")
_f("ka.target.namespace", _scalar("objectRef", "namespace"), "The target object namespace")
_f("ka.target.resource", _scalar("objectRef", "resource"), "The target object resource")
_f("ka.target.subresource", _scalar("objectRef", "subresource"), "The target object subresource")
_f("ka.target.pod.name", _target_pod_name, "The target pod name")
_f("ka.req.binding.subjects", _scalar_list("requestObject", "subjects"),
   "When the request object refers to a cluster role binding, the subject (e.g. account/users) being linked by "
   "the binding", is_list=True)
_f("ka.req.binding.subjects.user_names", _subjects("User"),
   "When the request object refers to a cluster role binding, the subject user names being linked by the binding",
   is_list=True)
_f("ka.req.binding.subjects.serviceaccount_names", _subjects("ServiceAccount"),
   "When the request object refers to a cluster role binding, the subject service account names being linked by "
   "the binding", is_list=True)
_f("ka.req.binding.subjects.serviceaccount_ns_names", _subjects("ServiceAccount", with_ns=True),
   "When the request object refers to a cluster role binding, the subject serviceaccount namespaced names being "
   "linked by the binding, e.g. a list containing: mynamespace:myserviceaccount", is_list=True)
_f("ka.req.binding.subjects.group_names", _subjects("Group"),
   "When the request object refers to a cluster role binding, the subject group names being linked by the binding",
   is_list=True)
_f("ka.req.binding.role", _scalar("requestObject", "roleRef", "name"),
   "When the request object refers to a cluster role binding, the role being linked by the binding")
_f("ka.req.binding.subject.has_name", _always_true,
   "Deprecated, always returns \"N/A\". Only provided for backwards compatibility", arg="key")
_f("ka.req.configmap.name", _scalar("objectRef", "name"), "If the request object refers to a configmap, the configmap name")
_f("ka.req.configmap.obj", _scalar("requestObject", "data"),
   "If the request object refers to a configmap, the entire configmap object")

_KINDS = (("containers", "container's", "all containers"), ("initContainers", "init containers", "all init containers"),
          ("ephemeralContainers", "ephemeral containers", "all ephemeral containers"))
for _kind, _what, _all in _KINDS:
    _p = f"ka.req.pod.{_kind}"
    _spec = ("requestObject", "spec", _kind)
    _sc = ("securityContext",)
    _f(f"{_p}.name", _recursive(*_spec, "name"), f"When the request object refers to a pod, the {_what} names.",
       is_list=True, arg="index")
    _f(f"{_p}.image", _images(_kind, False), f"When the request object refers to a pod, the {_what} images.",
       is_list=True, arg="index")
    _f(f"{_p}.image.repository", _images(_kind, True),
       f"The same as ka.req.pod.{_kind}.image, but only the repository part (e.g. falcosecurity/falco).",
       is_list=True, arg="index")
    _f(f"{_p}.command", _recursive(*_spec, "command"), f"When the request object refers to a pod, the {_what} commands.",
       is_list=True, arg="index")
    _f(f"{_p}.args", _recursive(*_spec, "args"), f"When the request object refers to a pod, the {_what} args.",
       is_list=True, arg="index")
    _f(f"{_p}.host_port", _host_ports(_kind), f"When the request object refers to a pod, {_all} hostPort values.",
       is_list=True, arg="index")
    _f(f"{_p}.privileged", _recursive(*_spec, *_sc, "privileged"),
       f"When the request object refers to a pod, the value of the privileged flag for {_all}.", is_list=True, arg="index")
    _f(f"{_p}.allow_privilege_escalation", _recursive(*_spec, *_sc, "allowPrivilegeEscalation"),
       f"When the request object refers to a pod, the value of the allowPrivilegeEscalation flag for {_all}",
       is_list=True, arg="index")
    _f(f"{_p}.read_only_fs", _recursive(*_spec, *_sc, "readOnlyRootFilesystem"),
       f"When the request object refers to a pod, the value of the readOnlyRootFilesystem flag for {_all}",
       is_list=True, arg="index")
    _f(f"{_p}.run_as_user", _recursive(*_spec, *_sc, "runAsUser"),
       f"When the request object refers to a pod, the runAsUser uid for {_all}", is_list=True, arg="index")
    _f(f"{_p}.eff_run_as_user", _effective(_kind, "runAsUser"),
       f"When the request object refers to a pod, the initial uid that will be used for {_all}. This combines "
       "information from both the pod and container security contexts and uses 0 if no uid is specified",
       is_list=True, arg="index")
    _f(f"{_p}.run_as_group", _recursive(*_spec, *_sc, "runAsGroup"),
       f"When the request object refers to a pod, the runAsGroup gid for {_all}", is_list=True, arg="index")
    _f(f"{_p}.eff_run_as_group", _effective(_kind, "runAsGroup"),
       f"When the request object refers to a pod, the initial gid that will be used for {_all}. This combines "
       "information from both the pod and container security contexts and uses 0 if no gid is specified",
       is_list=True, arg="index")
    _f(f"{_p}.proc_mount", _recursive(*_spec, *_sc, "procMount"),
       f"When the request object refers to a pod, the procMount types for {_all}", is_list=True, arg="index")
    _f(f"{_p}.add_capabilities", _recursive(*_spec, *_sc, "capabilities", "add"),
       f"When the request object refers to a pod, all capabilities to add when running {_all}.",
       is_list=True, arg="index")

_f("ka.req.container.image", _first(_images("containers", False)),
   "Deprecated by ka.req.pod.containers.image. Returns the image of the first container only")
_f("ka.req.container.image.repository", _first(_images("containers", True)),
   "Deprecated by ka.req.pod.containers.image.repository. Returns the repository of the first container only")
_f("ka.req.pod.host_ipc", _scalar("requestObject", "spec", "hostIPC"),
   "When the request object refers to a pod, the value of the hostIPC flag.")
_f("ka.req.pod.host_network", _scalar("requestObject", "spec", "hostNetwork"),
   "When the request object refers to a pod, the value of the hostNetwork flag.")
_f("ka.req.container.host_network", _scalar("requestObject", "spec", "hostNetwork"),
   "Deprecated alias for ka.req.pod.host_network")
_f("ka.req.pod.host_pid", _scalar("requestObject", "spec", "hostPID"),
   "When the request object refers to a pod, the value of the hostPID flag.")
_f("ka.req.container.privileged", _any_privileged,
   "Deprecated by ka.req.pod.containers.privileged. Returns true if any container has privileged=true")
_f("ka.req.pod.run_as_user", _scalar("requestObject", "spec", "securityContext", "runAsUser"),
   "When the request object refers to a pod, the runAsUser uid specified in the security context for the pod. "
   "See ....containers.run_as_user for the runAsUser for individual containers")
_f("ka.req.pod.run_as_group", _scalar("requestObject", "spec", "securityContext", "runAsGroup"),
   "When the request object refers to a pod, the runAsGroup gid specified in the security context for the pod. "
   "See ....containers.run_as_group for the runAsGroup for individual containers")
_f("ka.req.role.rules", _scalar_list("requestObject", "rules"),
   "When the request object refers to a role/cluster role, the rules associated with the role", is_list=True)
for _key in ("apiGroups", "nonResourceURLs", "verbs", "resources"):
    _what = {"apiGroups": "api groups", "nonResourceURLs": "non resource urls"}.get(_key, _key)
    _f(f"ka.req.role.rules.{_key}", _rules_field(_key),
       f"When the request object refers to a role/cluster role, the {_what} associated with the role's rules",
       is_list=True, arg="index")
_f("ka.req.pod.fs_group", _scalar("requestObject", "spec", "securityContext", "fsGroup"),
   "When the request object refers to a pod, the fsGroup gid specified by the security context.")
_f("ka.req.pod.supplemental_groups", _scalar_list("requestObject", "spec", "securityContext", "supplementalGroups"),
   "When the request object refers to a pod, the supplementalGroup gids specified by the security context.",
   is_list=True)
_f("ka.req.service.type", _scalar("requestObject", "spec", "type"),
   "When the request object refers to a service, the service type")
_f("ka.req.service.ports", _items("requestObject", "spec", "ports"),
   "When the request object refers to a service, the service's ports", is_list=True, arg="index")
_f("ka.req.pod.volumes.hostpath", _recursive("requestObject", "spec", "volumes", "hostPath", "path"),
   "When the request object refers to a pod, all hostPath paths specified for all volumes", is_list=True, arg="index")
_f("ka.req.volume.hostpath", _volume_hostpath,
   "Deprecated by ka.req.pod.volumes.hostpath. Return true if the provided (host) path prefix is used by any volume",
   arg="key")
_f("ka.req.pod.volumes.flexvolume_driver", _recursive("requestObject", "spec", "volumes", "flexVolume", "driver"),
   "When the request object refers to a pod, all flexvolume drivers specified for all volumes", is_list=True,
   arg="index")
_f("ka.req.pod.volumes.volume_type", _volume_types,
   "When the request object refers to a pod, all volume types for all volumes", is_list=True, arg="index")
_f("ka.resp.name", _scalar("responseObject", "metadata", "name"), "The response object name")
_f("ka.response.code", _scalar("responseStatus", "code"), "The response code")
_f("ka.response.reason", _scalar("responseStatus", "reason"), "The response reason (usually present only for failures)")
_f("ka.useragent", _scalar("userAgent"), "The useragent of the client who made the request to the apiserver")
_f("ka.sourceips", _items("sourceIPs"), "The IP addresses of the client who made the request to the apiserver",
   is_list=True, arg="index")
_f("ka.cluster.name", _scalar("cluster_name"), "The name of the k8s cluster")

#: name -> KaField, in the plugin's order
KA_FIELDS: dict[str, KaField] = {n: KaField(n, lst, a, d) for n, lst, a, _m, d in _SPECS}
_MAKERS: dict[str, Callable[[Any], Getter]] = {n: m for n, _l, _a, m, _d in _SPECS}
del _f, _kind, _what, _all, _p, _spec, _sc, _key


def compile_field(name: str, arg: str | None) -> Getter:
    """The function ``audit event dict -> value`` of one field use.

    KeyError for an unknown field; :class:`FieldArgError` for an argument the field refuses
    (a key field without its key, an index that is not a non-negative integer, an argument
    given to a field that takes none)."""
    spec = KA_FIELDS[name]
    make = _MAKERS[name]
    if spec.arg == "none":
        if arg is not None:
            raise FieldArgError(f"field '{name}' does not take an argument")
        inner = make(None)
    elif spec.arg == "key":
        if not arg:
            raise FieldArgError(f"field '{name}' requires an argument")
        inner = make(arg)
    else:
        index = None
        if arg is not None:
            if not arg.isdigit():
                raise FieldArgError(f"field '{name}': the argument must be a numeric index, not '{arg}'")
            index = int(arg)
        inner = make(index)

    def get(doc: Any) -> Any:
        # not an audit event (no auditID): every ka.* field is <NA>
        if not isinstance(doc, dict) or "auditID" not in doc:
            return _NA
        return inner(doc)
    return get
