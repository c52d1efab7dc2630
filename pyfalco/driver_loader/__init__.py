# SPDX-License-Identifier: Apache-2.0
"""pyfalco-driver-loader: picks, builds and loads the driver for this kernel.

    pyfalco-driver-loader detect [--json]          what the kernel supports, which driver fits
    pyfalco-driver-loader [auto]                    modern_ebpf when BTF and BPF ring buffers
                                                    exist (nothing to install), else the module
    pyfalco-driver-loader kmod [--dkms] [-p k=v]    build the module for the kernel and load it
    pyfalco-driver-loader modern_ebpf               check the eBPF driver can run (embedded)
    pyfalco-driver-loader build [--dkms]            build only (prints the .ko path)
    pyfalco-driver-loader load [--ko F] [-p k=v]    load a built module
    pyfalco-driver-loader unload | status | cleanup

Common options: --kernel-release R (build for another kernel; implies no load), --headers DIR
(a kbuild tree), --host-root DIR (the host's /etc, /usr/src, /lib/modules, /sys, /boot mounted
there, when run in a container; default $HOST_ROOT or /), --src DIR (module sources),
--workdir DIR (build output; default /var/lib/pyfalco/kmod).

Exit status: 0 ok, 1 other failure, 2 bad arguments or module parameters, 3 missing build
prerequisites (headers, compiler, dkms), 4 build failure, 5 the kernel refused the module
(no module support, lockdown, signature, wrong kernel), 6 module in use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import detect as _probe
from . import kmod as _kmod
from .detect import KernelInfo
from .kmod import LoaderError

__all__ = ["main", "run", "KernelInfo", "LoaderError"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyfalco-driver-loader",
                                 description="Pick, build and load the pyfalco driver for this kernel.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("action", nargs="?", default="auto",
                    choices=["auto", "kmod", "modern_ebpf", "detect", "build", "load", "unload", "status",
                             "cleanup"])
    ap.add_argument("--kernel-release", help="the kernel to build for (default: the running one)")
    ap.add_argument("--headers", help="kbuild tree of the kernel (default: found under the host root)")
    ap.add_argument("--host-root", default=os.environ.get("HOST_ROOT", "/"))
    ap.add_argument("--src", help="the module's sources (a checkout's kmod/ directory)")
    ap.add_argument("--workdir", default=str(_kmod.DEFAULT_WORKDIR))
    ap.add_argument("--dkms", action="store_true", help="build and install with DKMS instead of plain kbuild")
    ap.add_argument("--ko", help="load this module file instead of building one")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="module parameter (max_consumers, max_buffer_bytes, verbose); repeatable")
    ap.add_argument("--no-load", action="store_true", help="kmod/auto: build only")
    ap.add_argument("--json", action="store_true", help="detect/status: machine-readable output")
    return ap


def _say(msg: str) -> None:
    print(f"pyfalco-driver-loader: {msg}", flush=True)


def _info(args) -> KernelInfo:
    info = _probe.detect(Path(args.host_root), args.kernel_release)
    if args.headers:
        if not (Path(args.headers) / "Makefile").exists():
            raise LoaderError(f"--headers {args.headers}: not a kbuild tree (no Makefile there)", exit_code=3)
        info.headers = args.headers
    return info


def _build(args, info: KernelInfo) -> Path:
    src, abi = _kmod.source_dir(args.src)
    if args.dkms:
        _say(f"building the module for {info.release} with DKMS ({info.headers or 'no headers'})")
        return _kmod.build_dkms(info, src, abi)
    _say(f"building the module for {info.release} with kbuild ({info.headers or 'no headers'})")
    return _kmod.build_kbuild(info, src, abi, Path(args.workdir))


def _kmod_flow(args, info: KernelInfo) -> int:
    if info.running and not info.modules:
        raise LoaderError(f"kernel {info.release} does not load modules (CONFIG_MODULES is off): use the "
                          "modern_ebpf driver" + ("" if info.btf else " (it needs BTF, which this kernel lacks)"),
                          exit_code=5)
    ko = Path(args.ko) if args.ko else _build(args, info)
    _say(f"module: {ko}")
    if args.no_load or args.action == "build":
        print(ko)
        return 0
    if not info.running:
        _say(f"built for {info.release}, which is not the running kernel ({os.uname().release}): not loading it")
        return 0
    if info.loaded:
        _say(f"the module is loaded (version {info.loaded_version or '?'}): replacing it")
        _kmod.unload()
    _kmod.load(ko, args.param, info)
    _say("loaded; /dev/pyfalco is ready (pyfalco -o engine.kind=kmod)")
    return 0


def _status(args) -> int:
    root = Path(args.host_root)
    info = _info(args)
    st = {"recommended": info.recommended, "loaded": info.loaded, "version": info.loaded_version,
          "in_use": _kmod.refcount(root) if info.loaded else 0,
          "parameters": _kmod.params_of_loaded(root) if info.loaded else {},
          "device": (root / "dev/pyfalco").exists()}
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
    else:
        if info.loaded:
            params = " ".join(f"{k}={v}" for k, v in st["parameters"].items())
            print(f"pyfalco module: loaded, version {st['version']}, {st['in_use']} capture(s) using it, {params}")
        else:
            print("pyfalco module: not loaded")
        print(f"device /dev/pyfalco: {'present' if st['device'] else 'absent'}")
        print(f"recommended driver for {info.release}: {info.recommended}")
    return 0


def _detect(args) -> int:
    info = _info(args)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2, sort_keys=True))
        return 0
    for k, v in info.as_dict().items():
        if k == "notes":
            for n in v:
                print(f"note: {n}")
            continue
        print(f"{k}: {v}")
    return 0


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "detect":
        return _detect(args)
    if args.action == "status":
        return _status(args)
    if args.action in ("unload", "cleanup", "load", "kmod", "build", "auto") and os.geteuid() != 0 \
            and not (args.action in ("build", "auto", "kmod") and (args.no_load or args.kernel_release)):
        raise LoaderError(f"{args.action} needs root", exit_code=5)
    if args.action == "unload":
        _say("unloaded the pyfalco module" if _kmod.unload() else "the pyfalco module is not loaded")
        return 0
    if args.action == "cleanup":
        info = _info(args)
        for line in _kmod.cleanup(Path(args.workdir), info) or ["nothing to clean up"]:
            _say(line)
        return 0
    info = _info(args)
    if args.action == "load":
        if not args.ko:
            raise LoaderError("load needs --ko FILE (or use `kmod`, which builds then loads)", exit_code=2)
        _kmod.load(Path(args.ko), args.param, info)
        _say("loaded")
        return 0
    if args.action == "modern_ebpf" or (args.action == "auto" and info.recommended == "modern_ebpf"):
        if not info.btf or not info.bpf_ringbuf:
            missing = [n for n, ok in (("BTF (/sys/kernel/btf/vmlinux)", info.btf),
                                       ("BPF ring buffers (kernel >= 5.8)", info.bpf_ringbuf)) if not ok]
            raise LoaderError(f"the modern_ebpf driver cannot run on {info.release}: no {' and no '.join(missing)}; "
                              "use the kernel module: pyfalco-driver-loader kmod", exit_code=5)
        _say(f"{info.release} has BTF and BPF ring buffers: use the modern_ebpf driver (embedded in "
             "libpyfalco, nothing to install): pyfalco -o engine.kind=modern_ebpf")
        return 0
    if args.action == "auto":
        _say(f"{info.release}: no " + ("BTF" if not info.btf else "BPF ring buffers") +
             ": falling back to the kernel module")
    return _kmod_flow(args, info)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (pyfalco-driver-loader)."""
    try:
        return run(argv)
    except LoaderError as err:
        print(f"pyfalco-driver-loader: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
