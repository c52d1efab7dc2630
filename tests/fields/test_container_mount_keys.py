# SPDX-License-Identifier: Apache-2.0
"""container.mount*[key] as libs looks a mount up (sinsp_container_info::mount_by_source /
mount_by_dest): an index, or a glob (fnmatch, '*' crosses '/') on the destination for
container.mount.source and on the source for every other field, the first mount that matches.
Evaluated on the container meta event an Inspector makes for a container's metadata (the real
event and extractors; the metadata is given, as a runtime would give it)."""

from __future__ import annotations

import pytest

MOUNTS = [("/proc", "/host/proc", "ro", False, "rprivate"),
          ("/var/run/docker.sock", "/var/run/docker.sock", "", True, "rprivate"),
          ("/srv/data/app", "/data", "z", True, "rslave")]


@pytest.fixture(scope="module")
def ie():
    from pyfalco.inspector import Inspector
    from pyfalco.state.containers import ContainerInfo, Mount
    insp = Inspector(None, live=False)
    info = ContainerInfo("ef" * 32, "podman")
    info.name, info.image, info.source, info.complete = "web", "localhost/app:1", "test", True
    info.mounts = [Mount(*m) for m in MOUNTS]
    insp.containers.add(info)
    insp._meta_pending.append(info)
    (evt,) = insp.meta_events(1_700_000_000_000_000_000)
    return evt


@pytest.mark.parametrize("field, value", [
    # by source (dest, mode, rdwr, propagation, the whole mount)
    ("container.mount.dest[/proc]", "/host/proc"),
    ("container.mount.dest[/proc*]", "/host/proc"),
    ("container.mount.dest[/var/run/*.sock]", "/var/run/docker.sock"),
    ("container.mount.dest[/srv/*]", "/data"),          # '*' crosses '/'
    ("container.mount.dest[/srv/dat?/app]", "/data"),
    ("container.mount.dest[/srv/[cd]ata/app]", "/data"),
    ("container.mount.dest[*]", "/host/proc"),            # the first mount that matches
    ("container.mount.mode[/srv/*]", "z"),
    ("container.mount.rdwr[/proc]", "false"),
    ("container.mount.propagation[/srv/*]", "rslave"),
    ("container.mount[/srv/*]", "/srv/data/app:/data:z:true:rslave"),
    # by destination (source)
    ("container.mount.source[/host/*]", "/proc"),
    ("container.mount.source[/data]", "/srv/data/app"),
    # by index
    ("container.mount.source[1]", "/var/run/docker.sock"),
    ("container.mount.dest[2]", "/data"),
])
def test_mount_keys(ie, field, value):
    assert ie.get(field) == value


@pytest.mark.parametrize("field", [
    "container.mount.dest[/pro]",         # a glob matches the whole path, not a prefix
    "container.mount.dest[/host/proc]",   # dest is looked up by source
    "container.mount.source[/proc]",      # source is looked up by destination
    "container.mount.dest[/srv]",
    "container.mount.dest[3]",
])
def test_mount_keys_that_match_nothing(ie, field):
    assert ie.get(field) is None
