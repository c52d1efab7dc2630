#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Differential harness: pyfalco's fields against ``sysdig -r FILE -p ...`` on capture files.

Every field both sides support is compared on every exit event both sides show (matched by
timestamp, thread id and event type): the ``proc.*``, ``thread.*``, ``user.*``, ``group.*`` and
``fd.*`` fields that pyfalco computes and ``sysdig -l`` lists (no-argument forms), ``evt.args``, and
``evt.arg.NAME`` for every parameter name of the event types in the capture.

A difference is *explained* when it is a known case where Debian's sysdig 0.29 is wrong or older
than libs master (``KNOWN`` below, each with the libs behaviour pyfalco follows; the test
``tests/fields/test_sysdig_differential_known.py`` shows each on a capture). The report gives,
per field, the exact match rate and the rate once explained differences are counted.

    tools/diff_sysdig.py [CAPTURE...]           # default: ../shared/captures/*.scap
    tools/diff_sysdig.py --markdown             # the table of docs/state-and-fields.md
    tools/diff_sysdig.py --samples fd.name      # unexplained differences of some fields
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CAPTURES = ROOT.parent / "shared" / "captures"
CLASSES = ("proc.", "thread.", "user.", "group.", "fd.")
SEP = "\x1f"
#: fields that are not the same quantity on both sides (times of the reading machine, per-run
#: counters) or that sysdig 0.29 computes from sources a replay does not have
NOT_COMPARABLE = {
    "proc.duration",       # libs: now - clone time on a live capture; time of the reader
    "fd.containername", "fd.containerdirectory",  # container.id prefix: 0.29 prints "host:"... too
}
#: captures sysdig 0.29 cannot read at all (it stops with an error): nothing to compare
UNREADABLE = {"libs_curl_google_comments.scap"}


def sysdig_fields() -> set[str]:
    """Field names ``sysdig -l`` lists."""
    out = subprocess.run(["sysdig", "-l"], capture_output=True, text=True, check=True, timeout=60).stdout
    return {m.group(1) for m in re.finditer(r"(?m)^([a-z0-9_]+\.[a-z0-9_.]+)\s", out)}


def _displayable(name: str) -> bool:
    """Whether sysdig can print a field (some are filter-only, some it lists but cannot parse)."""
    probe = CAPTURES / "libs_sample.scap"
    r = subprocess.run(["sysdig", "-r", str(probe), "-p", f"*%{name}", "-n", "1"], capture_output=True, timeout=60)
    return r.returncode == 0


_FIELDS: list[str] = []


def compared_fields() -> list[str]:
    """The no-argument fields of the compared classes that both sides support and sysdig can
    print (without evt.arg.*)."""
    if _FIELDS:
        return list(_FIELDS)
    from pyfalco.fields.catalog import FIELDS
    from pyfalco.fields.provider import extractable
    theirs = sysdig_fields()
    names = [n for n, info in FIELDS.items()
             if n.startswith(CLASSES) and info.arg in ("none", "index", "optional") and n in theirs
             and extractable(n) and n not in NOT_COMPARABLE]
    _FIELDS.extend(n for n in sorted(names) if _displayable(n))
    _FIELDS.append("evt.args")
    return list(_FIELDS)


def arg_fields(path: Path) -> list[str]:
    """``evt.arg.NAME`` for the parameter names of the exit events in a capture."""
    import pyfalco
    from pyfalco._schema import EVENTS
    codes = set()
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        for evt in cap:
            if evt.type & 1:
                codes.add(evt.type)
    names = {p.name for c in codes for p in EVENTS[c].params}
    return sorted(f"evt.arg.{n}" for n in names if n in _names_2022())


def _names_2022() -> set[str]:
    """Parameter names sysdig 0.29 knows (its event table is the 2022 one): it refuses others."""
    import json
    table = json.loads((ROOT.parent / "shared" / "spec" / "event_table_libs_2022.json").read_text())
    return {p[0] for e in table.values() for p in e.get("params", [])}


