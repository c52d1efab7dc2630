# SPDX-License-Identifier: Apache-2.0
"""Builds, loads, unloads and removes the pyfalco kernel module.

Build: the module's sources (kmod/ and the driver/abi headers) are copied into a work
directory and built there with kbuild against the release's headers, or handed to DKMS
(``/usr/src/pyfalco-<version>`` + ``dkms install``). Load and unload use the finit_module and
delete_module system calls directly, so that their errno says precisely what went wrong (no
module support, lockdown, a module built for another kernel, bad parameters, in use) and no
kmod tools are needed in a minimal container.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from .detect import KernelInfo

MODULE = "pyfalco"
# keep in step with driver/abi/pyfalco_abi.h (PYFALCO_API_VERSION_*): the module's version
HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = Path(os.environ.get("PYFALCO_KMOD_WORKDIR", "/var/lib/pyfalco/kmod"))


class LoaderError(RuntimeError):
    """A step failed; the message says what to do about it. exit_code: the CLI's status."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def source_dir(explicit: str | None = None) -> tuple[Path, Path]:
    """(kmod sources, abi headers): --src / $PYFALCO_KMOD_SRC (a directory with the module's files
    and an abi/ subdirectory, or a checkout's kmod/), the copy installed in the package
    (pyfalco/driver_loader/kmod_src), or the source checkout this package runs from."""
    cands = []
    for c in (explicit, os.environ.get("PYFALCO_KMOD_SRC")):
        if c:
            cands.append(Path(c))
    cands += [HERE / "kmod_src", HERE.parents[1] / "kmod"]
    for c in cands:
        if not (c / "Kbuild").exists():
            continue
        for abi in (c / "abi", c.parent / "driver" / "abi"):
            if (abi / "pyfalco_abi.h").exists():
                return c, abi
    raise LoaderError("the kernel module's sources were not found (looked in: " + ", ".join(map(str, cands)) +
                      "); pass --src DIR (a checkout's kmod/ directory)")


