#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerates the seed corpora that are derived from the shared sample captures
(tools/fuzz/corpus/events: windows of real records; scap: whole small captures and windows of
events with a trimmed state cut from them). The other seeds
(rules, config, http) are hand-written files; cri's are built by fuzz_cri.seeds(). Usage: tools/fuzz/targets/seeds.py [CAPTURES_DIR]
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tools" / "fuzz" / "corpus"


def records(path: Path) -> list[tuple[str, bytes]]:
    from pyfalco.capture import Capture
    with Capture(engine="replay", capture_file=str(path)) as cap:
        return [(e.name, e.record) for e in cap.events()]


def small_captures(src: Path, out: Path, stem: str, window: int = 32, max_windows: int = 8) -> list[Path]:
    """Small captures cut from ``src``: windows of ``window`` events, each starting just before an
    event type no earlier window holds, written with pyfalco's writer after a trimmed initial
    state (the threads the window's events name and their parents with their stdio, the fds the
    window's events name and one fd of each type, plus one thread per fd type the others lack,
    holding one fd of each such type; their users and groups; every interface). Per input they cost 3-14 ms instead of 30-130 ms for a whole capture
    (hundreds of events, a 50-200 thread /proc table), with the same decoders exercised: the
    fuzzer's speed-up for the scap target (docs/reliability.md). The whole captures stay seeds
    too (older block formats, long event runs)."""
    import dataclasses

    from pyfalco.capture import Capture
    from pyfalco.initial_state import InitialState
    from pyfalco.scap.metadata import initial_state_from_blocks
    from pyfalco.scap.writer import CaptureWriter
    with Capture(engine="replay", capture_file=str(src)) as cap:
        st = initial_state_from_blocks(cap.metadata_blocks())
        evs = []
        for e in cap.events():
            # the fd numbers an event names (fd, res of an open, newfd...): the fds to keep
            vals = e.values()
            refs = {v for p, v in zip(e.info.params[:e.nparams], vals)
                    if ("fd" in p.name or p.name == "res") and isinstance(v, int) and 0 <= v < 1 << 20}
            evs.append((e.name, e.tid, e.record, e.cpu, refs))
    starts: list[int] = []
    covered: set = set()
    for i, (name, *_rest) in enumerate(evs):
        if name not in covered and len(starts) < max_windows:
            s = max(0, i - 2)
            starts.append(s)
            covered |= {n for n, *_r in evs[s:s + window]}
    written = []
    for k, s in enumerate(starts):
        part = evs[s:s + window]
        keep: set = set()
        for tid in {tid for _n, tid, _r, _c, _f in part}:
            while tid in st.threads and tid not in keep:
                keep.add(tid)
                tid = st.threads[tid].ptid
        # of the kept threads' fds: stdio, the ones the window's events name, one of each type
        # (a process holding a hundred fds made most of a seed's bytes and of its parse time)
        refs = set().union(*(f for *_x, f in part))
        threads = {}
        types: set = set()
        for tid in sorted(keep):
            t = st.threads[tid]
            fds = {}
            for fd, f in t.fds.items():
                if fd <= 2 or fd in refs or f.type not in types:
                    fds[fd] = f
                    types.add(f.type)
            threads[tid] = dataclasses.replace(t, fds=fds)
        for tid, t in st.threads.items():
            new = {f.type for f in t.fds.values()} - types
            if new and tid not in threads:
                fds: dict = {}
                for fd, f in t.fds.items():
                    if f.type in new and f.type not in {g.type for g in fds.values()}:
                        fds[fd] = f
                threads[tid] = dataclasses.replace(t, fds=fds)
                types |= new
        uids = {t.uid for t in threads.values()} | {0}
        gids = {t.gid for t in threads.values()} | {0}
        state = InitialState(machine=st.machine, threads=threads,
                             users={u: v for u, v in st.users.items() if u in uids},
                             groups={g: v for g, v in st.groups.items() if g in gids},
                             interfaces=list(st.interfaces))
        dst = out / f"small_{stem}_{k}.scap"
        w = CaptureWriter(str(dst))
        w.write_initial_state(state)
        for _n, _t, raw, cpu, _f in part:
            w.write(raw, cpu=cpu)
        w.close()
        written.append(dst)
    return written


def main() -> None:
    caps = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "captures"
    out = CORPUS / "events"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("libs_sample", "libs_curl_google", "libs_single_ipv6_conn", "falco_empty"):
        recs = records(caps / f"{name}.scap")
        # windows that start at a state-changing event (clone, execve, open, socket, connect...)
        starts = [i for i, (ev, _) in enumerate(recs)
                  if ev in ("clone", "execve", "openat", "socket", "connect", "accept", "dup", "pipe", "fcntl")]
        picks = sorted(set(starts[::max(1, len(starts) // 4)][:4]) | set(range(0, len(recs), max(1, len(recs) // 3))))
        for i in picks:
            data = b"".join(r for _, r in recs[i:i + 40])[:16384]
            (out / f"{name}_{i}.bin").write_bytes(data)
    scap = CORPUS / "scap"
    scap.mkdir(parents=True, exist_ok=True)
    for name in ("libs_test_ipv6_client", "libs_single_ipv6_conn", "falco_empty", "libs_curl_google"):
        shutil.copyfile(caps / f"{name}.scap", scap / f"{name}.scap")
    for name in ("libs_sample", "falco_old_empty"):
        (scap / f"{name}.scap.gz").write_bytes(gzip.compress((caps / f"{name}.scap").read_bytes(), 9, mtime=0))
    for name in ("libs_sample", "libs_curl_google", "libs_single_ipv6_conn", "falco_empty", "libs_test_ipv6_client",
                 "falco_old_empty"):
        small_captures(caps / f"{name}.scap", scap, name)
    # CRI: valid runtime answers built with pyfalco's own encoders
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_cri
    cri = CORPUS / "cri"
    cri.mkdir(parents=True, exist_ok=True)
    for name, data in fuzz_cri.seeds().items():
        (cri / name).write_bytes(data)


if __name__ == "__main__":
    main()