def sysdig_rows(path: Path, fields: list[str]) -> dict:
    """(rawtime, tid, type) -> values, for sysdig's exit events (the first of equal keys)."""
    fmt = "*" + SEP.join(["%evt.rawtime", "%thread.tid", "%evt.type"] + [f"%{f}" for f in fields])
    # (not -v, which prints whole buffers: it changes what 0.29 prints for proc.is_exe_writable of
    # threads whose parent the capture never describes, a value it reads uninitialized; the
    # buffers it cuts are compared by their prefix instead, see same_value)
    out = subprocess.run(["sysdig", "-r", str(path), "-p", fmt, "evt.dir=<"], capture_output=True,
                         timeout=900).stdout.decode("utf-8", "replace")
    rows: dict = {}
    for line in out.splitlines():
        parts = line.split(SEP)
        if len(parts) != 3 + len(fields):
            continue
        try:
            key = (int(parts[0]), int(parts[1]), parts[2])
        except ValueError:
            continue
        rows.setdefault(key, parts[3:])
    return rows


def same_value(got: str, want: str) -> bool:
    """Whether pyfalco's text is sysdig's: equal, or sysdig's screen form of a long buffer, which it
    cuts (at 80 bytes of a data buffer, less for others) and ends with "..." (a display choice of
    sysdig's, lifted only by -v; Falco prints whole values)."""
    if got == want:
        return True
    return want.endswith("...") and len(want) > 3 and len(got) > len(want) - 3 and got.startswith(want[:-3])


def _text(v) -> str:
    from pyfalco.rules.output import value_text
    return value_text(v)


# -- known differences: sysdig 0.29 wrong or older than libs master --------------------------------

def _user_root(field, got, want, ie):
    """libs master (sinsp_threadinfo::get_user / set_user): uid 0 is "root" even when the capture
    carries no user table; sysdig 0.29 prints <NA>."""
    t = ie.thread
    return field == "user.name" and got == "root" and want in ("<NA>", "") and t is not None and t.uid == 0


def _group_root(field, got, want, ie):
    """libs master (sinsp_threadinfo::get_group): gid 0 is "root" without a group table."""
    t = ie.thread
    return field == "group.name" and got == "root" and want in ("<NA>", "") and t is not None and t.gid == 0


def _connect_overwrites_dest(field, got, want, ie):
    """libs master (parsers.cpp fill_client_socket_info, overwrite_dest = true): a connect always
    takes its destination from the event; sysdig 0.29 kept the destination an earlier sendto had
    set. Applies to that socket's later events too."""
    f = ie.fd
    return (field in ("fd.name", "fd.sip", "fd.sport", "fd.rip", "fd.rport", "fd.lip", "fd.lport", "fd.sproto",
                      "fd.rproto", "fd.lproto", "fd.snet", "fd.rnet", "fd.lnet", "fd.name_changed", "fd.is_server")
            and f is not None and f.is_ip and getattr(f, "redirected", False))


def _sendmsg_tuple_misread(field, got, want, ie):
    """sysdig 0.29 misreads the IPv4 tuple of sendmsg/sendto exit events whose source address is
    unbound (0.0.0.0) in the old captures: it prints a destination made of the source port's bytes
    (port 55441 = 0xd891 -> 145.216.x.x) and a source inferred from the first interface. libs
    master reads the tuple as written (tests/fields/test_sysdig_differential_known.py decodes it)."""
    evt = ie.evt
    if evt.name not in ("sendmsg", "sendto") or not field.startswith(("fd.", "evt.arg.tuple", "evt.args")):
        return False
    tup = evt.get("tuple")
    return tup is not None and tup.sip is not None and tup.sip.is_unspecified and tup.sport is not None


def _port_of_non_connection(field, got, want, ie):
    """fd.cport/fd.sport of unix and listening sockets: sysdig 0.29 prints 0; libs' fd filtercheck
    (sinsp_filtercheck_fd.cpp TYPE_CLIENTPORT) extracts a client port for IP connections only."""
    f = ie.fd
    return (field in ("fd.cport", "fd.sport") and want == "0" and got == "<NA>" and f is not None
            and not (f.is_ip and not f.is_server_socket))


