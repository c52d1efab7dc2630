# SPDX-License-Identifier: Apache-2.0
"""The agent's configuration: falco.yaml's keys and defaults, files merged, ``-o`` overrides.

``load_config(path, overrides)`` reads the main file, merges the files and directories named by
``config_files`` (strategies append, override, add-only), applies ``-o key=value`` overrides
(dot paths, ``[]`` to append to a list, ``[N]`` to address an element, ``\\.`` for a literal dot)
and validates the result against :data:`SCHEMA`: a value of the wrong type is a
:class:`~pyfalco.errors.ConfigError` naming the key; an unknown key is a warning naming it.
``${VAR}`` in string values is replaced from the environment (``$${VAR}`` is a literal).

Which file: ``-c FILE``, else ``/etc/pyfalco/pyfalco.yaml``, else the default configuration
packaged with pyfalco (:func:`packaged_path`). Relative ``rules_files`` and ``config_files``
entries and certificate paths (:data:`CONFIG_RELATIVE_KEYS`) resolve against the folder of the
file that names them (the packaged configuration's ``pyfalco_rules.yaml`` is the packaged default
ruleset next to it); ``-r``, ``-o`` and ``-e`` paths and output files against the working
directory.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyfalco.errors import ConfigError

#: libyaml's parser when PyYAML has it (as the rule loader): the pure-Python reader and scanner
#: are most of a configuration's load time; the constructor (what the values become) is the same
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` with libyaml when available."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (SafeLoader or CSafeLoader)
    except UnicodeEncodeError:
        # a lone surrogate (an -o argument that was not UTF-8) cannot reach libyaml: PyYAML's
        # reader refuses it as a YAMLError
        return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506


#: what PyYAML's constructor raises (besides YAMLError) when a scalar's tag, explicit (``!!int x``, ``!!bool x``,
#: ``!!int`` with no value) or implied (``2001-02-30`` is a date), cannot make that type's value
_CONSTRUCT_ERRORS = (ValueError, IndexError, KeyError, AttributeError, TypeError, OverflowError)


def _bad_scalar(text: str, exc: Exception) -> str:
    """The first scalar of ``text`` whose value its tag cannot make, as one line with its location
    (PyYAML's constructor raises these without a mark: each scalar is tried alone)."""
    try:
        stack: list = [yaml.compose(text, Loader=_Loader)]
    except (yaml.YAMLError, UnicodeEncodeError):
        stack = []
    constructor = yaml.constructor.SafeConstructor()
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except yaml.YAMLError:
                continue    # refused in its own way (an unknown tag...): not the value error sought
            except _CONSTRUCT_ERRORS as err:
                m = node.start_mark
                # ValueError says why (a day out of range...); the others are PyYAML's internals
                why = f" ({err})" if isinstance(err, ValueError) else ""
                what = f"line {m.line + 1}, column {m.column + 1}: cannot read {node.value!r} as " \
                       f"{node.tag.rsplit(':', 1)[-1]}{why}"
                return " ".join(what.split())
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
    return " ".join(f"{type(exc).__name__}: {exc}".split())

__all__ = ["DEFAULTS", "SCHEMA", "Config", "load_config", "parse_override", "apply_override", "merge",
           "buffer_bytes_of_preset", "BUF_SIZE_PRESETS", "parse_duration", "DEFAULT_CONFIG_PATHS",
           "packaged_path", "default_config_path", "PACKAGED_CONFIG", "PACKAGED_RULES"]

#: where the agent looks for its configuration when -c is not given (then: the packaged default)
DEFAULT_CONFIG_PATHS = ("/etc/pyfalco/pyfalco.yaml",)

#: file names of the packaged defaults (pyfalco/data/ in a wheel)
PACKAGED_CONFIG = "pyfalco.yaml"
PACKAGED_RULES = "pyfalco_rules.yaml"
#: the default Kubernetes audit rules, next to them (not in the packaged rules_files: they go with the k8saudit plugin)
PACKAGED_K8S_RULES = "pyfalco_k8s_audit_rules.yaml"

_PKG = Path(__file__).resolve().parents[1]
#: the same files in a source checkout: deploy/pyfalco.yaml, rules/pyfalco_rules.yaml
_CHECKOUT = {PACKAGED_CONFIG: _PKG.parent / "deploy" / "pyfalco.yaml",
             PACKAGED_RULES: _PKG.parent / "rules" / "pyfalco_rules.yaml",
             PACKAGED_K8S_RULES: _PKG.parent / "rules" / "pyfalco_k8s_audit_rules.yaml"}


def packaged_path(name: str) -> str | None:
    """The packaged default configuration (``pyfalco.yaml``) or ruleset (``pyfalco_rules.yaml``):
    ``pyfalco/data/<name>`` in an installed wheel, else the source checkout's copy (an editable
    install or ``PYTHONPATH=checkout``); None when neither exists."""
    for cand in (_PKG / "data" / name, _CHECKOUT.get(name)):
        if cand is not None and cand.is_file():
            return str(cand)
    return None

#: buf_size_preset index -> per-buffer bytes (index 0 is reserved)
BUF_SIZE_PRESETS = (0, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20, 128 << 20,
                    256 << 20, 512 << 20)

DEFAULTS: dict[str, Any] = {
    "config_files": [],
    "watch_config_files": True,
    # a configuration without the key loads the packaged default ruleset
    "rules_files": [packaged_path(PACKAGED_RULES) or "/etc/pyfalco/pyfalco_rules.yaml"],
    "rules": [],
    "engine": {
        "kind": "modern_ebpf",
        "kmod": {"buf_size_preset": 4, "drop_failed_exit": False},
        "modern_ebpf": {"cpus_for_each_buffer": 2, "buf_size_preset": 4, "drop_failed_exit": False,
                        "disable_iterators": False},
        "replay": {"capture_file": ""},
        "nodriver": {},
    },
    "capture": {"enabled": False, "path_prefix": "/tmp/falco", "mode": "rules", "default_duration": 5000},
    "load_plugins": [],
    "plugins": [],
    "plugins_hostinfo": True,
    "time_format_iso_8601": False,
    "buffer_format_base64": False,
    "priority": "debug",
    "json_output": False,
    "json_include_output_property": True,
    "json_include_message_property": False,
    "json_include_output_fields_property": True,
    "json_include_tags_property": True,
    "buffered_outputs": False,
    "rule_matching": "first",
    "outputs_queue": {"capacity": 0},
    "append_output": [{"suggested_output": True}],
    "static_fields": {},
    "stdout_output": {"enabled": True},
    "syslog_output": {"enabled": True, "address": "/dev/log"},
    "file_output": {"enabled": False, "keep_alive": False, "filename": "./events.txt"},
    "http_output": {"enabled": False, "url": "", "user_agent": "falcosecurity/falco", "insecure": False,
                    "ca_cert": "", "ca_bundle": "", "ca_path": "/etc/ssl/certs", "mtls": False,
                    "client_cert": "", "client_key": "", "echo": False, "compress_uploads": False,
                    "keep_alive": False, "max_consecutive_timeouts": 5},
    "program_output": {"enabled": False, "keep_alive": False, "program": ""},
    "webserver": {"enabled": True, "threadiness": 0, "listen_port": 8765, "listen_address": "127.0.0.1",
                  "k8s_healthz_endpoint": "/healthz", "prometheus_metrics_enabled": False,
                  "ssl_enabled": False, "ssl_certificate": "/etc/pyfalco/pyfalco.pem"},
    "log_stderr": True,
    "log_syslog": True,
    "log_level": "info",
    "libs_logger": {"enabled": True, "severity": "info"},
    "output_timeout": 2000,
    "syscall_event_timeouts": {"max_consecutives": 1000},
    "syscall_event_drops": {"threshold": 0.1, "actions": ["log", "alert"], "rate": 0.03333, "max_burst": 1,
                            "simulate_drops": False},
    "metrics": {"enabled": False, "interval": "1h", "output_rule": True, "output_file": "",
                "rules_counters_enabled": True, "resource_utilization_enabled": True,
                "state_counters_enabled": True, "kernel_event_counters_enabled": True,
                "kernel_event_counters_per_cpu_enabled": False, "libbpf_stats_enabled": True,
                "plugins_metrics_enabled": True, "kernel_iter_event_counters_enabled": True,
                "jemalloc_stats_enabled": False, "convert_memory_to_mb": True, "include_empty_values": False},
    "base_syscalls": {"custom_set": [], "repair": False, "all": False},
    "falco_libs": {"thread_table_size": 262144, "thread_table_auto_purging_interval_s": 300,
                   "thread_table_auto_purging_thread_timeout_s": 300, "snaplen": 80},
}

# type specs: bool int num str strlist list map dur (duration) ("enum", ...) ("any",)
_B, _I, _N, _S, _SL, _L, _M, _D = "bool", "int", "num", "str", "strlist", "list", "map", "dur"
SCHEMA: dict[str, Any] = {
    "config_files": _L,
    "watch_config_files": _B,
    "rules_files": _SL,
    "rules_file": _SL,
    "rules": _L,
    "engine": {
        "kind": ("enum", "modern_ebpf", "kmod", "replay", "nodriver"),
        "kmod": {"buf_size_preset": _I, "drop_failed_exit": _B},
        "modern_ebpf": {"cpus_for_each_buffer": _I, "buf_size_preset": _I, "drop_failed_exit": _B,
                        "disable_iterators": _B, "kernel_filter": _B},
        "replay": {"capture_file": _S},
        "nodriver": {"full_proc_scan": _B},
    },
    "capture": {"enabled": _B, "path_prefix": _S, "mode": ("enum", "rules", "all_rules"),
                "default_duration": _I, "max_file_size_mb": _I},
    "load_plugins": _SL,
    "plugins": _L,
    "plugins_hostinfo": _B,
    "time_format_iso_8601": _B,
    "buffer_format_base64": _B,
    "priority": ("enum", "emergency", "alert", "critical", "error", "warning", "notice", "informational",
                 "info", "debug"),
    "json_output": _B,
    "json_include_output_property": _B,
    "json_include_message_property": _B,
    "json_include_output_fields_property": _B,
    "json_include_tags_property": _B,
    "buffered_outputs": _B,
    "rule_matching": ("enum", "first", "all"),
    "outputs_queue": {"capacity": _I},
    "append_output": _L,
    "static_fields": _M,
    "stdout_output": {"enabled": _B},
    "syslog_output": {"enabled": _B, "address": _S},
    "file_output": {"enabled": _B, "keep_alive": _B, "filename": _S},
    "http_output": {"enabled": _B, "url": _S, "user_agent": _S, "insecure": _B, "ca_cert": _S, "ca_bundle": _S,
                    "ca_path": _S, "mtls": _B, "client_cert": _S, "client_key": _S, "echo": _B,
                    "compress_uploads": _B, "keep_alive": _B, "max_consecutive_timeouts": _I},
    "program_output": {"enabled": _B, "keep_alive": _B, "program": _S},
    "webserver": {"enabled": _B, "threadiness": _I, "listen_port": _I, "listen_address": _S,
                  "k8s_healthz_endpoint": _S, "prometheus_metrics_enabled": _B, "ssl_enabled": _B,
                  "ssl_certificate": _S},
    "log_stderr": _B,
    "log_syslog": _B,
    "log_level": ("enum", "emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"),
    "libs_logger": {"enabled": _B, "severity": _S},
    "output_timeout": _I,
    "syscall_event_timeouts": {"max_consecutives": _I},
    "syscall_event_drops": {"threshold": _N, "actions": _SL, "rate": _N, "max_burst": _I, "simulate_drops": _B},
    "metrics": {"enabled": _B, "interval": _D, "output_rule": _B, "output_file": _S,
                "rules_counters_enabled": _B, "resource_utilization_enabled": _B, "state_counters_enabled": _B,
                "kernel_event_counters_enabled": _B, "kernel_event_counters_per_cpu_enabled": _B,
                "libbpf_stats_enabled": _B, "plugins_metrics_enabled": _B,
                "kernel_iter_event_counters_enabled": _B, "jemalloc_stats_enabled": _B,
                "convert_memory_to_mb": _B, "include_empty_values": _B},
    "base_syscalls": {"custom_set": _SL, "repair": _B, "all": _B},
    "falco_libs": {"thread_table_size": _I, "thread_table_auto_purging_interval_s": _I,
                   "thread_table_auto_purging_thread_timeout_s": _I, "snaplen": _I},
}

#: keys Falco had once and removed: a warning says where the setting went
REMOVED = {
    "grpc": "removed in Falco 0.44",
    "grpc_output": "removed in Falco 0.44",
    "syscall_buf_size_preset": "use engine.<kind>.buf_size_preset",
    "syscall_drop_failed_exit": "use engine.<kind>.drop_failed_exit",
    "modern_bpf": "use engine.modern_ebpf",
    "container_engines": "container metadata is built in",
}

#: settings accepted for Falco compatibility that pyfalco does not act on
NOT_SUPPORTED = ("capture", "plugins_hostinfo", "buffer_format_base64")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_ENV = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> float:
    """``1h``, ``15m``, ``30s``, ``500ms``, a plain number (seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def buffer_bytes_of_preset(preset: int) -> int:
    if not isinstance(preset, int) or not 1 <= preset < len(BUF_SIZE_PRESETS):
        raise ConfigError(f"engine: buf_size_preset must be 1..{len(BUF_SIZE_PRESETS) - 1}, not {preset!r}")
    return BUF_SIZE_PRESETS[preset]


# ---- merging --------------------------------------------------------------------------------

def merge(base: dict, extra: dict, strategy: str = "append") -> dict:
    """Merge ``extra`` into ``base`` (in place): ``append`` merges maps recursively, appends to
    lists and replaces scalars; ``override`` replaces top-level keys; ``add-only`` only adds keys
    that are not there yet."""
    if strategy == "override":
        base.update(copy.deepcopy(extra))
    elif strategy == "add-only":
        for k, v in extra.items():
            if k not in base:
                base[k] = copy.deepcopy(v)
    elif strategy == "append":
        for k, v in extra.items():
            cur = base.get(k)
            if isinstance(cur, dict) and isinstance(v, dict):
                merge(cur, v, "append")
            elif isinstance(cur, list) and isinstance(v, list):
                cur.extend(copy.deepcopy(v))
            else:
                base[k] = copy.deepcopy(v)
    else:
        raise ConfigError(f"config_files: unknown merge strategy {strategy!r} (append, override, add-only)")
    return base


def _deep_defaults(cfg: dict, defaults: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in cfg.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_defaults(v, out[k])
        else:
            out[k] = v
    return out


# ---- -o overrides ---------------------------------------------------------------------------

_SEG = re.compile(r"((?:[^.\[\]\\]|\\.)+)((?:\[\d*\])*)")


def parse_override(text: str) -> tuple[list, Any]:
    """``a.b[0].c=value`` -> (["a", "b", 0, "c"], parsed value). ``[]`` is ``None`` (append).
    The value is YAML (``true``, ``5``, ``[a, b]``, ``{"k": "v"}``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"-o {text!r}: expected key=value")
    path: list = []
    rest = key.strip()
    pos = 0
    while pos < len(rest):
        m = _SEG.match(rest, pos)
        if not m:
            raise ConfigError(f"-o {text!r}: cannot parse the key at {rest[pos:]!r}")
        path.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        for idx in re.findall(r"\[(\d*)\]", m.group(2)):
            path.append(int(idx) if idx else None)
        pos = m.end()
        if pos < len(rest):
            if rest[pos] != ".":
                raise ConfigError(f"-o {text!r}: unexpected {rest[pos]!r} in the key")
            pos += 1
    try:
        value = _safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, *_CONSTRUCT_ERRORS):
        value = raw
    return path, value


