# SPDX-License-Identifier: Apache-2.0
"""Field provider, listing, rendering and cgroup parsing (no root, no driver)."""

from __future__ import annotations

import json

import pytest

from pyfalco.fields.listing import list_fields
from pyfalco.fields.provider import StateProvider
from pyfalco.fields.render import cap_names, errno_name, render_flags
from pyfalco.state.cgroups import container_from_cgroups
from pyfalco.state.parser import resolve_path

ID = "4436fa39ee0ce1defcf3fc3d7b88095a19027fa2d28032afc49e327ad86cd1b0"


@pytest.mark.parametrize("path,rtype", [
    (f"/docker/{ID}", "docker"), (f"/system.slice/docker-{ID}.scope", "docker"),
    (f"/libpod_parent/libpod-{ID}", "podman"), (f"/machine.slice/libpod-{ID}.scope/container", "podman"),
    (f"/kubepods/besteffort/pod1234/{ID}", ""), (f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope",
                                                  "containerd"),
    (f"/kubepods/burstable/podx/crio-{ID}", "cri-o"), (f"/k8s.io/{ID}", "containerd"),
])
def test_container_id_styles(path, rtype):
    assert container_from_cgroups((("cpu", path),)) == (ID, rtype)


def test_host_and_conmon_are_not_containers():
    assert container_from_cgroups((("cpu", "/"), ("memory", "/user.slice/session-1.scope"))) is None
    assert container_from_cgroups((("cpu", f"/libpod_parent/libpod-conmon-{ID}"),)) is None


def test_render():
    assert render_flags("file_flags", 4097) == "O_RDONLY|O_CLOEXEC"
    assert render_flags("file_flags", 3) == "O_RDWR"
    assert render_flags("file_flags", 0) == "O_NONE"
    assert errno_name(-2) == "ENOENT" and errno_name(0) == "SUCCESS"
    assert cap_names((1 << 16) | 1) == "CAP_CHOWN CAP_SYS_MODULE"


def test_resolve_path():
    assert resolve_path("/tmp", "a/../b") == "/tmp/b"
    assert resolve_path("/tmp", "/etc//passwd") == "/etc/passwd"
    assert resolve_path("/", "x") == "/x"


def test_stable_ruleset_loads_on_the_state_provider():
    from pathlib import Path
    from pyfalco.rules import load_rules
    rules = Path(__file__).resolve().parents[3] / "shared" / "rules" / "falco_rules.yaml"
    res = load_rules(str(rules), provider=StateProvider())
    assert res.ok and not res.unknown_fields


def test_unknown_field_is_missing_not_an_error():
    p = StateProvider()
    assert p.field_info("no.such.field") is None
    assert p.accessor("thread.exectime", None)(object()) is None


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_list_fields(fmt):
    out = list_fields(fmt)
    assert "proc.aname" in out and "container.image.repository" in out
    if fmt == "json":
        items = json.loads(out)
        assert {"name", "type", "desc"} <= set(items[0])
        assert any(i["name"] == "fd.sip" and i["type"] == "IPADDR" for i in items)