def api_version(abi: Path) -> str:
    text = (abi / "pyfalco_abi.h").read_text()
    parts = [re.search(rf"#define PYFALCO_API_VERSION_{k} (\d+)", text).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def stage_sources(src: Path, abi: Path, dest: Path) -> Path:
    """Copies the module's sources and the ABI headers into dest (fresh), returns dest."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "abi").mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix in (".c", ".h") or f.name in ("Kbuild", "Makefile", "dkms.conf"):
            shutil.copy2(f, dest / f.name)
    for f in abi.glob("*.h"):
        shutil.copy2(f, dest / "abi" / f.name)
    return dest


def check_can_build(info: KernelInfo) -> None:
    if not info.headers:
        raise LoaderError(
            f"no kernel headers for {info.release}: install them ({_install_hint(info)}) or pass "
            "--headers DIR (a kbuild tree, e.g. /usr/src/linux-headers-<release>); in a container, "
            "mount the host's /usr/src and /lib/modules", exit_code=3)
    if not shutil.which("make") or not (shutil.which("gcc") or shutil.which("cc")):
        raise LoaderError("building the module needs make and gcc: install build-essential (Debian/Ubuntu) "
                          "or make and gcc", exit_code=3)


def _install_hint(info: KernelInfo) -> str:
    pkg = info.headers_package
    if info.distro_id in ("debian", "ubuntu"):
        return f"apt-get install {pkg}"
    if info.distro_id in ("rhel", "centos", "fedora", "rocky", "almalinux", "amzn", "ol"):
        return f"dnf install {pkg}"
    return pkg


def build_kbuild(info: KernelInfo, src: Path, abi: Path, workdir: Path) -> Path:
    """Builds pyfalco.ko for info.release in workdir/<api>/<release>; returns the .ko path."""
    check_can_build(info)
    dest = stage_sources(src, abi, (workdir / api_version(abi) / info.release).resolve())
    proc = subprocess.run(["make", "-C", info.headers, f"M={dest}", "modules"], capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (dest / "build.log").write_text(log)
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise LoaderError(f"building the module for {info.release} failed (log: {dest / 'build.log'}):\n{tail}",
                          exit_code=4)
    ko = dest / f"{MODULE}.ko"
    if not ko.exists():
        raise LoaderError(f"the build produced no {ko}", exit_code=4)
    return ko


def build_dkms(info: KernelInfo, src: Path, abi: Path) -> Path:
    """Registers the sources with DKMS as pyfalco/<api> and builds + installs for info.release."""
    check_can_build(info)
    if not shutil.which("dkms"):
        raise LoaderError("--dkms needs dkms: apt-get install dkms (Debian/Ubuntu) or dnf install dkms", exit_code=3)
    ver = api_version(abi)
    dest = stage_sources(src, abi, Path("/usr/src") / f"{MODULE}-{ver}")
    conf = (src / "dkms.conf").read_text() if (src / "dkms.conf").exists() else DKMS_CONF
    (dest / "dkms.conf").write_text(re.sub(r'PACKAGE_VERSION="[^"]*"', f'PACKAGE_VERSION="{ver}"', conf))
    subprocess.run(["dkms", "remove", "-m", MODULE, "-v", ver, "--all"], capture_output=True)
    for cmd in (["dkms", "add", "-m", MODULE, "-v", ver],
                ["dkms", "build", "-m", MODULE, "-v", ver, "-k", info.release, "--kernelsourcedir", info.headers],
                ["dkms", "install", "-m", MODULE, "-v", ver, "-k", info.release, "--force"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log = Path("/var/lib/dkms") / MODULE / ver / "build" / "make.log"
            raise LoaderError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr).strip()[-1500:]}"
                              + (f"\n(make log: {log})" if log.exists() else ""), exit_code=4)
    out = subprocess.run(["modinfo", "-k", info.release, "-n", MODULE], capture_output=True, text=True)
    path = Path(out.stdout.strip()) if out.returncode == 0 else None
    if path and path.exists():
        return path
    for p in (Path("/lib/modules") / info.release).glob(f"updates/dkms/{MODULE}.ko*"):
        return p
    raise LoaderError("dkms installed the module but it cannot be found under /lib/modules", exit_code=4)


# kmod/dkms.conf, for sources that come without it
DKMS_CONF = """PACKAGE_NAME="pyfalco"
PACKAGE_VERSION="0"
BUILT_MODULE_NAME[0]="pyfalco"
DEST_MODULE_LOCATION[0]="/updates/dkms"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build modules"
CLEAN="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build clean"
AUTOINSTALL="yes"
"""

# --- load / unload -----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR = {"x86_64": {"finit_module": 313, "delete_module": 176}, "aarch64": {"finit_module": 273, "delete_module": 106}}


def _nr(name: str) -> int:
    try:
        return _NR[platform.machine()][name]
    except KeyError:
        raise LoaderError(f"unsupported architecture {platform.machine()}") from None


PARAM_RE = re.compile(r"^[a-z_][a-z0-9_]*=[^\s]+$")


def load(ko: Path, params: list[str], info: KernelInfo) -> None:
    """finit_module(ko, params): errors become LoaderErrors that say why and what to do."""
    for p in params:
        if not PARAM_RE.match(p):
            raise LoaderError(f"bad module parameter {p!r}: expected name=value (see `modinfo {ko}`)", exit_code=2)
    if not info.modules:
        raise LoaderError(f"kernel {info.release} does not load modules (no CONFIG_MODULES): use the "
                          "modern_ebpf driver" + ("" if info.btf else " (needs BTF: this kernel has none)"),
                          exit_code=5)
    declared = module_params(ko)
    for p in params:
        name = p.split("=", 1)[0]
        if declared and name not in declared:
            raise LoaderError(f"unknown module parameter {name!r} (it has: {', '.join(sorted(declared))})", exit_code=2)
    built_for = vermagic(ko)
    if info.running and built_for and built_for != info.release:
        raise LoaderError(f"{ko} was built for kernel {built_for}, this one is {info.release}: rebuild it for "
                          f"the running kernel (pyfalco-driver-loader kmod), or boot {built_for}", exit_code=5)
    try:
        fd = os.open(ko, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise LoaderError(f"opening {ko}: {e.strerror}") from e
    try:
        rc = _libc.syscall(ctypes.c_long(_nr("finit_module")), ctypes.c_int(fd), ctypes.c_char_p(" ".join(params).encode()),
                           ctypes.c_int(0))
        err = ctypes.get_errno() if rc < 0 else 0
    finally:
        os.close(fd)
    if not err:
        return
    raise LoaderError(_load_error(err, ko, params, info), exit_code=5 if err != errno.EINVAL else 2)


def vermagic(ko: Path) -> str:
    """The kernel release a .ko was built for (first word of its vermagic), "" if unreadable."""
    try:
        data = ko.read_bytes()
    except OSError:
        return ""
    m = re.search(rb"vermagic=([^\s\x00]+)", data)
    return m.group(1).decode(errors="replace") if m else ""


def module_params(ko: Path) -> set[str]:
    """The parameters a .ko declares (its modinfo parm= entries); empty if unreadable."""
    try:
        data = ko.read_bytes()
    except OSError:
        return set()
    return {m.decode() for m in re.findall(rb"\x00parm=([A-Za-z0-9_]+):", data)}


def _load_error(err: int, ko: Path, params: list[str], info: KernelInfo) -> str:
    what = f"loading {ko}"
    if err == errno.EEXIST:
        return f"{what}: the pyfalco module is already loaded (pyfalco-driver-loader unload first)"
    if err == errno.EPERM:
        if info.lockdown in ("integrity", "confidentiality"):
            return (f"{what}: refused by kernel lockdown ({info.lockdown}, usually Secure Boot): unsigned modules "
                    "cannot load; sign the module with a key enrolled in MOK, or use the modern_ebpf driver")
        return f"{what}: operation not permitted (needs root / CAP_SYS_MODULE; in a container, --privileged)"
    if err in (errno.ENOKEY, errno.EKEYREJECTED, errno.EBADMSG) or (err == errno.EACCES and info.sig_enforce):
        return (f"{what}: the kernel requires signed modules (module.sig_enforce / Secure Boot): sign it with "
                "a key the kernel trusts (MOK), or use the modern_ebpf driver")
    if err == errno.ENOEXEC:
        return (f"{what}: not a module for this kernel ({os.uname().release}): it was built for another kernel; "
                "rebuild it: pyfalco-driver-loader kmod --compile")
    if err == errno.EINVAL:
        return (f"{what}: the kernel rejected it: invalid parameters {' '.join(params) or '(none)'} "
                "(see the kernel log and `modinfo` for the accepted ones), or a module built for another kernel")
    if err == errno.ENOSYS:
        return f"{what}: this kernel has no module support: use the modern_ebpf driver"
    if err == errno.ENOENT:
        return f"{what}: a symbol or tracepoint the module needs is missing from this kernel (see the kernel log)"
    return f"{what}: {os.strerror(err)}"


def unload(force_wait: bool = False) -> bool:
    """delete_module(pyfalco): False if it was not loaded; LoaderError if in use."""
    flags = 0 if force_wait else os.O_NONBLOCK
    rc = _libc.syscall(ctypes.c_long(_nr("delete_module")), ctypes.c_char_p(MODULE.encode()), ctypes.c_uint(flags))
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOENT, errno.ENOSYS):  # not loaded; no module support at all
        return False
    if err in (errno.EWOULDBLOCK, errno.EBUSY):
        users = refcount()
        raise LoaderError(f"unloading the pyfalco module: it is in use ({users} open capture(s)); stop the "
                          "captures (close every pyfalco engine.kind=kmod) and retry", exit_code=6)
    if err == errno.EPERM:
        raise LoaderError("unloading the pyfalco module: operation not permitted (needs root / CAP_SYS_MODULE)",
                          exit_code=5)
    raise LoaderError(f"unloading the pyfalco module: {os.strerror(err)}")


def refcount(root: Path = Path("/")) -> int:
    try:
        return int((root / "sys/module" / MODULE / "refcnt").read_text())
    except (OSError, ValueError):
        return 0


def params_of_loaded(root: Path = Path("/")) -> dict[str, str]:
    d = root / "sys/module" / MODULE / "parameters"
    out = {}
    if d.is_dir():
        for p in sorted(d.iterdir()):
            try:
                out[p.name] = p.read_text().strip()
            except OSError:
                pass
    return out


def cleanup(workdir: Path, info: KernelInfo) -> list[str]:
    """Unloads the module (unless in use), removes built copies and DKMS registrations."""
    done = []
    if unload():
        done.append("unloaded the pyfalco module")
    if workdir.exists():
        shutil.rmtree(workdir)
        done.append(f"removed {workdir}")
    if shutil.which("dkms"):
        out = subprocess.run(["dkms", "status", "-m", MODULE], capture_output=True, text=True).stdout
        for ver in sorted(set(re.findall(rf"{MODULE}[/,]\s*([^,:\s]+)", out))):
            subprocess.run(["dkms", "remove", "-m", MODULE, "-v", ver, "--all"], capture_output=True)
            shutil.rmtree(Path("/usr/src") / f"{MODULE}-{ver}", ignore_errors=True)
            done.append(f"removed DKMS {MODULE}/{ver}")
    return done
