# SPDX-License-Identifier: Apache-2.0
"""A ``--rm`` container looked up while podman removes it: its entry is still listed in
containers.json, its userdata (the OCI spec) is gone. The lookup then answers with what the
files said at creation (noted by the runtime watch), not with an entry whose privileged flag and
mounts are unknown -- which made a short-lived privileged container raise no alert under load
(the reader is seconds behind, so the lookup lands in the removal).

The race window is milliseconds wide with real podman, so the storage here is podman's layout
written by the test (containers.json + <id>/userdata/config.json), removed in podman's order."""

from __future__ import annotations

import json
import shutil

from pyfalco.state.containers import ContainerInfo, ContainerManager

CID = "ab" * 32


def _storage(tmp_path):
    st = tmp_path / "overlay-containers"
    (st / CID / "userdata").mkdir(parents=True)
    (st / "containers.json").write_text(json.dumps([{
        "id": CID, "names": ["short-lived"], "image": "cd" * 32, "created": "2026-12-06T17:00:00.123456789Z",
        "metadata": json.dumps({"name": "short-lived", "image-name": "localhost/busybox:1"})}]))
    (st / CID / "userdata" / "config.json").write_text(json.dumps({
        "annotations": {"io.podman.annotations.privileged": "TRUE"},
        "mounts": [{"destination": "/host/proc", "source": "/proc", "type": "bind", "options": ["ro"]}]}))
    return st


def _manager(st) -> ContainerManager:
    return ContainerManager(live=False, podman_storage=str(st), containerd_tasks="/nonexistent",
                            docker_sockets=[], cri_sockets=[])


def test_lookup_during_removal_answers_with_the_creation_time_metadata(tmp_path):
    st = _storage(tmp_path)
    mgr = _manager(st)
    assert mgr.poll_runtimes() == 1                 # the watch noted it while its files existed
    shutil.rmtree(st / CID / "userdata")           # podman removes the files, then the entry
    info = ContainerInfo(CID, "podman")
    assert mgr.lookup(info)
    assert info.privileged is True and info.name == "short-lived"
    assert [m.source for m in info.mounts] == ["/proc"]
    assert info.image == "localhost/busybox:1"


def test_lookup_without_a_note_still_reads_the_listed_entry(tmp_path):
    """No note (the watch never saw it): the entry is what there is; privileged unknown."""
    st = _storage(tmp_path)
    shutil.rmtree(st / CID / "userdata")
    info = ContainerInfo(CID, "podman")
    assert _manager(st).lookup(info)
    assert info.name == "short-lived" and info.privileged is None


def test_lookup_of_a_live_container_reads_its_files(tmp_path):
    st = _storage(tmp_path)
    info = ContainerInfo(CID, "podman")
    assert _manager(st).lookup(info)
    assert info.privileged is True and info.source == "podman-storage"
