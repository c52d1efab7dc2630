# SPDX-License-Identifier: Apache-2.0
"""pyfalco-event-generator: performs, for real and safely, the behaviours the default ruleset
detects, on the host or in podman containers of a locally built image.

    pyfalco-event-generator list
    pyfalco-event-generator run read_sensitive_file
    pyfalco-event-generator run --all [--container] [--check]

``--check`` runs the actions under a live pyfalco detection session (root) and reports, for each
action, whether the rules it names fired. As a library: :func:`run_action` and
:func:`check_actions`.

Exit status: 0 when every action ran (and, with ``--check``, fired its rules); 1 when an action
failed (a command it runs exited with an unexpected status, e.g. ``cat: /etc/shadow: Permission
denied`` as an unprivileged user, or a tool or the container image is missing) or, with
``--check``, a rule did not fire; 2 for a usage error. The last line names the failed actions;
``--json`` gives the same report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

from .actions import ACTIONS, Action, action_names, expected_rules, expected_upstream, get_action
from .context import ActionFailed, Context

__all__ = ["ACTIONS", "Action", "ActionFailed", "ActionRun", "action_names", "get_action", "run_action",
           "check_actions", "main"]


@dataclass
class ActionRun:
    """One action performed: where, what it started, and (with a session) what fired."""

    action: Action
    in_container: bool
    containers: list = field(default_factory=list)
    pids: list = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    expected: tuple = ()
    fired: set = field(default_factory=set)
    alerts: list = field(default_factory=list)

    @property
    def missing(self) -> list:
        return [r for r in self.expected if r not in self.fired]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing


def run_action(act: Action | str, *, container: bool = False, verbose: bool = False) -> ActionRun:
    """Performs one action and cleans up after it; never raises for the action's own failures
    (they are in ``error``)."""
    act = get_action(act) if isinstance(act, str) else act
    in_container = act.in_container(container)
    run = ActionRun(act, in_container, expected=expected_rules(act, in_container))
    t0 = time.monotonic()
    with Context(container=in_container, verbose=verbose) as ctx:
        try:
            act.run(ctx)
        except ActionFailed as err:
            run.error = str(err)
        except OSError as err:
            run.error = f"{type(err).__name__}: {err}"
        run.containers = list(ctx.containers)
        run.pids = list(ctx.pids)
        if verbose:
            for line in ctx.log:
                print(f"    {line}", file=sys.stderr)
    run.seconds = time.monotonic() - t0
    return run


def check_actions(actions, session, *, container: bool = False, verbose: bool = False,
                  upstream: bool = False) -> list[ActionRun]:
    """Runs actions one after another under a started :class:`pyfalco.testing.DetectionSession`;
    each run's ``fired``/``alerts`` hold the alerts of that action only (its process tree and its
    containers). ``upstream=True`` expects the action's Falco stable rule names instead."""
    runs = []
    for act in actions:
        act = get_action(act) if isinstance(act, str) else act
        with session.watch() as w:
            run = run_action(act, container=container, verbose=verbose)
            for cid in run.containers:
                w.add_container(cid)
        run.alerts = w.alerts
        run.fired = {a.rule for a in run.alerts}
        if upstream:
            run.expected = expected_upstream(act, run.in_container)
        runs.append(run)
    return runs


def _list(args) -> int:
    if args.json:
        from .k8saudit import K8S_ACTIONS
        print(json.dumps([{"name": a.name, "where": a.where, "rules": list(a.rules), "upstream_rules": list(a.upstream),
                           "description": a.description}
                          for a in list(ACTIONS.values()) + list(K8S_ACTIONS.values())], indent=2))
        return 0
    from .k8saudit import K8S_ACTIONS
    for a in list(ACTIONS.values()) + list(K8S_ACTIONS.values()):
        print(f"{a.name:28} [{a.where}] {a.description.splitlines()[0] if a.description else ''}")
        for r in a.rules:
            print(f"{'':28}   -> {r}")
    return 0