def apply_override(cfg: dict, path: list, value: Any) -> None:
    """Set ``value`` at ``path`` (from parse_override), creating maps and list slots."""
    node: Any = cfg
    for i, step in enumerate(path):
        last = i == len(path) - 1
        nxt = None if last else path[i + 1]
        empty = [] if isinstance(nxt, int) or (nxt is None and not last) else {}
        if isinstance(step, str):
            if not isinstance(node, dict):
                raise ConfigError(f"-o {_path_text(path)}: {_path_text(path[:i]) or 'top level'} is not a map")
            if last:
                node[step] = value
                return
            if not isinstance(node.get(step), (dict, list)):
                node[step] = empty
            node = node[step]
        else:
            if not isinstance(node, list):
                raise ConfigError(f"-o {_path_text(path)}: {_path_text(path[:i])} is not a list")
            if step is None:  # append
                if last:
                    node.append(value)
                    return
                node.append(empty)
                node = node[-1]
                continue
            if step > len(node):
                # padding with empty slots up to any index would let `-o x[999999999]=1` eat the memory
                raise ConfigError(f"-o {_path_text(path)}: index {step} is past the end of "
                                  f"{_path_text(path[:i])} ({len(node)} items)")
            if step == len(node):
                node.append(None)
            if last:
                node[step] = value
                return
            if not isinstance(node[step], (dict, list)):
                node[step] = empty
            node = node[step]


