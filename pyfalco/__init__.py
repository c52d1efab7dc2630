# SPDX-License-Identifier: Apache-2.0
"""pyfalco: cloud-native runtime security (Falco's job) as an embeddable Python library.

``pyfalco.Capture`` reads events from the eBPF driver, the kernel module or a capture file;
``pyfalco.Inspector`` keeps process/fd/user/container state and serves Falco's fields;
``pyfalco.rules`` loads and evaluates Falco rules; ``pyfalco.Engine`` runs rules over event
sources and delivers ``pyfalco.Alert`` objects (docs/api.md). The native library is loaded on first use of
the capture API, so the rule engine works without it.
"""

from __future__ import annotations

import logging

from .errors import (AbiMismatchError, CaptureClosedError, CaptureFileError, ConfigError, DriverPermissionError,
                     DriverUnavailableError, EventDecodeError, NativeError, PyFalcoError, RuleError)

__version__ = "0.1.0"

# a library logs, the application decides where it goes
logging.getLogger("pyfalco").addHandler(logging.NullHandler())

__all__ = ["Capture", "Event", "Engine", "EventSource", "SyscallSource", "Inspector", "Alert", "state_syscalls",
           "AbiMismatchError", "CaptureClosedError", "CaptureFileError", "ConfigError",
           "DriverPermissionError", "DriverUnavailableError", "EventDecodeError", "NativeError", "PyFalcoError",
           "RuleError", "__version__"]


def __getattr__(name: str):
    if name == "Capture":
        from .capture import Capture  # AbiMismatchError (an ImportError) when libpyfalco is unusable
        return Capture
    if name == "Event":
        from .events import Event
        return Event
    if name in ("Engine", "EventSource", "SyscallSource"):
        from . import engine
        return getattr(engine, name)
    if name == "Inspector":
        from .inspector import Inspector
        return Inspector
    if name == "Alert":
        from .outputs.alert import Alert
        return Alert
    if name == "state_syscalls":
        from .capture import state_syscalls
        return state_syscalls
    raise AttributeError(f"module 'pyfalco' has no attribute {name!r}")