def _run(args) -> int:
    if args.all:
        names = action_names()
    elif args.actions:
        names = args.actions
    else:
        print("pyfalco-event-generator run: name actions or use --all", file=sys.stderr)
        return 2
    from .k8saudit import run_all as run_k8s, split_names
    try:
        k8s_acts, names = split_names(names)   # k8saudit.* POST audit events to a webhook
        acts = [get_action(n) for n in names]
    except KeyError as err:
        print(f"pyfalco-event-generator: {err.args[0]}", file=sys.stderr)
        return 2
    if k8s_acts and args.check:
        print("pyfalco-event-generator: --check does not apply to k8saudit.* actions (run them against an agent "
              "with the k8saudit plugin loaded)", file=sys.stderr)
        return 2
    if not acts:
        runs = run_k8s(k8s_acts, args.k8s_audit_url)
    elif args.check:
        from pyfalco.errors import PyFalcoError
        from pyfalco.rules import RulesLoadError
        from pyfalco.testing import DetectionSession
        try:
            session = DetectionSession(args.rules or None).start()
        except RulesLoadError as err:
            errors = [ln for ln in str(err).splitlines() if "LOAD_ERR" in ln] or str(err).splitlines()[:1]
            for line in errors:
                print(f"pyfalco-event-generator: --check: rules: {line}", file=sys.stderr)
            return 1
        except (PyFalcoError, OSError) as err:
            print(f"pyfalco-event-generator: --check: cannot start the detection session: {err}", file=sys.stderr)
            return 1
        try:
            runs = check_actions(acts, session, container=args.container, verbose=args.verbose,
                                 upstream=args.upstream)
        finally:
            session.stop()
    else:
        runs = [run_action(a, container=args.container, verbose=args.verbose) for a in acts]
    if acts and k8s_acts:
        runs += run_k8s(k8s_acts, args.k8s_audit_url)
    failed = [run for run in runs if not (run.ok if args.check else run.error is None)]
    if args.json:
        print(json.dumps([_run_json(run, args.check) for run in runs], indent=2))
        return 1 if failed else 0
    for run in runs:
        where = "container" if run.in_container else ("webhook" if run.action.where == "webhook" else "host")
        if run.error:
            status = f"FAILED {run.error}"
        elif args.check:
            status = "ok" if run.ok else f"MISSING {run.missing}"
        else:
            status = "done"
        print(f"{run.action.name:28} {where:9} {run.seconds:5.1f}s {status}")
        for r in run.expected:
            mark = ("+" if r in run.fired else "-") if args.check else "->"
            print(f"    {mark} {r}")
        if args.check and args.verbose:
            for a in run.alerts:
                print(f"      {a}")
    print(_summary(runs, failed, args.check))
    return 1 if failed else 0


def _run_json(run: ActionRun, check: bool) -> dict:
    out = {"name": run.action.name, "where": "container" if run.in_container else "host",
           "ok": run.ok if check else run.error is None, "error": run.error, "seconds": round(run.seconds, 3),
           "expected": list(run.expected)}
    if check:
        out.update(fired=sorted(run.fired), missing=run.missing)
    return out


def _summary(runs: list, failed: list, check: bool) -> str:
    if not failed:
        return f"all {len(runs)} action(s) {'fired their rules' if check else 'done'}"
    errors = [r.action.name for r in failed if r.error]
    missing = [r.action.name for r in failed if not r.error]
    parts = []
    if errors:
        parts.append(f"{len(errors)} of {len(runs)} action(s) failed: {', '.join(errors)}")
    if missing:
        parts.append(f"{len(missing)} did not fire all their rules: {', '.join(missing)}")
    return "FAILED: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyfalco-event-generator",
                                     description="Performs the behaviours pyfalco's default rules detect, safely.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_list = sub.add_parser("list", help="list the actions and the rules each one triggers")
    p_list.add_argument("--json", action="store_true")
    p_run = sub.add_parser("run", help="run actions")
    p_run.add_argument("actions", nargs="*", metavar="ACTION")
    p_run.add_argument("--all", action="store_true", help="run every action")
    p_run.add_argument("--container", action="store_true",
                       help="run the actions that can run either way inside a container")
    p_run.add_argument("--check", action="store_true",
                       help="run under a live pyfalco session and report which expected rules fired (root)")
    p_run.add_argument("-r", "--rules", action="append", help="rules file(s) for --check (default: pyfalco's)")
    p_run.add_argument("--upstream", action="store_true",
                       help="with --check, expect the Falco stable rule names (load ../shared/rules/falco_rules.yaml with -r)")
    p_run.add_argument("--json", action="store_true", help="print the report as JSON (name, where, ok, error, ...)")
    p_run.add_argument("--k8s-audit-url", metavar="URL",
                       help="k8saudit webhook for k8saudit.* actions (default $PYFALCO_K8S_AUDIT_URL, else "
                            "http://127.0.0.1:9765/k8s-audit)")
    p_run.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        return _list(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
