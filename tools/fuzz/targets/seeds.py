#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerates the seed corpora that are derived from the shared sample captures
(tools/fuzz/corpus/events: windows of real records; scap: small captures). The other seeds
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
    # CRI: valid runtime answers built with pyfalco's own encoders
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_cri
    cri = CORPUS / "cri"
    cri.mkdir(parents=True, exist_ok=True)
    for name, data in fuzz_cri.seeds().items():
        (cri / name).write_bytes(data)


if __name__ == "__main__":
    main()
