# SPDX-License-Identifier: Apache-2.0
"""Falco's C plugin ABI through ctypes: a ``.so`` built for Falco's plugin API, unchanged.

The library exports ``plugin_*`` symbols (``plugin_get_required_api_version``, ``plugin_init``,
``plugin_get_fields``, ``plugin_next_batch``, ...). This module checks the ABI at load (required
API version: same major, minor and patch not above ours; every symbol of a capability present;
well-formed fields JSON) and raises :class:`~pyfalco.plugins.api.PluginError` instead of calling
into a library it cannot drive. Memory rules follow the ABI: what the plugin returns stays owned
by the plugin and is valid until its next call of the same function, so every value is copied
out before the next call; what we pass (config, params, events, field requests) is owned by us
and kept alive for the duration of the call.
"""

from __future__ import annotations

import ctypes as C
import ipaddress
import json
import logging
import os
import re
import struct
import threading
import time
from typing import Any, Sequence

from pyfalco.plugins.api import (FRAMEWORK_API_VERSION, FieldSpec, Plugin, PluginError, PluginEvent,
                                 PluginInstance)

__all__ = ["CPlugin", "api_version_compatible", "PLUGINEVENT_TYPE", "encode_plugin_event",
           "decode_plugin_event"]

log = logging.getLogger("pyfalco.plugins")

SS_PLUGIN_SUCCESS, SS_PLUGIN_FAILURE, SS_PLUGIN_TIMEOUT, SS_PLUGIN_EOF, SS_PLUGIN_NOT_SUPPORTED = 0, 1, -1, 2, 3
SS_PLUGIN_SCHEMA_JSON = 1
FTYPE = {"uint64": 8, "string": 9, "reltime": 20, "abstime": 21, "bool": 25, "ipaddr": 40, "ipnet": 41}

#: libscap's event code of plugin events (PPME_PLUGINEVENT_E): params plugin_id (u32), data (bytes),
#: both with 4-byte lengths
PLUGINEVENT_TYPE = 322
_HDR = struct.Struct("<QQIHI")         # ts, tid, len, type, nparams (packed: 26 bytes)
_MAX_EVENT = 64 << 20                  # a plugin event larger than this is garbage, not data
_NO_TID = 0xFFFFFFFFFFFFFFFF
_PTR = C.sizeof(C.c_void_p)
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def encode_plugin_event(ts: int, plugin_id: int, data: bytes) -> bytes:
    """The libscap bytes of a plugin event (header, two 4-byte lengths, plugin id, payload)."""
    total = _HDR.size + 8 + 4 + len(data)
    return _HDR.pack(ts, _NO_TID, total, PLUGINEVENT_TYPE, 2) + struct.pack("<III", 4, len(data), plugin_id) + data


def decode_plugin_event(raw: bytes) -> tuple[int, int, bytes]:
    """(ts, plugin_id, payload) of libscap plugin-event bytes; ValueError when malformed."""
    if len(raw) < _HDR.size + 12:
        raise ValueError(f"plugin event of {len(raw)} bytes is shorter than its header")
    ts, _tid, total, etype, nparams = _HDR.unpack_from(raw)
    if etype != PLUGINEVENT_TYPE or nparams != 2:
        raise ValueError(f"event type {etype} with {nparams} params is not a plugin event (type 322, 2 params)")
    l_id, l_data = struct.unpack_from("<II", raw, _HDR.size)
    if l_id != 4 or total != _HDR.size + 8 + 4 + l_data or total > len(raw):
        raise ValueError(f"plugin event lengths do not add up (len {total}, params {l_id}+{l_data})")
    (plugin_id,) = struct.unpack_from("<I", raw, _HDR.size + 8)
    start = _HDR.size + 12
    return ts, plugin_id, bytes(raw[start:start + l_data])


def _semver(text: str) -> tuple[int, int, int] | None:
    m = _SEMVER.match(text.strip()) if isinstance(text, str) else None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def api_version_compatible(required: str, framework: str = FRAMEWORK_API_VERSION) -> bool:
    """Falco's rule: same major; the required minor not above ours; at an equal minor, the
    required patch not above ours."""
    r, f = _semver(required), _semver(framework)
    if r is None or f is None or r[0] != f[0]:
        return False
    return r[1] < f[1] or (r[1] == f[1] and r[2] <= f[2])