def _failed_open_fd(field, got, want, ie):
    """A failed open: libs master gives the event a temporary fd info (fd.num -1, the name, flags
    and device of the attempt: parse_open_openat_creat_exit), so fd.dev is the event's (0) and
    fd.is_server false; sysdig 0.29 had no fd for it (<NA>)."""
    return (field in ("fd.dev", "fd.dev.major", "fd.dev.minor", "fd.is_server") and want == "<NA>"
            and ie.fd is not None and ie.fdnum == -1)


def _dev_of_non_file(field, got, want, ie):
    """fd.dev of sockets, pipes and other non-file fds: sysdig 0.29 prints whatever its fd entry
    held (the entry's device field is not reset for them); libs master makes every fd entry from
    a zeroed one (sinsp_fdinfo_factory::create), so the device is 0."""
    from pyfalco.state.fds import FILE_TYPES
    f = ie.fd
    return field.startswith("fd.dev") and got == "0" and f is not None and f.type not in FILE_TYPES


def _unconnected_is_server(field, got, want, ie):
    """fd.is_server of a socket with no destination yet: sysdig 0.29 says true; libs master's
    is_ipv4addr_in_local_machine compares the (unset) server address with the interface
    addresses, so false."""
    from pyfalco.state.fds import _unset
    f = ie.fd
    return field == "fd.is_server" and got == "false" and want == "true" and f is not None and f.is_ip \
        and not f.is_server_socket and _unset(f.dip)


_EXIT_2022: dict[int, set] = {}


def _param_not_in_old_exit(field, got, want, ie):
    """A parameter the 2022 exit layout of this event does not carry (mmap's addr/length, the fd of
    connect/close, socket's domain/type/proto...): sysdig 0.29 reads only the exit record's own
    parameters and prints <NA>; libs master's capture converter (libscap's scap_convert_event) rebuilds
    the exit record in today's layout with those parameters taken from the enter event, as
    pyfalco's replay does."""
    if not field.startswith("evt.arg.") or want != "<NA>":
        return False
    if not _EXIT_2022:
        import json
        table = json.loads((ROOT.parent / "shared" / "spec" / "event_table_libs_2022.json").read_text())
        _EXIT_2022.update((int(k), {p[0] for p in v.get("params", [])}) for k, v in table.items())
    return field[len("evt.arg."):] not in _EXIT_2022.get(ie.evt.type, set())


def _table_2022() -> dict:
    if not _TABLE_2022:
        import json
        _TABLE_2022.update(json.loads((ROOT.parent / "shared" / "spec" / "event_table_libs_2022.json").read_text()))
    return _TABLE_2022


_TABLE_2022: dict = {}


def _empty_is_null(field, got, want, ie):
    """An empty buffer, tuple, fd list or dynamic parameter (a failed read's data, setsockopt's val):
    libs master's sinsp_evt::get_param_as_str prints "NULL" for the types that could be empty before
    its converter made every type emptyable (PT_BYTEBUF, PT_SOCKTUPLE, PT_FDLIST, PT_CHARBUFARRAY,
    PT_CHARBUF_PAIR_ARRAY, PT_DYN) and <NA> for the others; sysdig 0.29 prints "" for an empty
    buffer and <NA> for an empty PT_DYN."""
    if not field.startswith("evt.arg.") or got != "NULL" or want not in ("", "<NA>"):
        return False
    i = ie.evt.param_index(field[len("evt.arg."):])
    raw = ie.evt.raw_param(i) if i >= 0 else None
    return raw is not None and len(raw) == 0


def _mmap_res_is_errno(field, got, want, ie):
    """mmap's result: libs master's event table types it PT_ERRNO (decimal, an errno name when
    negative); sysdig 0.29's 2022 table has PT_UINT64 with PF_HEX, printed as upper-case hex."""
    if field != "evt.arg.res" or ie.evt.name not in ("mmap", "mmap2"):
        return False
    try:
        return f"{int(got) & (1 << 64) - 1:X}" == want
    except ValueError:
        return False


