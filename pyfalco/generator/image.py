# SPDX-License-Identifier: Apache-2.0
"""The generator's container image, built locally from the host's busybox-static (no registry).

``ensure_image()`` imports a one-layer image ``localhost/pyfalco-eventgen:<version>`` with
``podman import`` from a root filesystem made here: busybox with its applets linked in /bin,
a few fake credential and configuration files for the read/write actions to touch, and empty
directories (/lib, /usr/sbin, /var/lib/rpm, /var/lib/dpkg, /var/log) for the write actions.
Every file in it is made up; nothing of the host is copied but busybox.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

__all__ = ["IMAGE", "ensure_image", "busybox_path", "PodmanMissing"]

#: bump the tag when the content below changes, so an old image is never reused
IMAGE = "localhost/pyfalco-eventgen:4"

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/sh
bin:x:2:2:bin:/bin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/sh
postgres:x:70:70:postgres:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
"""
_GROUP = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nwww-data:x:33:\npostgres:x:70:\nnogroup:x:65534:\napp:x:1000:\n"
# made-up hashes: not a password of anything
_SHADOW = ("root:$6$pyfalco$fakefakefakefakefakefakefakefake:19000:0:99999:7:::\n"
           "daemon:*:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n")
_FILES = {
    "etc/passwd": (_PASSWD, 0o644),
    "etc/group": (_GROUP, 0o644),
    "etc/shadow": (_SHADOW, 0o640),
    "etc/sudoers": ("root ALL=(ALL:ALL) ALL\n", 0o440),
    "etc/pam.d/common-auth": ("auth required pam_unix.so\n", 0o644),
    "etc/hostname": ("eventgen\n", 0o644),
    "root/.ssh/id_rsa": ("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n"
                         "-----END OPENSSH PRIVATE KEY-----\n", 0o600),
    "root/.ash_history": ("ls\n", 0o600),
    "root/.aws/credentials": ("[default]\naws_access_key_id = AKIAPYFALCOFAKE\n", 0o600),
    "var/log/app.log": ("started\n", 0o644),
    "var/lib/dpkg/status": ("Package: busybox\nStatus: install ok installed\n", 0o644),
    "var/lib/rpm/Packages": ("", 0o644),
    "usr/bin/pyfalco-victim": ("#!/bin/sh\nexit 0\n", 0o755),
}
_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "tmp", "root", "etc", "dev", "proc", "sys",
         "run", "var/tmp", "var/www", "home/app", "usr/local/bin")
#: names a server would have: busybox runs the applet named by argv[0], so a process executed as
#: /usr/sbin/nginx with argv[0] "sh" is a shell whose process name (comm) is nginx
_SERVER_LINKS = ("usr/sbin/nginx", "usr/sbin/mysqld", "usr/bin/xmrig")


class PodmanMissing(RuntimeError):
    """podman (or busybox-static) is not installed: run tools/setup."""


def busybox_path() -> str:
    for p in _BUSYBOX_CANDIDATES:
        if os.path.exists(p):
            return p
    raise PodmanMissing("busybox-static is not installed (tools/setup installs it)")


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and "/" not in a and a != "busybox"]


def _rootfs_tar(busybox: str) -> bytes:
    buf = io.BytesIO()
    now = int(time.time())

    def info(name, kind=tarfile.REGTYPE, mode=0o644, size=0, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.mtime, ti.linkname = kind, mode, size, now, link
        return ti

    with tarfile.open(fileobj=buf, mode="w") as tar:
        made = set()
        for d in _DIRS + tuple(sorted({os.path.dirname(f) for f in _FILES})):
            parts = d.split("/")
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub and sub not in made:
                    mode = 0o1777 if sub in ("tmp", "var/tmp") else 0o700 if sub.startswith("root") else 0o755
                    tar.addfile(info(sub, tarfile.DIRTYPE, mode))
                    made.add(sub)
        with open(busybox, "rb") as f:
            data = f.read()
        tar.addfile(info("bin/busybox", mode=0o755, size=len(data)), io.BytesIO(data))
        for applet in _applets(busybox):
            tar.addfile(info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        for link in _SERVER_LINKS:
            tar.addfile(info(link, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        for name, (text, mode) in sorted(_FILES.items()):
            raw = text.encode()
            tar.addfile(info(name, mode=mode, size=len(raw)), io.BytesIO(raw))
    return buf.getvalue()


def image_exists(image: str = IMAGE) -> bool:
    if shutil.which("podman") is None:
        raise PodmanMissing("podman is not installed (tools/setup installs it)")
    return subprocess.run(["podman", "image", "exists", image], capture_output=True).returncode == 0


def ensure_image(image: str = IMAGE) -> str:
    """Builds the image if this machine does not have it yet; returns its name."""
    if image_exists(image):
        return image
    tar = _rootfs_tar(busybox_path())
    with tempfile.TemporaryDirectory(prefix="pyfalco-eventgen-") as tmp:
        path = os.path.join(tmp, "rootfs.tar")
        with open(path, "wb") as f:
            f.write(tar)
        subprocess.run(["podman", "import", "--change", "CMD=/bin/sh", "--change", "WORKDIR=/root",
                        path, image], check=True, capture_output=True)
    return image