# ---- ABI structs (plugin_types.h / plugin_api.h) ---------------------------------------------------

class _Event(C.Structure):          # ss_plugin_event (header only, packed)
    _pack_ = 1
    _fields_ = [("ts", C.c_uint64), ("tid", C.c_uint64), ("len", C.c_uint32), ("type", C.c_uint16),
                ("nparams", C.c_uint32)]


class _EventInput(C.Structure):     # ss_plugin_event_input
    _fields_ = [("evt", C.c_void_p), ("evtnum", C.c_uint64), ("evtsrc", C.c_char_p)]


class _ByteBuffer(C.Structure):     # ss_plugin_byte_buffer
    _fields_ = [("len", C.c_uint32), ("ptr", C.c_void_p)]


class _ExtractField(C.Structure):   # ss_plugin_extract_field
    _fields_ = [("res", C.c_void_p), ("res_len", C.c_uint64), ("field_id", C.c_uint32),
                ("field", C.c_char_p), ("arg_key", C.c_char_p), ("arg_index", C.c_uint64),
                ("arg_present", C.c_uint32), ("ftype", C.c_uint32), ("flist", C.c_uint32)]


_LOG_FN = C.CFUNCTYPE(None, C.c_char_p, C.c_char_p, C.c_int)
_OWNER_ERR_FN = C.CFUNCTYPE(C.c_void_p, C.c_void_p)


class _InitInput(C.Structure):      # ss_plugin_init_input (API 3.x)
    _fields_ = [("config", C.c_char_p), ("owner", C.c_void_p), ("get_owner_last_error", _OWNER_ERR_FN),
                ("tables", C.c_void_p), ("log_fn", _LOG_FN)]


class _TableReader(C.Structure):    # ss_plugin_table_reader_vtable (deprecated, 4 pointers; unused)
    _fields_ = [("f0", C.c_void_p), ("f1", C.c_void_p), ("f2", C.c_void_p), ("f3", C.c_void_p)]


class _ExtractInput(C.Structure):   # ss_plugin_field_extract_input
    _fields_ = [("owner", C.c_void_p), ("get_owner_last_error", _OWNER_ERR_FN), ("num_fields", C.c_uint32),
                ("fields", C.POINTER(_ExtractField)), ("table_reader", _TableReader),
                ("table_reader_ext", C.c_void_p)]


_SEVERITY = {1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING,
             5: logging.INFO, 6: logging.INFO, 7: logging.DEBUG, 8: logging.DEBUG}


def _log_fn(plugin: str) -> Any:
    """The plugin's log callback (Falco: a NULL component means the plugin's name)."""
    @_LOG_FN
    def plugin_log(component: bytes | None, msg: bytes | None, sev: int) -> None:
        who = component.decode("utf-8", "replace") if component else plugin
        log.log(_SEVERITY.get(sev, logging.INFO), "[%s] %s", who, (msg or b"").decode("utf-8", "replace"))
    return plugin_log


@_OWNER_ERR_FN
def _owner_last_error(_owner: int | None) -> None:
    return None


_OWNER = C.c_uint64(0)              # a non-NULL owner pointer the plugin may hand back to us

_REQUIRED = ("get_required_api_version", "init", "destroy", "get_last_error", "get_name", "get_description",
             "get_contact", "get_version")
_SOURCING = ("open", "close", "next_batch")
_EXTRACTION = ("get_fields", "extract_fields")


def _text(ptr: Any) -> str | None:
    return None if ptr is None else ptr.decode("utf-8", "replace")