def _printable(text: str) -> str:
    """Control characters and line separators escaped (``\\n``, ``\\x85``, ``\\u2028``): a key
    given on the command line or in a file stays on the error's one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _path_text(path: list) -> str:
    out = ""
    for p in path:
        if isinstance(p, str):
            out += ("." if out else "") + _printable(p.replace(".", "\\."))
        else:
            out += f"[{'' if p is None else p}]"
    return out


# ---- validation -----------------------------------------------------------------------------

def _expand_env(value: Any) -> Any:
    if isinstance(value, str) and "${" in value:
        return _ENV.sub(lambda m: "${" + m.group(2) + "}" if m.group(1) else os.environ.get(m.group(2), ""), value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a map"}.get(type(v), type(v).__name__)


def _check(value: Any, spec: Any, key: str, warnings: list) -> Any:
    """Validate (and lightly coerce) one value; returns it. Raises ConfigError naming ``key``."""
    if isinstance(spec, dict):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a map, got {_type_name(value)}")
        for k in value:
            if k not in spec:
                warnings.append(f"unknown configuration key '{key}.{_printable(str(k))}' (ignored)")
        return {k: (_check(v, spec[k], f"{key}.{k}", warnings) if k in spec else v) for k, v in value.items()}
    if isinstance(spec, tuple) and spec[0] == "enum":
        if not isinstance(value, str) or value.lower() not in spec[1:]:
            raise ConfigError(f"{key}: expected one of {', '.join(spec[1:])}, got {value!r}")
        return value.lower()
    if spec == _B:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected a boolean, got {_type_name(value)} {value!r}")
    if spec == _I:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {_type_name(value)} {value!r}")
    if spec == _N:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {_type_name(value)} {value!r}")
    if spec == _S:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {_type_name(value)}")
    if spec == _SL:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value]
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    if spec == _L:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise ConfigError(f"{key}: expected a list, got {_type_name(value)}")
    if spec == _M:
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{key}: expected a map, got {_type_name(value)}")
    if spec == _D:
        try:
            parse_duration(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a duration such as 30s, 15m or 1h, got {value!r}") from None
        return value
    return value


def validate(raw: dict, warnings: list) -> dict:
    """Check types against SCHEMA (ConfigError on a mismatch) and fill in the defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the configuration must be a map, got {_type_name(raw)}")
    cfg: dict = {}
    for k, v in raw.items():
        if k in SCHEMA:
            cfg[k] = _check(v, SCHEMA[k], k, warnings)
        elif k in REMOVED:
            warnings.append(f"configuration key '{k}' is no longer supported: {REMOVED[k]}")
        else:
            warnings.append(f"unknown configuration key '{_printable(str(k))}' (ignored)")
    if "rules_file" in cfg:  # the legacy name
        if "rules_files" in raw:
            warnings.append("both 'rules_files' and the legacy 'rules_file' are set: using 'rules_files'")
        else:
            cfg["rules_files"] = cfg["rules_file"]
        del cfg["rules_file"]
    for k in NOT_SUPPORTED:
        if k in raw and raw[k] not in (None, [], {}, False) and raw[k] != DEFAULTS.get(k):
            warnings.append(f"configuration key '{k}' is accepted for compatibility; pyfalco does not use it")
    cfg = _deep_defaults(cfg, DEFAULTS)
    _semantic_checks(cfg, warnings)
    return cfg


