# SPDX-License-Identifier: Apache-2.0
"""k8saudit's file input: JSON lines (Event / EventList / arrays per line), one pretty-printed
EventList, a folder of files; the source ends (None) at the end of the data."""

from __future__ import annotations

import json
import os

import pytest

from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.k8saudit import K8sAuditPlugin


def read_all(path) -> tuple[list, object]:
    p = K8sAuditPlugin()
    p.init("")
    inst = p.open(f"  {path}\n")      # k8saudit trims the parameter
    out: list = []
    while True:
        batch = inst.next_batch(0.1)
        if batch is None:
            break
        out.extend(batch)
    assert inst.next_batch(0.1) is None      # stays ended
    inst.close()
    return out, inst


def ids(batch) -> list:
    return [json.loads(d)["auditID"] for _, d in batch]


def test_json_lines_with_bad_lines_counted(tmp_path):
    evs = gen.benign_events() + gen.privileged_pod() + gen.exec_pod()
    f = tmp_path / "audit.log"
    lines = [json.dumps(evs[0]), json.dumps(gen.event_list(evs[1:3])), "", "garbage line",
             json.dumps([evs[3], evs[4]]), json.dumps(dict(evs[5], stageTimestamp="bad")), json.dumps(evs[5])]
    f.write_text("\n".join(lines) + "\n")
    got, inst = read_all(f)
    assert ids(got) == [e["auditID"] for e in evs]
    assert inst.bad_lines == 1 and inst.skipped_events == 1


def test_pretty_printed_eventlist(tmp_path):
    evs = gen.cluster_admin_binding() + gen.kube_system_pod()
    f = tmp_path / "list.json"
    f.write_text(json.dumps(gen.event_list(evs), indent=2))
    got, _ = read_all(f)
    assert ids(got) == [e["auditID"] for e in evs]


def test_many_events_come_in_bounded_batches(tmp_path):
    evs = gen.exec_pod() * 1300
    f = tmp_path / "many.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in evs))
    p = K8sAuditPlugin()
    p.init("")
    inst = p.open(str(f))
    sizes = []
    while (b := inst.next_batch(0.1)) is not None:
        sizes.append(len(b))
    assert sum(sizes) == 1300 and max(sizes) <= 512


def test_folder_in_modification_time_order(tmp_path):
    a, b = gen.privileged_pod(), gen.exec_pod()
    (tmp_path / "z-older.jsonl").write_text(json.dumps(a[0]) + "\n")
    (tmp_path / "a-newer.jsonl").write_text(json.dumps(b[0]) + "\n")
    os.utime(tmp_path / "z-older.jsonl", (1_000_000, 1_000_000))
    got, _ = read_all(tmp_path)
    assert ids(got) == [a[0]["auditID"], b[0]["auditID"]]


def test_empty_and_unusable_files_end_at_once(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    got, _ = read_all(tmp_path / "empty.jsonl")
    assert got == []
    (tmp_path / "bin").write_bytes(os.urandom(2048).replace(b"\n", b" "))
    got, inst = read_all(tmp_path / "bin")
    assert got == [] and inst.bad_lines == 1


def test_unreadable_path_is_an_error(tmp_path):
    p = K8sAuditPlugin()
    p.init("")
    with pytest.raises(Exception, match="k8saudit.*cannot read"):
        p.open(str(tmp_path / "nope.jsonl"))