class CPlugin(Plugin):
    """A Falco plugin ``.so``, driven through its C ABI, with the Python plugin API's shape."""

    def __init__(self, path: str, label: str = ""):
        self.path = path
        label = label or os.path.basename(path)   # errors before the plugin's name is known
        try:
            lib = C.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as exc:
            raise PluginError(label, f"cannot load library {path}: {exc}") from None
        self._lib = lib
        self._fn: dict[str, Any] = {}
        for sym in _REQUIRED:
            if self._sym(sym) is None:
                raise PluginError(label, f"{path} is not a Falco plugin: symbol plugin_{sym} is missing")
        self._proto("get_required_api_version", C.c_char_p)
        for sym in ("get_name", "get_description", "get_contact", "get_version"):
            self._proto(sym, C.c_char_p)
        required = _text(self._fn["get_required_api_version"]())
        if required is None or _semver(required) is None:
            raise PluginError(label, f"invalid required API version {required!r} (expected x.y.z)")
        if not api_version_compatible(required):
            raise PluginError(label, f"plugin required API version '{required}' is not compatible with the "
                                     f"framework's API version '{FRAMEWORK_API_VERSION}'")
        self.required_api_version = required  # type: ignore[misc]
        for attr in ("name", "description", "contact", "version"):
            value = _text(self._fn[f"get_{attr}"]())
            if value is None:
                raise PluginError(label, f"plugin_get_{attr} returned NULL")
            setattr(self, attr, value)
        if not self.name:
            raise PluginError(label, "plugin_get_name returned an empty name")
        if _semver(self.version) is None:
            raise PluginError(self.name, f"invalid plugin version '{self.version}' (expected x.y.z)")
        self._proto("init", C.c_void_p, C.POINTER(_InitInput), C.POINTER(C.c_int32))
        self._proto("destroy", None, C.c_void_p)
        self._proto("get_last_error", C.c_char_p, C.c_void_p)
        self._caps(label)
        self._state: int | None = None
        self._lock = threading.Lock()   # extract_fields' returned memory is per plugin state

    # ---- symbols ----------------------------------------------------------------------------
    def _sym(self, name: str) -> Any:
        try:
            return getattr(self._lib, "plugin_" + name)
        except AttributeError:
            return None

    def _proto(self, name: str, restype: Any, *argtypes: Any) -> Any:
        fn = self._sym(name)
        if fn is None:
            return None
        fn.restype = restype
        fn.argtypes = list(argtypes)
        self._fn[name] = fn
        return fn

    def _caps(self, label: str) -> None:
        have_src = [s for s in _SOURCING if self._sym(s) is not None]
        have_ext = [s for s in _EXTRACTION if self._sym(s) is not None]
        if have_src and len(have_src) != len(_SOURCING):
            missing = ", ".join("plugin_" + s for s in _SOURCING if s not in have_src)
            raise PluginError(self.name, f"event sourcing capability is incomplete: missing {missing}")
        if have_ext and len(have_ext) != len(_EXTRACTION):
            missing = ", ".join("plugin_" + s for s in _EXTRACTION if s not in have_ext)
            raise PluginError(self.name, f"field extraction capability is incomplete: missing {missing}")
        if not have_src and not have_ext:
            raise PluginError(self.name, "the plugin implements neither event sourcing nor field extraction")
        self.id = 0  # type: ignore[misc]
        self.event_source = ""  # type: ignore[misc]
        self._sourcing = bool(have_src)
        if have_src:
            self._proto("open", C.c_void_p, C.c_void_p, C.c_char_p, C.POINTER(C.c_int32))
            self._proto("close", None, C.c_void_p, C.c_void_p)
            self._proto("next_batch", C.c_int32, C.c_void_p, C.c_void_p, C.POINTER(C.c_uint32),
                        C.POINTER(C.POINTER(C.POINTER(_Event))))
            if self._proto("get_id", C.c_uint32) is not None:
                self.id = int(self._fn["get_id"]())  # type: ignore[misc]
            if self._proto("get_event_source", C.c_char_p) is not None:
                self.event_source = _text(self._fn["get_event_source"]()) or ""  # type: ignore[misc]
            if bool(self.id) != bool(self.event_source):
                raise PluginError(self.name, f"plugin id {self.id} and event source {self.event_source!r}: "
                                             "a sourcing plugin declares both or neither")
            self._proto("list_open_params", C.c_char_p, C.c_void_p, C.POINTER(C.c_int32))
            self._proto("event_to_string", C.c_char_p, C.c_void_p, C.POINTER(_EventInput))
        self._fields: list[FieldSpec] = []
        self.extract_event_sources = ()  # type: ignore[misc]
        if have_ext:
            self._proto("get_fields", C.c_char_p)
            self._proto("extract_fields", C.c_int32, C.c_void_p, C.POINTER(_EventInput), C.POINTER(_ExtractInput))
            self._fields = self._parse_fields(_text(self._fn["get_fields"]()))
            if self._proto("get_extract_event_sources", C.c_char_p) is not None:
                self.extract_event_sources = tuple(  # type: ignore[misc]
                    self._json_strings(_text(self._fn["get_extract_event_sources"]()), "plugin_get_extract_event_sources"))
        self._index = {f.name: i for i, f in enumerate(self._fields)}
        self._fieldnames = [f.name.encode() for f in self._fields]
        self._requests: dict = {}
        self._last_syscall: tuple | None = None
        if have_ext:   # one request, reused for every extraction (under the plugin's lock)
            self._req = _ExtractField()
            self._inp = _ExtractInput()
            self._inp.owner = C.addressof(_OWNER)
            self._inp.get_owner_last_error = _owner_last_error
            self._inp.num_fields = 1
            self._inp.fields = C.pointer(self._req)
            self._inp_ref = C.byref(self._inp)
            self._extract_fn = self._fn["extract_fields"]
        if self._proto("get_init_schema", C.c_char_p, C.POINTER(C.c_int32)) is not None:
            kind = C.c_int32(0)
            schema = _text(self._fn["get_init_schema"](C.byref(kind)))
            self.init_schema = (schema or "") if kind.value == SS_PLUGIN_SCHEMA_JSON else ""  # type: ignore[misc]

    def _parse_fields(self, text: str | None) -> list[FieldSpec]:
        if text is None:
            raise PluginError(self.name, "plugin_get_fields returned NULL")
        try:
            arr = json.loads(text)
        except ValueError as exc:
            raise PluginError(self.name, f"plugin_get_fields returned invalid JSON: {exc}") from None
        if not isinstance(arr, list):
            raise PluginError(self.name, "plugin_get_fields must return a JSON array")
        specs = []
        for obj in arr:
            try:
                specs.append(FieldSpec.from_json(obj))
            except ValueError as exc:
                raise PluginError(self.name, f"plugin_get_fields: {exc}") from None
        return specs

    def _json_strings(self, text: str | None, what: str) -> list[str]:
        if not text:
            return []
        try:
            arr = json.loads(text)
        except ValueError as exc:
            raise PluginError(self.name, f"{what} returned invalid JSON: {exc}") from None
        if not isinstance(arr, list) or not all(isinstance(s, str) for s in arr):
            raise PluginError(self.name, f"{what} must return a JSON array of strings")
        return arr

    def has_sourcing(self) -> bool:  # type: ignore[override]
        return self._sourcing

    def _last_error(self) -> str:
        if self._state is None:
            return "unknown error"
        return _text(self._fn["get_last_error"](self._state)) or "unknown error"

    # ---- the Plugin API ---------------------------------------------------------------------
    def init(self, config: str) -> None:
        self._cfg = config.encode()
        self._log = _log_fn(self.name)   # kept alive as long as the plugin may call it
        inp = _InitInput(self._cfg, C.cast(C.byref(_OWNER), C.c_void_p), _owner_last_error, None, self._log)
        rc = C.c_int32(SS_PLUGIN_FAILURE)
        state = self._fn["init"](C.byref(inp), C.byref(rc))
        self._state = state
        if rc.value != SS_PLUGIN_SUCCESS:
            err = self._last_error() if state else "init failed"
            if state:
                self._fn["destroy"](state)
            self._state = None
            raise PluginError(self.name, f"init failed: {err}")

    def destroy(self) -> None:
        if self._state is not None:
            self._fn["destroy"](self._state)
            self._state = None

    def fields(self) -> list[FieldSpec]:
        return list(self._fields)

    def list_open_params(self) -> list[dict[str, str]]:
        fn = self._fn.get("list_open_params")
        if fn is None or self._state is None:
            return []
        rc = C.c_int32(0)
        text = _text(fn(self._state, C.byref(rc)))
        if rc.value != SS_PLUGIN_SUCCESS or not text:
            return []
        try:
            arr = json.loads(text)
        except ValueError:
            return []
        return [p for p in arr if isinstance(p, dict)] if isinstance(arr, list) else []

    def open(self, params: str) -> PluginInstance:
        if not self._sourcing:
            raise PluginError(self.name, "this plugin has no event sourcing capability")
        if self._state is None:
            raise PluginError(self.name, "open before init")
        raw = params.encode()
        rc = C.c_int32(SS_PLUGIN_FAILURE)
        handle = self._fn["open"](self._state, raw, C.byref(rc))
        if rc.value != SS_PLUGIN_SUCCESS:
            err = self._last_error()
            if handle:
                self._fn["close"](self._state, handle)
            raise PluginError(self.name, f"open failed: {err}")
        return _CInstance(self, handle)

    def _event_input(self, evt: Any) -> _EventInput:
        """The event as the ABI passes it, built once per event (kept in the event's cache)."""
        if not isinstance(evt, PluginEvent):
            return self._syscall_input(evt)
        cached = evt.cache.get(self)
        if cached is None:
            raw = encode_plugin_event(evt.ts, evt.plugin_id, evt.data)
            buf = (C.c_char * len(raw)).from_buffer_copy(raw)
            src = evt.source.encode()
            cached = (_EventInput(C.addressof(buf), evt.num, src), buf, src)
            evt.cache[self] = cached
        return cached[0]

    def _syscall_input(self, ie: Any) -> _EventInput:
        """A syscall event (the inspector's event) as the libscap bytes it was read from; the
        last one is kept (the fields of one event are extracted one after the other)."""
        e = getattr(ie, "evt", ie)
        last = self._last_syscall
        if last is not None and last[0] is e:
            return last[1]
        raw = bytes(e.buf[e.off:e.off + e.len])
        buf = (C.c_char * len(raw)).from_buffer_copy(raw)
        inp = _EventInput(C.addressof(buf), e.num, b"syscall")
        self._last_syscall = (e, inp, buf)
        return inp

    def event_to_string(self, evt: PluginEvent) -> str:
        fn = self._fn.get("event_to_string")
        if fn is None or self._state is None:
            return Plugin.event_to_string(self, evt)
        with self._lock:
            return _text(fn(self._state, C.byref(self._event_input(evt)))) or ""

    def _request(self, field: str, arg: str | None) -> tuple[FieldSpec, tuple]:
        """(spec, request values) of a field use, computed once per (field, arg)."""
        key = (field, arg)
        hit = self._requests.get(key)
        if hit is None:
            idx = self._index.get(field)
            if idx is None:
                raise PluginError(self.name, f"unknown field {field}")
            spec = self._fields[idx]
            arg_key, arg_index = None, 0
            if arg is not None:
                if spec.arg_index and arg.isdigit():
                    arg_index = int(arg)
                else:
                    arg_key = arg.encode()
            hit = self._requests[key] = (spec, (idx, self._fieldnames[idx], arg_key, arg_index, arg is not None,
                                                FTYPE[spec.type], spec.is_list))
        return hit

    def extract(self, evt: PluginEvent, field: str, arg: str | None) -> Any:
        spec, (idx, fname, arg_key, arg_index, present, ftype, flist) = self._request(field, arg)
        ev = self._event_input(evt)
        with self._lock:   # one request struct per plugin, and the results are the plugin's until its next call
            req = self._req
            req.res = None
            req.res_len = 0
            req.field_id = idx
            req.field = fname
            req.arg_key = arg_key
            req.arg_index = arg_index
            req.arg_present = present
            req.ftype = ftype
            req.flist = flist
            rc = self._extract_fn(self._state, C.byref(ev), self._inp_ref)
            if rc != SS_PLUGIN_SUCCESS:
                raise PluginError(self.name, f"extract_fields({field}) failed: {self._last_error()}")
            return self._values(spec, req)

    def _values(self, spec: FieldSpec, req: _ExtractField) -> Any:
        n = req.res_len
        if n == 0:
            return None
        if not spec.is_list and n != 1:
            raise PluginError(self.name, f"extract_fields({spec.name}) returned {n} values for a non-list field")
        addr = req.res
        if n > 1_000_000 or not addr:
            raise PluginError(self.name, f"extract_fields({spec.name}) returned {n} values at {addr!r}")
        t = spec.type
        if t == "string":
            vals: list[Any] = []
            for i in range(n):
                text = C.c_char_p.from_address(addr + i * _PTR).value
                if text is None:
                    raise PluginError(self.name, f"extract_fields({spec.name}) returned a NULL string")
                vals.append(text.decode("utf-8", "replace"))
        elif t in ("uint64", "reltime", "abstime"):
            vals = list((C.c_uint64 * n).from_address(addr))
        elif t == "bool":
            vals = [bool(v) for v in (C.c_uint32 * n).from_address(addr)]
        else:  # ipaddr / ipnet: byte buffers of 4 or 16 bytes
            vals = []
            for b in (_ByteBuffer * n).from_address(addr):
                if b.len not in (4, 16) or not b.ptr:
                    raise PluginError(self.name, f"extract_fields({spec.name}) returned a {b.len}-byte address")
                vals.append(ipaddress.ip_address(C.string_at(b.ptr, b.len)))
        return vals if spec.is_list else vals[0]