def _semantic_checks(cfg: dict, warnings: list) -> None:
    for i, entry in enumerate(cfg["plugins"]):  # plugins: [{name, library_path, init_config, open_params}]
        if not isinstance(entry, dict):
            raise ConfigError(f"plugins[{i}]: expected a map with name, library_path, init_config, open_params")
        for key in ("name", "library_path"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"plugins[{i}]: '{key}' must be a non-empty string")
        if "open_params" in entry and not isinstance(entry["open_params"], (str, type(None))):
            raise ConfigError(f"plugins[{i}] ({_printable(entry['name'])}): 'open_params' must be a string")
        for k in entry:
            if k not in ("name", "library_path", "init_config", "open_params"):
                warnings.append(f"unknown configuration key 'plugins[{i}].{_printable(str(k))}' (ignored)")
    names = {e["name"] for e in cfg["plugins"]}
    for name in cfg["load_plugins"]:
        if name not in names:
            raise ConfigError(f"load_plugins: no entry named {_printable(str(name))!r} in plugins")
    for act in cfg["syscall_event_drops"]["actions"]:
        if act not in ("ignore", "log", "alert", "exit"):
            raise ConfigError(f"syscall_event_drops.actions: unknown action {act!r} (ignore, log, alert, exit)")
    d = cfg["syscall_event_drops"]
    if d["threshold"] < 0:
        raise ConfigError(f"syscall_event_drops.threshold: must be >= 0, got {d['threshold']}")
    if d["rate"] <= 0 or d["max_burst"] < 1:
        raise ConfigError("syscall_event_drops: rate must be > 0 and max_burst >= 1")
    for kind in ("kmod", "modern_ebpf"):
        buffer_bytes_of_preset(cfg["engine"][kind]["buf_size_preset"])
    if cfg["engine"]["modern_ebpf"]["cpus_for_each_buffer"] < 0:
        raise ConfigError("engine.modern_ebpf.cpus_for_each_buffer: must be >= 0")
    port = cfg["webserver"]["listen_port"]
    if not 0 <= port <= 65535:
        raise ConfigError(f"webserver.listen_port: {port} is not a port")
    for i, entry in enumerate(cfg["rules"]):
        ok = isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in ("enable", "disable") \
            and isinstance(next(iter(entry.values())), dict) \
            and set(next(iter(entry.values()))) <= {"rule", "tag"} and next(iter(entry.values()))
        if not ok:
            raise ConfigError(f"rules[{i}]: expected {{enable|disable: {{rule: <name>}} | {{tag: <tag>}}}}, "
                              f"got {entry!r}")
    for i, entry in enumerate(cfg["append_output"]):
        if not isinstance(entry, dict):
            raise ConfigError(f"append_output[{i}]: expected a map, got {_type_name(entry)}")
        for k in entry:
            if k not in ("match", "extra_output", "extra_fields", "suggested_output"):
                warnings.append(f"unknown configuration key 'append_output[{i}].{_printable(str(k))}' (ignored)")
        if "match" in entry and not (isinstance(entry["match"], dict)
                                     and set(entry["match"]) <= {"rule", "source", "tags"}):
            raise ConfigError(f"append_output[{i}].match: expected a map of rule, source, tags")
        ef = entry.get("extra_fields", [])
        if not isinstance(ef, list) or not all(isinstance(x, str) or (isinstance(x, dict) and len(x) == 1)
                                               for x in ef):
            raise ConfigError(f"append_output[{i}].extra_fields: expected a list of field names or "
                              "{name: format} maps")
    for i, entry in enumerate(cfg["config_files"]):
        if not (isinstance(entry, str) or (isinstance(entry, dict) and "path" in entry)):
            raise ConfigError(f"{where}config_files[{i}]: expected a path or {{path, strategy}}, got {entry!r}")
    if cfg["http_output"]["enabled"] and not cfg["http_output"]["url"]:
        raise ConfigError("http_output.url: required when http_output.enabled is true")
    if cfg["program_output"]["enabled"] and not cfg["program_output"]["program"]:
        raise ConfigError("program_output.program: required when program_output.enabled is true")


