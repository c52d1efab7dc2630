# SPDX-License-Identifier: Apache-2.0
"""K8sAuditPlugin: Falco's ``k8saudit`` plugin (id 1, source ``k8s_audit``), built in.

``init_config`` (JSON text or a mapping in the configuration), as k8saudit reads it:

* ``sslCertificate``: PEM file holding the certificate and its key, for ``https://`` open params
  (default ``/etc/falco/falco.pem``);
* ``maxEventSize``: largest single audit event in bytes (default 262144);
* ``webhookMaxBatchSize``: largest webhook request body in bytes (default 12582912);
* ``useAsync``: accepted and ignored (a Go SDK optimisation);
* ``customFieldsHeaders``: ``[{header, pattern?, customFields: [...]}]``: values of an HTTP header
  added to every event as top-level keys (``%json.value[/cluster_name]``).

``open_params``: ``http://[host]:port/endpoint`` or ``https://...`` serves the webhook (an empty
host listens on every address, as k8saudit); anything without a scheme is a file or a folder of
files (read in modification-time order) of JSON lines, each an ``Event``, an ``EventList`` or an
array of them; a file holding one pretty-printed ``EventList`` (or ``Event``) works too. A file
source ends at the end of its data.
"""

from __future__ import annotations

import json
import logging
import os
import queue
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from pyfalco.plugins.api import FieldSpec, Plugin, PluginError, PluginEvent, PluginInstance

from .fields import KA_FIELDS, compile_field
from .payload import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_EVENT_SIZE, PayloadError, parse_payload
from .webhook import AuditWebhook, parse_header_fields

__all__ = ["K8sAuditPlugin", "WebhookInstance", "FileInstance", "event_doc"]

log = logging.getLogger("pyfalco.plugins.k8saudit")

_BAD = object()
_UNSET = object()
#: events handed to the framework per next_batch at most
BATCH_EVENTS = 512
#: the key of the parsed JSON document in PluginEvent.cache (shared with the json plugin)
DOC_KEY = "json.doc"


def event_doc(evt: Any) -> Any:
    """The parsed JSON document of a plugin event (cached on the event); None when the payload
    is not JSON (every field is then <NA>, as the plugins' extraction errors are)."""
    cache = getattr(evt, "cache", None)
    if cache is not None:
        doc = cache.get(DOC_KEY, None)
        if doc is not None:
            return None if doc is _BAD else doc
    data = evt.data if hasattr(evt, "data") else evt
    doc = getattr(data, "doc", None)     # an AuditPayload from our own source: parsed already
    if doc is None:
        doc = _BAD
        if data[:1] in (b"{", b"[") or (isinstance(data, str) and data[:1] in ("{", "[")):
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError):
                doc = _BAD
    if cache is not None:
        cache[DOC_KEY] = doc
    return None if doc is _BAD else doc


