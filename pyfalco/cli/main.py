# SPDX-License-Identifier: Apache-2.0
"""``pyfalco``: Falco 0.44's command line over the pyfalco agent.

Thin on purpose: parse the options, load the configuration, then either answer an
informational option (-L, -l, --list, --list-events, -i, -V, --support, --version, ...) or run
the agent. Exit status: 0 on success, 1 on any error (bad option, configuration, rules, driver),
as Falco.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import logging.handlers
import os
import platform
import sys
from typing import Any, Sequence

import pyfalco
from pyfalco.errors import ConfigError

__all__ = ["main", "build_parser"]

log = logging.getLogger("pyfalco")

_LOG_LEVELS = {"emergency": logging.CRITICAL, "alert": logging.CRITICAL, "critical": logging.CRITICAL,
               "error": logging.ERROR, "warning": logging.WARNING, "notice": logging.INFO,
               "info": logging.INFO, "debug": logging.DEBUG}


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 1 like Falco, not argparse's 2
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyfalco", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="pyfalco - cloud-native runtime security (Falco-compatible agent)",
                epilog="Configuration: -c FILE, else /etc/pyfalco/pyfalco.yaml, else the packaged default\n"
                       "(--print-default-config shows it).\n"
                       "Exit status: 0 on success, 1 on errors.")
    a = p.add_argument
    a("-h", "--help", action="store_true", help="print this help and exit")
    a("-c", dest="config", metavar="<path>", help="configuration file (default /etc/pyfalco/pyfalco.yaml)")
    a("--config-schema", action="store_true", help="print the configuration's schema (JSON) and exit")
    a("--print-default-config", action="store_true",
      help="print the packaged default configuration, its default rules path absolute (a start for "
           "/etc/pyfalco/pyfalco.yaml), and exit")
    a("--allow-no-rules", action="store_true",
      help="run without rules when the configuration names no rules files (rules_files: [], no -r); "
           "otherwise a run that loads no rules is an error")
    a("--rule-schema", action="store_true", help="print the rules files' schema (JSON) and exit")
    a("--disable-source", action="append", default=[], metavar="<event_source>",
      help="turn off an event source (syscall or a loaded plugin's source)")
    a("--enable-source", action="append", default=[], metavar="<event_source>",
      help="turn on only the given event sources")
    a("--dry-run", action="store_true", help="load configuration and rules, but do not capture events")
    a("-e", dest="capture_file", metavar="<file.scap>",
      help="replay a capture file (= -o engine.kind=replay -o engine.replay.capture_file=<file>)")
    a("-i", dest="ignored", action="store_true",
      help="print the syscalls ignored by default and the syscalls this configuration requests, and exit")
    a("-L", dest="describe_all", action="store_true", help="describe all rules and exit (JSON with json_output)")
    a("-l", dest="describe", metavar="<rule>", help="describe one rule and exit")
    a("--list", nargs="?", const="", default=None, metavar="<source>",
      help="list the fields (of one event source) and exit")
    a("-N", dest="names_only", action="store_true", help="with --list: field names only")
    a("--format", choices=("text", "markdown", "json"), default="text", help="with --list: output format")
    a("--markdown", action="store_true", help="deprecated: --format markdown")
    a("--list-events", action="store_true", help="list the events (syscall, tracepoint, meta) and exit")
    a("--list-plugins", action="store_true", help="list the loaded plugins (load_plugins) and exit")
    a("--plugin-info", metavar="<plugin_name>", help="print a plugin's information and exit")
    a("-M", dest="max_seconds", type=int, metavar="<num_seconds>", help="stop after this many seconds")
    a("-o", "--option", dest="options", action="append", default=[], metavar="<opt>=<val>",
      help="override a configuration key: dot paths, [] appends, [N] indexes (-o rules[].disable.tag=x)")
    a("-p", "--print", dest="print_fmt", metavar="<output_format>",
      help="deprecated: append to every rule's output (use -o append_output...)")
    a("-P", "--pidfile", metavar="<pid_file>", help="write the process id to this file")
    a("-r", dest="rules", action="append", default=[], metavar="<rules_file>",
      help="rules file or directory (repeatable; replaces rules_files)")
    a("--support", action="store_true", help="print a JSON support bundle and exit")
    a("-U", "--unbuffered", action="store_true", help="flush every output line (buffered_outputs=false)")
    a("-V", "--validate", action="append", default=[], metavar="<rules_file>",
      help="validate rules file(s) and exit (JSON with json_output=true)")
    a("-v", dest="verbose", action="store_true", help="verbose output")
    a("--version", action="store_true", help="print version information and exit")
    a("--page-size", action="store_true", help="print the system page size and exit")
    return p


# ---- logging ------------------------------------------------------------------------------------

class _StderrFormatter(logging.Formatter):
    def format(self, record):
        return f"{self.formatTime(record, '%a %b %d %H:%M:%S %Y')}: {record.getMessage()}"


def _setup_logging(cfg: dict | None, verbose: bool) -> None:
    logger = logging.getLogger("pyfalco")
    for h in list(logger.handlers):
        if not isinstance(h, logging.NullHandler):
            logger.removeHandler(h)
            h.close()
    level = _LOG_LEVELS.get((cfg or {}).get("log_level", "info"), logging.INFO)
    if verbose:
        level = min(level, logging.INFO)
    logger.setLevel(level)
    logger.propagate = False
    if cfg is None or cfg.get("log_stderr", True):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(_StderrFormatter())
        logger.addHandler(h)
    if cfg is not None and cfg.get("log_syslog") and os.path.exists("/dev/log"):
        try:
            sh = logging.handlers.SysLogHandler(address="/dev/log")
            sh.setFormatter(logging.Formatter("pyfalco: %(message)s"))
            logger.addHandler(sh)
        except OSError:
            pass


# ---- informational options ----------------------------------------------------------------------

def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _version_text(json_out: bool) -> str:
    from pyfalco.agent import versions
    v = versions()
    if json_out:
        return json.dumps(v)
    return "\n".join([
        f"pyfalco version: {v['pyfalco_version']}",
        f"Libs version:    {v['libs_version'] or 'not available'}",
        f"Engine:          {v['engine_version_semver']}",
        f"Plugin API:      {v['plugin_api_version']}",
        "Driver:",
        f"  API version:    {v['driver_api_version'] or 'n/a'}",
        f"  Schema version: {v['driver_schema_version'] or 'n/a'}",
        f"  Default driver: {v['default_driver_version'] or 'n/a'}",
    ])


def _field_classes() -> list[tuple[str, str, list]]:
    from pyfalco.fields.catalog import FIELDS
    names = {"evt": "Event fields (all events; syscall arguments)", "syscall": "Syscall event fields",
             "process": "Process and thread fields", "user": "User fields", "group": "Group fields",
             "fd": "File descriptor fields", "fdlist": "Poll event fd lists",
             "fs.path": "Filesystem path fields", "container": "Container fields",
             "k8s": "Kubernetes fields (from container runtime labels)", "static": "Static fields"}
    classes: dict[str, list] = {}
    for info in FIELDS.values():
        head = info.name.split(".")[0]
        cls = "process" if head in ("proc", "thread") else ("fs.path" if info.name.startswith("fs.path.") else head)
        classes.setdefault(cls, []).append(info)
    return [(c, names.get(c, c), v) for c, v in classes.items()]


def _list_fields(source: str, names_only: bool, fmt: str) -> str:
    try:  # the field layer's own listing, when it provides one
        from pyfalco.fields import list_fields  # type: ignore[attr-defined]
    except ImportError:
        list_fields = None
    if list_fields is not None:
        try:
            return list_fields(fmt, names_only=names_only, source=source or None)
        except TypeError:
            pass
    if source and source != "syscall":
        return "" if names_only or fmt != "json" else "[]"
    classes = _field_classes()
    if names_only:
        return "\n".join(i.name for _c, _d, infos in classes for i in infos)
    if fmt == "json":
        return json.dumps([{"name": c, "desc": d, "event_sources": ["syscall"],
                            "fields": [{"name": i.name, "type": i.type, "desc": i.desc,
                                        "arg": i.arg, "is_list": i.is_list} for i in infos]}
                           for c, d, infos in classes], indent=2)
    out = []
    if fmt == "markdown":
        for c, d, infos in classes:
            out += [f"## Field Class: {c}", "", d, "", "Name | Type | Description", ":----|:-----|:-----------"]
            out += [f"`{i.name}` | {i.type} | {i.desc}" for i in infos]
            out.append("")
        return "\n".join(out)
    out.append("Event Sources: syscall")
    for c, d, infos in classes:
        out += ["", "-" * 79, f"{'Field Class:':30}{c} ({d})", f"{'Event Sources:':30}syscall", ""]
        for i in infos:
            name = i.name + ("[...]" if i.arg in ("required", "key") else "")
            out.append(f"{name:30}{i.desc}" if len(name) < 30 else f"{name}\n{'':30}{i.desc}")
    return "\n".join(out)


def _list_events(selected: frozenset | None) -> str:
    from pyfalco import _schema
    from pyfalco.agent.syscalls import syscall_names_of_events
    from pyfalco.events import PT
    ptn = {v: k for k, v in PT.items()}
    sections = {"Syscall events": [], "Tracepoint events": [], "Plugin events": [], "Metaevents": []}
    seen = set()
    for e in _schema.EVENTS:
        if "OLD_VERSION" in e.flags or "UNUSED" in e.flags or e.code % 2 == 0 and "SYSCALL" in e.category:
            continue
        if e.name in seen:
            continue
        seen.add(e.name)
        args = ", ".join(f"{ptn.get(p.type, p.type)} {p.name}" for p in e.params)
        if "SYSCALL" in e.category:
            sec = "Syscall events"
            sc, _ = syscall_names_of_events([e.name])
            mark = ("[selected] " if selected is not None and sc & selected else
                    ("           " if selected is not None else ""))
        elif "TRACEPOINT" in e.category:
            sec, mark = "Tracepoint events", ""
        elif "PLUGIN" in e.category:
            sec, mark = "Plugin events", ""
        else:
            sec, mark = "Metaevents", ""
        sections[sec].append(f"{mark}{e.name}({args})")
    out = []
    for title, lines in sections.items():
        out += [f"=== {title} ==="] + lines + [""]
    return "\n".join(out).rstrip()


def _rule_json(rule: Any) -> dict:
    return {"info": {"name": rule.name, "condition": rule.condition, "output": rule.output,
                     "description": rule.desc, "priority": rule.priority.label, "source": rule.event_source,
                     "tags": sorted(rule.tags), "enabled": rule.enabled, "capture": rule.capture,
                     "capture_duration": rule.capture_duration},
            "details": {"condition_fields": sorted(rule.fields), "events": sorted(rule.evttypes),
                        "macros": sorted(rule.macros), "output_fields": list(rule.output_format.fields),
                        "exception_names": [getattr(x, "name", str(x)) for x in rule.exceptions]}}


def _describe(bundle: Any, name: str | None, json_out: bool) -> tuple[str, int]:
    rules = [r for r in bundle.ruleset if name is None or r.name == name]
    if name is not None and not rules:
        return f"Rule {name!r} not found", 1
    if json_out:
        from pyfalco.rules.describe import describe_json   # Falco's full -L shape
        return json.dumps(describe_json(bundle, name)), 0
    lines = [f"{'Rule':50} Description", f"{'----':50} -----------"]
    for r in rules:
        desc = " ".join(r.desc.split())
        lines.append(f"{r.name:50} {desc}" if len(r.name) < 50 else f"{r.name}\n{'':50} {desc}")
    return "\n".join(lines), 0


def _support(args, cfg_obj, argv) -> str:
    from pyfalco.agent import versions
    from pyfalco.agent.rulesload import RulesFilesError, expand_rules_files, expand_rules_files_quiet
    u = platform.uname()
    paths = args.rules or cfg_obj.data["rules_files"]
    try:
        files, _ = expand_rules_files(paths)
    except RulesFilesError:  # the bundle still lists them, each with its error
        files = expand_rules_files_quiet(paths)
    rules = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                content = fh.read()
            rules.append({"name": f, "content": content.decode("utf-8", "replace"),
                          "hash": hashlib.sha256(content).hexdigest()})
        except OSError as exc:
            rules.append({"name": f, "error": str(exc)})
    return json.dumps({"version": versions()["pyfalco_version"], "versions": versions(),
                       "engine_info": {"engine_version": versions()["engine_version_semver"]},
                       "system_info": {"sysname": u.system, "nodename": u.node, "release": u.release,
                                       "version": u.version, "machine": u.machine},
                       "cmdline": " ".join(["pyfalco"] + list(argv)),
                       "config": cfg_obj.text, "config_files": cfg_obj.files, "config_effective": cfg_obj.data,
                       "rules_files": rules}, indent=2)


# ---- main ---------------------------------------------------------------------------------------

def _overrides(args) -> list[str]:
    ov = list(args.options)
    if args.capture_file:
        ov += ["engine.kind=replay", f"engine.replay.capture_file={json.dumps(args.capture_file)}"]
    if args.unbuffered:
        ov.append("buffered_outputs=false")
    if args.print_fmt:
        ov.append("append_output[]=" + json.dumps({"extra_output": args.print_fmt}))
    return ov


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # a program start (not a call from Python): PyPy's GC settings first
        from pyfalco.pypygc import reexec_with_gc_settings
        reexec_with_gc_settings(sys.argv[1:])
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(f"pyfalco: error: {exc}\n(run pyfalco --help for the options)\n")
        return 1
    if args.help:
        sys.stdout.write(parser.format_help())
        return 0
    if args.page_size:
        _print(f"Your system page size is: {os.sysconf('SC_PAGE_SIZE')} bytes")
        return 0
    if args.rule_schema:
        _print(json.dumps(_rule_schema(), indent=2))
        return 0
    if args.print_default_config:
        return _print_default_config()
    if args.config_schema:
        from pyfalco.agent.config import SCHEMA
        _print(json.dumps(_config_schema(SCHEMA), indent=2))
        return 0
    if args.markdown:
        args.format = "markdown"

    from pyfalco.agent import Agent, AgentError, load_config, select_syscalls
    from pyfalco.agent.config import parse_override

    # -o values with JSON quoting (from -e) are YAML; keep a capture path with spaces intact
    try:
        overrides = _overrides(args)
        for ov in overrides:
            parse_override(ov)
        cfg_obj = load_config(args.config, overrides, defaults_if_missing=args.config is None)
    except ConfigError as exc:
        _setup_logging(None, args.verbose)
        log.error("Error: configuration: %s", exc)
        return 1
    cfg = cfg_obj.data
    _setup_logging(cfg, args.verbose)
    json_out = cfg["json_output"]

    if args.version:
        _print(_version_text(json_out))
        return 0
    from pyfalco.plugins import PluginError
    from pyfalco.plugins import cli as plugin_cli
    if args.plugin_info:
        try:
            _print(plugin_cli.plugin_info_text(cfg, args.plugin_info))
        except PluginError as exc:
            log.error("Error: %s", exc)
            return 1
        return 0
    try:  # the configured plugins (load_plugins): their sources, fields and versions
        plugins = plugin_cli.load_for_cli(cfg)
    except PluginError as exc:
        log.error("Error: %s", exc)
        return 1
    try:
        code = _plugin_actions(args, plugins, json_out)
        if code is not None:
            return code
    finally:
        plugins.destroy()
    if args.support:
        _print(_support(args, cfg_obj, argv))
        return 0

    agent = Agent(cfg_obj, overrides=overrides, rules_files=args.rules or None, max_seconds=args.max_seconds,
                  verbose=args.verbose, allow_no_rules=args.allow_no_rules, resolve_config=args.config is None,
                  enable_sources=args.enable_source, disable_sources=args.disable_source)
    from pyfalco.agent import make_inspector

    if args.validate:
        from pyfalco.rules import load_rules
        from pyfalco.plugins import cli as plugin_cli
        from pyfalco.rules.loader import DEFAULT_PLUGINS
        provider = agent._provider_for(make_inspector(None), cfg)
        try:
            plugins = plugin_cli.load_for_cli(cfg)
        except PluginError as exc:
            log.error("Error: %s", exc)
            return 1
        try:  # rules of a plugin source are validated against that plugin's fields
            from pyfalco.plugins.provider import ChainProvider, SyscallPluginProvider
            syscall_ext = SyscallPluginProvider(plugins)
            if syscall_ext:
                provider = ChainProvider(provider, syscall_ext)
            result = load_rules(*args.validate, provider=provider, extra_sources=plugins.providers(),
                                plugins={**DEFAULT_PLUGINS, **plugins.versions()})
        except PluginError as exc:
            log.error("Error: %s", exc)
            return 1
        finally:
            plugins.destroy()
        if json_out:
            _print(json.dumps(result.as_json()))
        else:
            _print("Validating rules file(s):")
            for f in args.validate:
                _print(f"   {f}")
            _print(result.as_text(verbose=True))
        return 0 if result.ok else 1

    needs_rules = args.describe_all or args.describe is not None or args.ignored or args.list_events \
        or args.dry_run
    bundle = None
    if needs_rules:
        from pyfalco.plugins.agent import setup_plugins
        try:
            # the plugins' sources and versions, for the rules that need them (sources not opened)
            agent.plugins = setup_plugins(cfg, agent.hostname, args.enable_source, args.disable_source,
                                          open_sources=False)
            provider = agent._provider_for(make_inspector(None), cfg)
            bundle = agent.load_rules(cfg, provider)
        except (AgentError, ConfigError, PluginError) as exc:
            if args.list_events or args.ignored:
                log.warning("rules not loaded (%s); selection not shown", str(exc).splitlines()[0])
            else:
                log.error("Error: %s", exc)
                return 1
        finally:
            if agent.plugins is not None:
                agent.plugins.close()
                agent.plugins = None
    if args.describe_all or args.describe is not None:
        text, code = _describe(bundle, args.describe, json_out)
        _print(text)
        return code
    sel = select_syscalls(bundle.event_types, cfg["base_syscalls"]) if bundle is not None else None
    if args.ignored:
        from pyfalco.agent import IGNORED_SET
        _print(f"The following {len(IGNORED_SET)} syscalls are ignored by default (I/O; "
               "base_syscalls.all=true captures them):")
        _print(" ".join(sorted(IGNORED_SET)))
        if sel is not None:
            _print("")
            _print(sel.describe())
            if cfg["engine"]["kind"] == "modern_ebpf":  # what the driver drops beyond the selection
                from pyfalco import kfilter
                _print("")
                _print(kfilter.derive(bundle.ruleset, extra_output_fields=kfilter._append_fields(cfg),
                                      syscalls=sel.syscalls).describe()
                       if cfg["engine"]["modern_ebpf"].get("kernel_filter", True) else
                       "Kernel-side filter: off (engine.modern_ebpf.kernel_filter: false)")
        return 0
    if args.list_events:
        if sel is not None:
            _print(f"# [selected]: requested from the driver with this configuration ({len(sel.syscalls)} syscalls)")
        _print(_list_events(sel.syscalls if sel is not None else None))
        return 0
    if args.dry_run:
        from pyfalco.agent.rulesload import count_enabled
        log.info("dry run: configuration %s and %d rules from %d file(s) loaded; %d syscalls would be "
                 "requested; not capturing", cfg_obj.path or "(built-in defaults)", count_enabled(bundle.ruleset),
                 len(bundle.files), len(sel.syscalls))
        if args.verbose:
            log.info("%s", sel.describe())
        return 0

    pidfile = args.pidfile
    if pidfile:
        try:
            with open(pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            log.error("Error: cannot write pid file %s: %s", pidfile, exc.strerror)
            return 1
    log.info("pyfalco version: %s", pyfalco.__version__)
    if cfg_obj.path:
        log.info("loaded configuration %s", cfg_obj.path)
    else:
        log.info("no configuration file: using the built-in defaults")
    try:
        agent.install_signal_handlers()
        code = agent.run()
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return code


def _plugin_actions(args: argparse.Namespace, plugins: Any, json_out: bool) -> int | None:
    """--list, --list-plugins and the --enable-source/--disable-source checks, which need the
    configured plugins; None when none of them ends the run."""
    from pyfalco.plugins import cli as plugin_cli
    if args.list is not None:
        if args.list not in ("", "syscall"):
            text = plugin_cli.list_source_fields(plugins, args.list, args.names_only, args.format)
            if text is None:
                log.error("Error: unknown event source %r (sources: %s)", args.list,
                          ", ".join(["syscall"] + plugins.sources()))
                return 1
            _print(text)
            return 0
        text = _list_fields(args.list, args.names_only, args.format)
        if args.list == "" and plugins.sources():   # every source: the plugin sources' fields too
            extra = plugin_cli.list_source_fields(plugins, None, args.names_only, args.format) or ""
            if args.format == "json" and not args.names_only:
                text = json.dumps(json.loads(text) + json.loads(extra), indent=2)
            elif extra:
                text = text + "\n" + extra
        _print(text)
        return 0
    if args.list_plugins:
        _print(plugin_cli.list_plugins_text(plugins))
        return 0
    problem = plugin_cli.check_sources(["syscall"] + plugins.sources(), args.enable_source, args.disable_source)
    if problem:
        log.error("Error: %s", problem)
        return 1
    return None


def _print_default_config() -> int:
    """The packaged default configuration, its relative default-rules entries made absolute so the
    text works wherever it is saved (e.g. as /etc/pyfalco/pyfalco.yaml); commented-out entries
    too (the k8s audit rules line), so uncommenting one works as well."""
    import re
    from pyfalco.agent.config import PACKAGED_CONFIG, PACKAGED_K8S_RULES, PACKAGED_RULES, packaged_path
    path = packaged_path(PACKAGED_CONFIG)
    rules = {name: packaged_path(name) for name in (PACKAGED_RULES, PACKAGED_K8S_RULES)}
    if path is None or None in rules.values():
        _setup_logging(None, False)
        log.error("Error: pyfalco's packaged default configuration or rules are missing (reinstall pyfalco)")
        return 1
    with open(path) as f:
        text = f.read()
    for name, where in rules.items():
        text = re.sub(r"(?m)^([ \t]*#?[ \t]*-[ \t]*)" + re.escape(name) + r"[ \t]*$",
                      lambda m, where=where: m.group(1) + os.path.realpath(where), text)
    sys.stdout.write(text)
    return 0


def _config_schema(schema: dict) -> dict:
    def conv(spec):
        if isinstance(spec, dict):
            return {"type": "object", "properties": {k: conv(v) for k, v in spec.items()}}
        if isinstance(spec, tuple):
            return {"type": "string", "enum": list(spec[1:])}
        return {"bool": {"type": "boolean"}, "int": {"type": "integer"}, "num": {"type": "number"},
                "str": {"type": "string"}, "strlist": {"type": "array", "items": {"type": "string"}},
                "list": {"type": "array"}, "map": {"type": "object"},
                "dur": {"type": ["string", "number"]}}.get(spec, {})
    out = conv(schema)
    out["$schema"] = "http://json-schema.org/draft-07/schema#"
    out["title"] = "pyfalco configuration"
    return out


def _rule_schema() -> dict:
    item = {"type": "object", "properties": {
        "rule": {"type": "string"}, "macro": {"type": "string"}, "list": {"type": "string"},
        "condition": {"type": "string"}, "output": {"type": "string"}, "desc": {"type": "string"},
        "priority": {"type": "string"}, "source": {"type": "string"}, "enabled": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}}, "items": {"type": "array"},
        "exceptions": {"type": "array"}, "override": {"type": "object"}, "append": {"type": "boolean"},
        "required_engine_version": {"type": ["string", "integer"]},
        "required_plugin_versions": {"type": "array"}, "warn_evttypes": {"type": "boolean"},
        "skip-if-unknown-filter": {"type": "boolean"}}}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Falco rules file",
            "type": "array", "items": item}


if __name__ == "__main__":
    sys.exit(main())