# ---- loading --------------------------------------------------------------------------------

@dataclass
class Config:
    """A loaded configuration: ``data`` (validated, defaults filled in), the files it came from
    (for watch_config_files) and the warnings about it."""

    data: dict
    path: str | None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    text: str = ""
    #: informational messages (a config_files entry that does not exist: an optional extension
    #: point such as /etc/pyfalco/config.d, not a mistake worth a warning at every start)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _yaml_error_line(exc: Exception, text: str | None = None) -> str:
    """A YAML error as one line (PyYAML's text spans several, with a source excerpt)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    pos = getattr(exc, "position", None)
    if mark is None and isinstance(pos, int) and text is not None:
        # a ReaderError (a character YAML does not allow) has only an offset: in characters from
        # PyYAML's reader, in UTF-8 bytes from libyaml's
        before = text[:pos] if getattr(exc, "encoding", None) == "unicode" \
            else text.encode("utf-8", "surrogatepass")[:pos].decode("utf-8", "ignore")
        where = f"line {before.count(chr(10)) + 1}, column {len(before) - before.rfind(chr(10))}: "
    text = f"{where}{problem}" + (f" ({context})" if context else "")
    return " ".join(text.split())


#: bounds on a loaded configuration (the walks over it recurse per level, and YAML aliases can
#: repeat a subtree: ``&x [*x]`` is a list inside itself, ten levels of ten aliases 10^10 values)
MAX_DEPTH = 100
MAX_VALUES = 100_000


def _check_bounds(value: Any, where: str) -> None:
    """Refuse a configuration nested more than MAX_DEPTH levels or of more than MAX_VALUES values
    once aliases are expanded (checked without recursion)."""
    stack = [(value, 0)]
    count = 0
    while stack:
        v, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"{where}: more than {MAX_VALUES} values once YAML aliases are expanded")
        if isinstance(v, (list, dict)):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{where}: values nested more than {MAX_DEPTH} levels deep "
                                  "(or a YAML alias inside itself)")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))


def _read_yaml(path: str) -> tuple[dict, str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {_printable(path)}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{_printable(path)}: not UTF-8 text (byte offset {exc.start})") from None
    try:
        data = _safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_error_line(exc, text)}") from None
    except _CONSTRUCT_ERRORS as exc:
        raise ConfigError(f"{path}: invalid YAML: {_bad_scalar(text, exc)}") from None
    if data is None:
        data = {}
    _check_bounds(data, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a YAML map, got {_type_name(data)}")
    return data, text


#: path keys (besides rules_files and config_files) naming files that belong to a configuration:
#: relative values resolve against its folder. Output files (file_output.filename,
#: metrics.output_file) and the replayed capture stay relative to the working directory, as in Falco.
CONFIG_RELATIVE_KEYS = (("webserver", "ssl_certificate"), ("http_output", "ca_cert"), ("http_output", "ca_bundle"),
                        ("http_output", "ca_path"), ("http_output", "client_cert"), ("http_output", "client_key"))


def _resolve(entry: str, base_dir: Path) -> str:
    p = _expand_env(entry)   # first, so a variable may hold an absolute path
    return p if os.path.isabs(p) else str(base_dir / p)


def _resolve_rules_paths(raw: dict, base_dir: Path) -> None:
    """Relative ``rules_files``/``rules_file`` entries and CONFIG_RELATIVE_KEYS values of one
    configuration file -> paths in the file's folder (in place)."""
    for key in ("rules_files", "rules_file"):
        val = raw.get(key)
        if isinstance(val, str):
            val = [val]
            raw[key] = val
        if not isinstance(val, list):
            continue  # validation reports the wrong type
        for i, entry in enumerate(val):
            if isinstance(entry, str) and entry:
                val[i] = _resolve(entry, base_dir)
    for section, key in CONFIG_RELATIVE_KEYS:
        sec = raw.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str) and sec[key]:
            sec[key] = _resolve(sec[key], base_dir)