def _config(text: str, name: str) -> dict:
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    if isinstance(text, dict):
        return text
    try:
        cfg = json.loads(text)
    except ValueError as exc:
        raise PluginError(name, f"init_config is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise PluginError(name, "init_config must be an object")
    return cfg


def _positive_int(cfg: dict, key: str, default: int, name: str) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise PluginError(name, f"init_config {key} must be a positive integer, not {v!r}")
    return v


class K8sAuditPlugin(Plugin):
    """The k8saudit plugin: sources ``k8s_audit`` events and extracts ``ka.*`` fields."""

    name = "k8saudit"
    description = "Read Kubernetes Audit Events and monitor Kubernetes Clusters"
    contact = "github.com/falcosecurity/plugins (behaviour); built into pyfalco"
    # the k8saudit release whose fields and behaviour this implements (rules files require it)
    version = "0.18.0"
    required_api_version = "3.0.0"
    id = 1
    event_source = "k8s_audit"
    init_schema = json.dumps({
        "type": "object", "additionalProperties": True,
        "properties": {
            "sslCertificate": {"type": "string"}, "maxEventSize": {"type": "integer"},
            "webhookMaxBatchSize": {"type": "integer"}, "useAsync": {"type": "boolean"},
            "customFieldsHeaders": {"type": "array"}}})

    def __init__(self) -> None:
        self.ssl_certificate = "/etc/falco/falco.pem"
        self.max_event_size = DEFAULT_MAX_EVENT_SIZE
        self.max_batch_size = DEFAULT_MAX_BATCH_SIZE
        self.header_fields: list = []
        self._getters: dict[tuple[str, str | None], Callable[[Any], Any]] = {}

    # ---- lifecycle ------------------------------------------------------------------------------
    def init(self, config: str) -> None:
        cfg = _config(config, self.name)
        cert = cfg.get("sslCertificate", self.ssl_certificate)
        if not isinstance(cert, str):
            raise PluginError(self.name, "init_config sslCertificate must be a path")
        self.ssl_certificate = cert
        self.max_event_size = _positive_int(cfg, "maxEventSize", DEFAULT_MAX_EVENT_SIZE, self.name)
        self.max_batch_size = _positive_int(cfg, "webhookMaxBatchSize", DEFAULT_MAX_BATCH_SIZE, self.name)
        self.header_fields = parse_header_fields(cfg.get("customFieldsHeaders"),
                                                 lambda msg: PluginError(self.name, f"init_config {msg}"))

    def fields(self) -> list[FieldSpec]:
        return [FieldSpec(f.name, "string", is_list=f.is_list, arg_required=f.arg == "key",
                          arg_index=f.arg == "index", arg_key=f.arg == "key", desc=f.desc)
                for f in KA_FIELDS.values()]

    def list_open_params(self) -> list[dict[str, str]]:
        return [{"value": "http://:9765/k8s-audit", "desc": "webhook on every address, port 9765"},
                {"value": "/var/log/kubernetes/audit.log", "desc": "an audit log file (JSON lines)"}]

    def open(self, params: str) -> PluginInstance:
        params = (params or "").strip()
        url = urlsplit(params)
        if url.scheme in ("http", "https"):
            try:
                port = url.port
                if port is None:    # no port given; ':0' asks for a free port, it is not "none"
                    port = 443 if url.scheme == "https" else 80
            except ValueError as exc:
                raise PluginError(self.name, f"open_params {params!r}: {exc}") from None
            hook = AuditWebhook(url.hostname or "", port, url.path or "/",
                                tls_certificate=self.ssl_certificate if url.scheme == "https" else None,
                                max_event_size=self.max_event_size, max_batch_size=self.max_batch_size,
                                header_fields=self.header_fields)
            try:
                hook.start()
            except (OSError, ValueError) as exc:
                raise PluginError(self.name, f"cannot serve {params}: {getattr(exc, 'strerror', None) or exc}") \
                    from None
            return WebhookInstance(hook)
        if url.scheme and len(url.scheme) > 1:   # "c:" style paths are not schemes here
            raise PluginError(self.name, f'scheme "{url.scheme}" is not supported')
        if not params:
            raise PluginError(self.name, "open_params is empty: give http://:port/path or a file path")
        return FileInstance(params, self.max_event_size, self.name)

    # ---- extraction -------------------------------------------------------------------------------
    def compile_extractor(self, field: str, arg: str | None) -> Callable[[Any], Any]:
        """``evt -> value`` for one field use, compiled once (ValueError for a bad argument,
        KeyError for a field this plugin does not have)."""
        key = (field, arg)
        getter = self._getters.get(key)
        if getter is None:
            inner = compile_field(field, arg)

            def getter(evt: Any, _inner=inner, _doc=event_doc) -> Any:
                return _inner(_doc(evt))
            self._getters[key] = getter
        return getter

    def extract(self, evt: PluginEvent, field: str, arg: str | None) -> Any:
        return cached_extract(self, evt, field, arg)

    def event_to_string(self, evt: PluginEvent) -> str:
        return bytes(evt.data).decode("utf-8", "replace")


class WebhookInstance(PluginInstance):
    """A running webhook: next_batch hands out what the POSTs brought."""

    def __init__(self, hook: AuditWebhook):
        self.hook = hook

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self.hook.port

    def stats(self) -> dict[str, int]:
        return self.hook.stats()

    def next_batch(self, timeout: float) -> list:
        q = self.hook.events
        try:
            out = list(q.get(timeout=max(0.0, timeout)))
        except queue.Empty:
            return []
        while len(out) < BATCH_EVENTS:
            try:
                out.extend(q.get_nowait())
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.hook.stop()


class FileInstance(PluginInstance):
    """Audit events read from a file or a folder of files; ends (None) at the end of the data."""

    def __init__(self, path: str, max_event_size: int, plugin_name: str = "k8saudit"):
        self.path = path
        self.max_event_size = max_event_size
        self.plugin_name = plugin_name
        self.bad_lines = 0
        self.skipped_events = 0
        try:
            if os.path.isdir(path):
                names = [os.path.join(path, n) for n in os.listdir(path)]
                files = sorted((p for p in names if os.path.isfile(p)), key=lambda p: os.stat(p).st_mtime)
            else:
                with open(path, "rb"):
                    pass
                files = [path]
        except OSError as exc:
            raise PluginError(plugin_name, f"cannot read {path}: {exc.strerror or exc}") from None
        self._iter: Iterator[tuple[int, bytes]] | None = self._events(files)

    def _events(self, files: list[str]) -> Iterator[tuple[int, bytes]]:
        for f in files:
            try:
                fh = open(f, "rb")
            except OSError as exc:
                log.warning("k8saudit: cannot read %s: %s", f, exc.strerror or exc)
                continue
            with fh:
                first = True
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        events, problems = parse_payload(line.strip(), max_event_size=self.max_event_size)
                    except PayloadError as exc:
                        if first:
                            # not JSON lines: maybe one (pretty-printed) EventList or Event
                            fh.seek(0)
                            yield from self._whole(f, fh.read())
                            break
                        self.bad_lines += 1
                        log.warning("k8saudit: %s:%d: %s", f, lineno, exc)
                        continue
                    first = False
                    self._problems(f, lineno, problems)
                    yield from events

    def _whole(self, f: str, data: bytes) -> Iterator[tuple[int, bytes]]:
        try:
            events, problems = parse_payload(data, max_event_size=self.max_event_size)
        except PayloadError as exc:
            self.bad_lines += 1
            log.warning("k8saudit: %s: %s", f, exc)
            return
        self._problems(f, 1, problems)
        yield from events

    def _problems(self, f: str, lineno: int, problems: list[str]) -> None:
        for p in problems:
            self.skipped_events += 1
            log.warning("k8saudit: %s:%d: skipped an event: %s", f, lineno, p)

    def next_batch(self, timeout: float) -> list | None:
        if self._iter is None:
            return None
        out = []
        for item in self._iter:
            out.append(item)
            if len(out) >= BATCH_EVENTS:
                return out
        self._iter = None
        return out if out else None

    def close(self) -> None:
        self._iter = None


def cached_extract(plugin: Any, evt: PluginEvent, field: str, arg: str | None) -> Any:
    """``plugin.extract`` of the built-in JSON plugins: the compiled getter of (field, arg), its
    value kept on the event (rules ask for the same few fields many times per event). A plugin
    without the field or with a bad argument raises PluginError naming it."""
    key = (field, arg)
    cache = getattr(evt, "cache", None)
    if cache is not None:
        value = cache.get(key, _UNSET)
        if value is not _UNSET:
            return value
    try:
        getter = plugin._getters.get(key) or plugin.compile_extractor(field, arg)
    except (KeyError, ValueError) as exc:      # FieldArgError is a ValueError
        raise PluginError(plugin.name, str(exc)) from None
    value = getter(evt)
    if cache is not None:
        cache[key] = value
    return value
