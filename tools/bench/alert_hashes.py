#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""sha256 of (alerts with their fields, inspector stats) per capture x ruleset x engine path.

A check for performance work on the state engine and the rules: run it on the tree before a
change and after it (``--tree DIR`` picks the checkout imported; the rules are this tree's), and
diff the outputs: any changed alert, field value or state counter changes a hash. Rulesets: the
broad, default and stable rules of tests/api/test_engine_paths.py, and a field-heavy rule that
prints ~70 proc/thread/user/group/container/fd/evt fields (the evt.arg.* ones included) on every
clone/execve/procexit/open/openat/close/connect/accept4/socket exit.

    nice -n 5 python3 tools/bench/alert_hashes.py --tree /tmp/old CAPTURE... > before.txt
    nice -n 5 python3 tools/bench/alert_hashes.py CAPTURE... > after.txt && diff before.txt after.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

FIELDS = (
    "proc.name proc.pid proc.vpid proc.ppid proc.sid proc.vpgid proc.exe proc.exepath proc.args "
    "proc.cmdline proc.cwd proc.tty proc.pname proc.aname[2] proc.pcmdline proc.pexepath user.uid user.name "
    "user.loginuid user.loginname group.gid group.name proc.exe_ino proc.exe_ino.ctime proc.exe_ino.mtime "
    "proc.is_exe_writable proc.is_exe_upper_layer proc.is_exe_lower_layer proc.is_exe_from_memfd proc.vmsize "
    "proc.vmrss proc.vmswap proc.pidns_init_start_ts proc.fdlimit proc.env container.id thread.cgroups "
    "proc.is_vpgid_leader proc.sname proc.is_sid_leader thread.tid thread.vtid thread.cap_effective "
    "thread.cap_permitted thread.cap_inheritable thread.pfmajor thread.pfminor proc.nthreads proc.nchilds "
    "proc.ppid.duration fd.name fd.num fd.typechar fd.directory fd.filename fd.sip fd.sport fd.cip fd.cport "
    "fd.l4proto fd.is_server evt.num evt.res evt.rawres evt.failed evt.args evt.info evt.arg.res evt.arg.fd "
    "evt.arg.name evt.arg.flags evt.arg.exe evt.arg.args evt.arg.pid evt.arg.cwd evt.rawarg.res "
    "evt.rawarg.flags evt.is_open_read evt.is_open_write")
FIELDHEAVY = """
- rule: proc fields
  desc: x
  condition: evt.type in (clone, fork, vfork, clone3, execve, execveat, procexit, open, openat, close, connect, accept4, socket) and evt.dir = <
  output: "%s"
  priority: INFO
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(ROOT), help="checkout whose pyfalco is imported")
    ap.add_argument("captures", nargs="+")
    opts = ap.parse_args()
    for cap in opts.captures:
        if not Path(cap).is_file():
            print(f"alert_hashes: {cap}: no such capture file", file=sys.stderr)
            return 1
    if not (Path(opts.tree) / "pyfalco" / "__init__.py").is_file():
        print(f"alert_hashes: {opts.tree}: not a pyfalco checkout", file=sys.stderr)
        return 1
    sys.path.insert(0, opts.tree)
    # an editable install's finder would import this checkout's pyfalco whatever sys.path says
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
    import pyfalco
    assert Path(pyfalco.__file__).resolve().parent == Path(opts.tree).resolve() / "pyfalco", pyfalco.__file__
    sys.path.insert(0, str(ROOT / "tests" / "api"))
    import test_engine_paths as paths
    rules = dict(paths.RULES)
    ok = []
    for f in FIELDS.split():
        try:
            pyfalco.Engine(FIELDHEAVY % ("%" + f), capture=None).close()
            ok.append("%" + f)
        except Exception as err:    # a field this tree does not know: left out, said on stderr
            print("left out", f, type(err).__name__, file=sys.stderr)
    rules["fieldheavy"] = FIELDHEAVY % " ".join(ok)
    for cap in opts.captures:
        for name in sorted(rules):
            for batch in (True, False):
                got, n, st = paths._run(Path(cap), rules[name], batch, "all")
                h = hashlib.sha256(repr((got, st)).encode()).hexdigest()[:16]
                print(Path(cap).name, name, "batch" if batch else "per-event", n, len(got), h, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