def _config_file_entries(raw: dict, base_dir: Path, where: str = "") -> list[tuple[str, str]]:
    """``config_files`` of one configuration -> (path, strategy) in order; a folder gives its
    ``.yaml``/``.yml`` files sorted, a path that does not exist the strategy ``missing``. A path
    the system cannot even look up (a name longer than NAME_MAX, no permission, a symlink loop)
    is a ConfigError naming ``where`` (the configuration file) and the entry."""
    out = []
    entries = raw.get("config_files") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{where}config_files: expected a list")
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            path, strategy = entry, "append"
        elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
            path, strategy = entry["path"], entry.get("strategy", "append")
        else:
            raise ConfigError(f"{where}config_files[{i}]: expected a path or {{path, strategy}}, got {entry!r}")
        p = Path(_expand_env(path))
        if not p.is_absolute():
            p = base_dir / p
        try:
            st = p.stat()
        except (FileNotFoundError, NotADirectoryError):
            out.append((str(p), "missing"))
            continue
        except OSError as exc:
            # ENAMETOOLONG, EACCES, ELOOP: Path.is_dir() lets some of these out
            raise ConfigError(f"{where}config_files[{i}]: cannot look up {_printable(str(p))}: "
                              f"{exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            out.append((str(p), strategy))
            continue
        try:
            names = sorted(p.iterdir())
            out.extend((str(f), strategy) for f in names if f.suffix in (".yaml", ".yml") and f.is_file())
        except OSError as exc:
            raise ConfigError(f"{where}config_files[{i}]: cannot list the folder {_printable(str(p))}: "
                              f"{exc.strerror or exc}") from None
    return out


def default_config_path() -> str | None:
    """The configuration used without ``-c``: the first of DEFAULT_CONFIG_PATHS that exists,
    else the packaged default (None only when pyfalco's package data is missing)."""
    found = next((p for p in DEFAULT_CONFIG_PATHS if os.path.exists(p)), None)
    return found or packaged_path(PACKAGED_CONFIG)


def load_config(path: str | None = None, overrides: list[str] | tuple = (), *,
                defaults_if_missing: bool = False) -> Config:
    """Load, merge, override and validate. ``path=None`` uses :func:`default_config_path`
    (DEFAULT_CONFIG_PATHS, else the packaged default); when even that is missing and
    ``defaults_if_missing`` is set, the built-in defaults are used."""
    warnings: list[str] = []
    notes: list[str] = []
    files: list[str] = []
    text = ""
    if path is None:
        path = default_config_path()
        if path is None and not defaults_if_missing:
            raise ConfigError(f"no configuration file (looked for {', '.join(DEFAULT_CONFIG_PATHS)} and "
                              "pyfalco's packaged default); use -c")
    raw: dict = {}
    if path is not None:
        raw, text = _read_yaml(path)
        files.append(os.path.abspath(path))
        base_dir = Path(path).resolve().parent
        _resolve_rules_paths(raw, base_dir)
        for extra_path, strategy in _config_file_entries(raw, base_dir, f"{_printable(path)}: "):
            if strategy == "missing":
                notes.append(f"config_files: {_printable(extra_path)} does not exist (skipped)")
                continue
            extra, _ = _read_yaml(extra_path)
            _resolve_rules_paths(extra, Path(extra_path).resolve().parent)
            if "config_files" in extra:
                warnings.append(f"{extra_path}: config_files inside an included file is ignored")
                extra = {k: v for k, v in extra.items() if k != "config_files"}
            merge(raw, extra, strategy)
            files.append(extra_path)
    for ov in overrides:
        p, v = parse_override(ov)
        apply_override(raw, p, v)
    if overrides:
        _check_bounds(raw, "-o")
    raw = _expand_env(raw)
    data = validate(raw, warnings)
    return Config(data=data, path=os.path.abspath(path) if path else None, files=files, warnings=warnings,
                  text=text, notes=notes)
