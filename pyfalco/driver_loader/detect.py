# SPDX-License-Identifier: Apache-2.0
"""What the running (or a named) kernel supports: the facts the driver loader decides from.

Everything is read under a host root (``/`` normally, ``/host`` when the loader runs in a
container with the host's /proc, /sys, /etc, /usr/src, /lib/modules and /boot mounted there,
as Falco's loader image expects). Nothing here changes the system.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class KernelInfo:
    """The facts ``pyfalco-driver-loader detect`` prints (``--json``: this as a dict)."""
    release: str                     # uname -r (or --kernel-release)
    version: str                     # uname -v (build number, e.g. "#1 SMP Debian 6.1.158-1")
    machine: str
    running: bool                    # release is the running kernel's
    distro_id: str                   # os-release ID ("debian", "ubuntu", "rhel", ...)
    distro_version: str
    btf: bool                        # /sys/kernel/btf/vmlinux
    bpf_ringbuf: bool                # BPF ring buffer maps (probed, else from the version: >= 5.8)
    modules: bool                    # the kernel loads modules (CONFIG_MODULES)
    lockdown: str                    # none / integrity / confidentiality ("" if unknown)
    sig_enforce: bool                # module.sig_enforce=1 (or lockdown): unsigned modules refused
    headers: str                     # the kbuild directory for this release ("" if none)
    headers_package: str             # the package that provides them on this distro
    dkms: bool                       # dkms is installed
    loaded: bool                     # the pyfalco module is loaded
    loaded_version: str              # its version (/sys/module/pyfalco/version)
    recommended: str = ""            # modern_ebpf or kmod
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def os_release(root: Path) -> dict[str, str]:
    """os-release key/values (etc/os-release, else usr/lib/os-release)."""
    for p in (root / "etc/os-release", root / "usr/lib/os-release"):
        text = _read(p)
        if text:
            out = {}
            for line in text.splitlines():
                k, sep, v = line.partition("=")
                if sep:
                    out[k.strip()] = v.strip().strip('"').strip("'")
            return out
    return {}


def _version_tuple(release: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    return tuple(int(x or 0) for x in m.groups()) if m else (0, 0, 0)


def headers_dir(root: Path, release: str) -> Path | None:
    """The kbuild tree of release: /lib/modules/<r>/build (if it resolves under root), else
    /usr/src/linux-headers-<r> (Debian, Ubuntu), /usr/src/kernels/<r> (RHEL family)."""
    candidates = [root / "lib/modules" / release / "build", root / "usr/src" / f"linux-headers-{release}",
                  root / "usr/src/kernels" / release, root / "usr/src" / f"linux-{release}"]
    for c in candidates:
        if (c / "Makefile").exists():
            return c
        # a /lib/modules/<r>/build symlink is absolute: follow it under root
        try:
            target = os.readlink(c)
        except OSError:
            continue
        if os.path.isabs(target) and (root / target.lstrip("/") / "Makefile").exists():
            return root / target.lstrip("/")
    return None


def headers_package(distro_id: str, release: str, like: str = "") -> str:
    """The package (or install command) that provides the headers of release on this distro."""
    ids = {distro_id, *like.split()}
    if ids & {"debian", "ubuntu", "linuxmint", "pop", "raspbian"}:
        return f"linux-headers-{release}"
    if ids & {"rhel", "centos", "fedora", "rocky", "almalinux", "amzn", "ol"}:
        return f"kernel-devel-{release}"
    if ids & {"sles", "opensuse-leap", "opensuse-tumbleweed", "suse", "opensuse"}:
        return "kernel-default-devel (matching " + release + ")"
    if ids & {"arch", "manjaro"}:
        return "linux-headers"
    if "alpine" in ids:
        return "linux-lts-dev"
    return f"the kernel headers of {release}"


def _kernel_config(root: Path, release: str) -> str:
    text = _read(root / "boot" / f"config-{release}")
    if text:
        return text
    try:
        with gzip.open(root / "proc/config.gz", "rt") as f:
            return f.read()
    except OSError:
        return ""


def _config_has(config: str, opt: str) -> bool | None:
    if not config:
        return None
    return re.search(rf"^{opt}=[ym]$", config, re.M) is not None


def probe_ringbuf() -> bool | None:
    """Creates (and closes) a 4 KiB BPF ring buffer map: True/False, None if not allowed to try."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = (ctypes.c_uint32 * 32)()
    attr[0] = 27      # map_type = BPF_MAP_TYPE_RINGBUF
    attr[1] = 0       # key_size
    attr[2] = 0       # value_size
    attr[3] = 4096    # max_entries = ring size
    nr_bpf = 321 if platform.machine() == "x86_64" else 280
    fd = libc.syscall(ctypes.c_long(nr_bpf), ctypes.c_int(0), attr, ctypes.c_uint(ctypes.sizeof(attr)))
    if fd >= 0:
        os.close(fd)
        return True
    e = ctypes.get_errno()
    if e in (errno.EPERM, errno.EACCES):
        return None
    return False


def module_loaded(root: Path, name: str = "pyfalco") -> tuple[bool, str]:
    d = root / "sys/module" / name
    if not d.exists():
        return False, ""
    return True, _read(d / "version")


def detect(root: Path = Path("/"), release: str | None = None) -> KernelInfo:
    uname = os.uname()
    running = release is None or release == uname.release
    release = release or uname.release
    osr = os_release(root)
    distro_id = osr.get("ID", "unknown")
    config = _kernel_config(root, release)
    notes: list[str] = []

    btf = (root / "sys/kernel/btf/vmlinux").exists() if running else bool(_config_has(config, "CONFIG_DEBUG_INFO_BTF"))
    ringbuf = probe_ringbuf() if running and root == Path("/") else None
    if ringbuf is None:
        ringbuf = _version_tuple(release) >= (5, 8) and _config_has(config, "CONFIG_BPF_SYSCALL") is not False
        notes.append("BPF ring buffer support inferred from the kernel version (not probed)")
    if running:
        modules = (root / "proc/modules").exists()
    else:
        modules = _config_has(config, "CONFIG_MODULES") is not False
    lock = _read(root / "sys/kernel/security/lockdown") if running else ""
    m = re.search(r"\[(\w+)\]", lock)
    lockdown = m.group(1) if m else ("" if not lock else lock)
    sig = _read(root / "sys/module/module/parameters/sig_enforce") == "Y" if running else \
        bool(_config_has(config, "CONFIG_MODULE_SIG_FORCE"))
    if lockdown in ("integrity", "confidentiality"):
        sig = True
    hdr = headers_dir(root, release)
    loaded, loaded_version = module_loaded(root) if running else (False, "")
    info = KernelInfo(release=release, version=uname.version if running else "", machine=uname.machine,
                      running=running, distro_id=distro_id, distro_version=osr.get("VERSION_ID", ""), btf=btf,
                      bpf_ringbuf=bool(ringbuf), modules=modules, lockdown=lockdown or "none", sig_enforce=sig,
                      headers=str(hdr) if hdr else "",
                      headers_package=headers_package(distro_id, release, osr.get("ID_LIKE", "")),
                      dkms=any((Path(p) / "dkms").exists() for p in ("/usr/sbin", "/usr/bin", "/sbin")),
                      loaded=loaded, loaded_version=loaded_version, notes=notes)
    info.recommended = "modern_ebpf" if info.btf and info.bpf_ringbuf else "kmod"
    return info