class _CInstance(PluginInstance):
    """An open capture of a C plugin."""

    def __init__(self, plugin: CPlugin, handle: int | None):
        self.plugin = plugin
        self.handle = handle
        self._eof = False
        self._closed = False

    def next_batch(self, timeout: float) -> Sequence[Any] | None:
        p = self.plugin
        if self._closed:
            raise PluginError(p.name, "next_batch on a closed capture")
        if self._eof:
            return None
        nevts = C.c_uint32(0)
        evts = C.POINTER(C.POINTER(_Event))()
        rc = p._fn["next_batch"](p._state, self.handle, C.byref(nevts), C.byref(evts))
        if rc == SS_PLUGIN_FAILURE:
            raise PluginError(p.name, f"next_batch failed: {p._last_error()}")
        if rc not in (SS_PLUGIN_SUCCESS, SS_PLUGIN_TIMEOUT, SS_PLUGIN_EOF):
            raise PluginError(p.name, f"next_batch returned an unknown code {rc}")
        out: list[tuple[int, bytes]] = []
        n = nevts.value if rc != SS_PLUGIN_TIMEOUT or evts else 0
        if n and not evts:
            raise PluginError(p.name, f"next_batch reported {n} events and a NULL array")
        now = time.time_ns()
        for i in range(n):
            ptr = evts[i]
            if not ptr:
                raise PluginError(p.name, f"next_batch: event {i} of {n} is NULL")
            hdr = ptr.contents
            if hdr.type != PLUGINEVENT_TYPE or hdr.nparams != 2:
                raise PluginError(p.name, f"next_batch: event type {hdr.type} with {hdr.nparams} params "
                                          "(a plugin source produces plugin events: type 322, 2 params)")
            if not _HDR.size + 12 <= hdr.len <= _MAX_EVENT:
                raise PluginError(p.name, f"next_batch: event length {hdr.len} out of range")
            raw = C.string_at(C.cast(ptr, C.c_void_p), hdr.len)   # copied: the plugin owns the memory
            try:
                ts, pid, data = decode_plugin_event(raw)
            except ValueError as exc:
                raise PluginError(p.name, f"next_batch: malformed event: {exc}") from None
            if pid not in (0, p.id):
                raise PluginError(p.name, f"next_batch: event with plugin id {pid}, not its own id {p.id}")
            out.append((now if ts == _NO_TID else ts, data))
        if rc == SS_PLUGIN_EOF:
            self._eof = True
            return out if out else None
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            p = self.plugin
            p._fn["close"](p._state, self.handle)
            self.handle = None