def _socket_l4_at_exit(field, got, want, ie):
    """A socket not connected yet, as an fd parameter (socket's new fd, then fcntl/setsockopt on it
    before its connect): libs master's parse_socket_exit (add_socket) sets the L4 protocol from the
    call's domain/type/protocol, which its converter puts into the exit record, so the fd prints as
    <4t>; sysdig 0.29 prints <4> (no protocol until the socket is connected)."""
    if not field.startswith("evt.arg."):
        return False
    return _unconnected_l4(got, want)


def _unconnected_l4(got: str, want: str) -> bool:
    """got is want with an L4 letter added to a bare socket tag (no address after it)."""
    return got != want and _without_l4(got) == want and re.search(r"<[46][tuir]>\)?$", got) is not None


def _without_l4(text: str) -> str:
    import re
    return re.sub(r"<([46])[tuir]>", r"<\1>", text)


def _no_argless_ancestors(field, got, want, ie):
    """proc.aname / proc.apid without an index: sysdig 0.29 cannot print the argument-less form (it
    prints a value, or <NA>, followed by the field's name: "curlproc.aname"); libs master accepts it (every ancestor), as
    pyfalco does. Nothing to compare."""
    return want.endswith(field) and want != field


def _param_text(ie, name: str) -> str | None:
    try:
        from pyfalco.fields.evt import render_param
    except ImportError:          # before the field modules were split out of extract.py
        from pyfalco.fields.extract import render_param
    from pyfalco._schema import EVENTS
    i = ie.evt.param_index(name)
    if i < 0 or i >= ie.evt.nparams:
        return None
    txt = render_param(ie, i, EVENTS[ie.evt.type].params[i], resolved=False)
    return "" if txt is None else txt


def _args_of_old_exit(field, got, want, ie):
    """evt.args: sysdig 0.29 prints the parameters of the 2022 exit layout only; libs master (and
    pyfalco) print today's layout, which its converter rebuilds with the parameters of the enter
    event (param_not_in_old_exit). Explained when every parameter 0.29 prints is pyfalco's, up to
    sysdig's screen cut of long values ("...") and the empty-parameter case (_empty_is_null)."""
    if field != "evt.args":
        return False
    names = [p[0] for p in _table_2022().get(str(ie.evt.type), {}).get("params", [])]
    if not want.strip(" "):
        # a record with no parameters at all: 0.29 prints nothing, pyfalco the rebuilt layout with
        # every parameter empty
        return all(_param_text(ie, n) in ("", "<NA>", "NULL", None) for n in names)
    rest = want
    for j, name in enumerate(names):
        if not rest.strip(" ") and j > 0:
            break           # an older record with fewer parameters: 0.29 prints those it has
        if not rest.startswith(name + "="):
            return False
        rest = rest[len(name) + 1:]
        k = rest.find(f" {names[j + 1]}=") if j + 1 < len(names) else -1
        if k >= 0:
            theirs, rest = rest[:k], rest[k + 1:]
        else:            # the last parameter the record has
            theirs, rest = rest.rstrip(" "), ""
        ours = _param_text(ie, name)
        if ours is None:
            return False
        if same_value(ours, theirs):
            continue
        if ours == "NULL" and theirs in ("", "<NA>") and _empty_is_null(f"evt.arg.{name}", ours, theirs, ie):
            continue
        if name == "res" and _mmap_res_is_errno("evt.arg.res", ours, theirs, ie):
            continue
        if _unconnected_l4(ours, theirs):
            continue
        return False
    return not rest


# -- threads a capture never describes (libs' "invalid" entries) and other thread-table cases ------

_INVALID_FIELDS = {"proc.pid": None, "thread.ismain": None, "proc.cwd": None, "proc.fdlimit": None,
                   "proc.fdopencount": None, "proc.fdusage": None, "proc.ppid": None, "proc.nchilds": None}


def _invalid_thread_pid(field, got, want, ie):
    """A thread neither the process list nor a clone describes: libs master's fake entry has pid -1
    (thread_manager.cpp sinsp_thread_manager::get_thread, "Add a fake entry to avoid a continuous
    lookup"), so it is not a main thread and has no main thread: proc.pid -1, thread.ismain false,
    get_cwd() "./", get_fd_limit()/get_fd_opencount() 0, proc.ppid none. sysdig 0.29 gave the fake
    entry pid = tid, making it its own main thread (cwd "", fdlimit -1, ppid -1)."""
    t = ie.thread
    return field in _INVALID_FIELDS and t is not None and t.pid < 0


def _unknown_parent_is_0(field, got, want, ie):
    """proc.ppid of a process whose parent the table lacks: libs master's create_thread_dependencies
    sets ptid 0 when the parent is missing or invalid (the invalid main thread of a clone's child
    event, patched by parse_clone_exit_child, goes through it); sysdig 0.29 kept -1."""
    return field == "proc.ppid" and got == "0" and want == "-1"


def _nchilds_of_thread(field, got, want, ie):
    """proc.nchilds on a thread that is not its process's main thread: libs master returns the
    number of live non-leader threads of the thread group from any of its threads
    (sinsp_threadinfo::get_num_not_leader_threads); sysdig 0.29 read a counter (m_nchilds) that
    only a main thread keeps, so every other thread showed 0."""
    t = ie.thread
    return field == "proc.nchilds" and want == "0" and t is not None and t.tid != t.pid


def _execve_patches_invalid(field, got, want, ie):
    """A thread first seen as an invalid entry, then running an execve: libs master's
    parse_execve_exit patches the entry (ptid from the event, vtid/vpid = tid/pid) and, for
    captures whose execve exit has no trusted_exepath, rebuilds proc.exepath from the enter event's
    filename and the cwd; sysdig 0.29 left vtid/vpid -1 (printed <NA>) and had no exepath."""
    t = ie.thread
    if t is None or not t.lastexec_ts:
        return False
    if field in ("proc.vpid", "thread.vtid"):
        return want == "<NA>" and got in (str(t.pid), str(t.tid))
    return field == "proc.exepath" and want == "" and got != ""


def _gid_high_word(field, got, want, ie):
    """group.gid: libs' group filtercheck types it PT_UINT32 (sinsp_filter_check_group); sysdig 0.29
    printed it with 32 bits of the neighbouring memory above the gid (4294967296 for gid 0)."""
    if field != "group.gid":
        return False
    try:
        w, g = int(want), int(got)
    except ValueError:
        return False
    return w > 0xFFFFFFFF and w & 0xFFFFFFFF == g


def _loginuid_unread(field, got, want, ie):
    """user.loginuid of a thread from the capture's process list: libs master reads the entry's
    loginuid, UINT32_MAX (-1) when the entry lacks it (libscap scap_read_proclist); sysdig 0.29
    printed an uninitialized value (-420151296 on libs_sample.scap)."""
    if field != "user.loginuid" or got != "-1":
        return False
    try:
        return int(want) < -1
    except ValueError:
        return False


def _loginuid_init_default(field, got, want, ie):
    """A thread created by a clone whose caller (or main thread) was an invalid entry copies no
    loginuid from it: libs master keeps sinsp_threadinfo::init()'s 0xffffffff (user.loginuid -1,
    user.loginname <NA>); sysdig 0.29's init zeroed the login user (uid 0, "root")."""
    t = ie.thread
    if t is None or t.loginuid != 0xFFFFFFFF or not t.clone_ts or t.sid != -1:
        return False
    return (field, got, want) in (("user.loginuid", "-1", "0"), ("user.loginname", "<NA>", "root"))


KNOWN = [_param_not_in_old_exit, _args_of_old_exit, _empty_is_null, _mmap_res_is_errno, _socket_l4_at_exit,
         _no_argless_ancestors,
         _user_root, _group_root, _connect_overwrites_dest, _sendmsg_tuple_misread, _port_of_non_connection,
         _dev_of_non_file, _unconnected_is_server, _failed_open_fd, _invalid_thread_pid, _unknown_parent_is_0, _nchilds_of_thread,
         _execve_patches_invalid, _gid_high_word, _loginuid_unread, _loginuid_init_default]


def explain(field: str, got: str, want: str, ie) -> str | None:
    """The name of the known difference that explains a mismatch, or None."""
    for fn in KNOWN:
        try:
            if fn(field, got, want, ie):
                return fn.__name__.lstrip("_")
        except Exception:          # an explanation never breaks the comparison
            continue
    return None


def compare(path: Path, fields: list[str] | None = None):
    """Per field: (Counter matched, Counter explained, Counter compared, samples), events matched."""
    import pyfalco
    from pyfalco.inspector import Inspector
    if fields is None:
        fields = compared_fields() + arg_fields(path)
    ref = sysdig_rows(path, fields)
    ok, why, seen = Counter(), Counter(), Counter()
    samples: dict[str, list] = defaultdict(list)
    reasons: dict[str, Counter] = defaultdict(Counter)
    matched = 0
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        prov = insp.provider
        getters = []
        for f in fields:
            name, arg = f, None
            if f.startswith("evt.arg."):
                getters.append((f, prov.accessor(f, None)))
                continue
            getters.append((f, prov.accessor(name, arg)))
        for ie in insp.events():
            want_row = ref.get((ie.evt.ts, ie.evt.tid, ie.name))
            if want_row is None:
                continue
            matched += 1
            for (f, get), want in zip(getters, want_row):
                got = _text(get(ie))
                if f.startswith("evt.arg.") and want == "<NA>" and got == "<NA>":
                    continue        # a parameter this event does not have
                seen[f] += 1
                if same_value(got, want):
                    ok[f] += 1
                    continue
                reason = explain(f, got, want, ie)
                if reason is not None:
                    why[f] += 1
                    reasons[f][reason] += 1
                elif len(samples[f]) < 10:
                    samples[f].append((path.name, ie.evt.num, ie.name, got, want))
    return ok, why, seen, samples, reasons, matched


def run(paths: list[Path]):
    fields = compared_fields()
    tot_ok, tot_why, tot_seen = Counter(), Counter(), Counter()
    all_samples: dict[str, list] = defaultdict(list)
    all_reasons: dict[str, Counter] = defaultdict(Counter)
    events = 0
    for p in paths:
        if p.name in UNREADABLE:
            continue
        ok, why, seen, samples, reasons, matched = compare(p, fields + arg_fields(p))
        tot_ok.update(ok)
        tot_why.update(why)
        tot_seen.update(seen)
        events += matched
        for f, s in samples.items():
            all_samples[f].extend(s)
        for f, r in reasons.items():
            all_reasons[f].update(r)
    return tot_ok, tot_why, tot_seen, all_samples, all_reasons, events


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--markdown", action="store_true", help="print the per-field table in markdown")
    ap.add_argument("--samples", nargs="*", default=None, help="print unexplained differences of these fields")
    a = ap.parse_args(argv)
    if shutil.which("sysdig") is None:
        print("diff_sysdig: sysdig is not installed (tools/setup installs it)", file=sys.stderr)
        return 1
    paths = a.captures or sorted(CAPTURES.glob("*.scap"))
    ok, why, seen, samples, reasons, events = run(paths)
    names = sorted(seen)
    if a.markdown:
        print(f"{events} events compared on {len(paths)} captures.\n")
        print("| field | compared | exact | with explained differences | explained by |")
        print("|---|---:|---:|---:|---|")
        for f in names:
            r = ", ".join(f"{k} ({v})" for k, v in reasons[f].most_common())
            print(f"| `{f}` | {seen[f]} | {100 * ok[f] / seen[f]:.1f}% | {100 * (ok[f] + why[f]) / seen[f]:.1f}% "
                  f"| {r} |")
    else:
        print(f"{events} events compared")
        for f in names:
            print(f"{f:32} {seen[f]:6} exact {100 * ok[f] / seen[f]:6.2f}%  explained "
                  f"{100 * (ok[f] + why[f]) / seen[f]:6.2f}%")
    if a.samples is not None:
        for f in a.samples or [n for n in names if samples.get(n)]:
            for s in samples.get(f, []):
                print(f"  {f}: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
