# SPDX-License-Identifier: Apache-2.0
"""Exception hierarchy of pyfalco: one base class, translated once at each boundary."""

from __future__ import annotations

from collections.abc import Iterable


class PyFalcoError(Exception):
    """Base class of every error pyfalco raises on purpose."""


class NativeError(PyFalcoError, OSError):
    """libpyfalco returned a negative errno; ``str()`` carries the library's message."""


class DriverUnavailableError(NativeError):
    """The driver cannot run here (no BTF, no BPF ring buffer, kernel module not loaded)."""


class DriverPermissionError(NativeError):
    """The driver needs privileges this process lacks: root, or CAP_BPF and CAP_PERFMON (or
    CAP_SYS_ADMIN) for modern_ebpf; the message names the ones missing."""


class AbiMismatchError(PyFalcoError, ImportError):
    """libpyfalco is missing, or disagrees with the Python package on the ABI version or a symbol
    (raised while importing ``pyfalco._native``: an ImportError naming the file and the symbol)."""


class CaptureClosedError(PyFalcoError, ValueError):
    """An operation on a capture that was already closed."""


class EventDecodeError(PyFalcoError, ValueError):
    """A malformed event record: carries the byte offset and the event type when known."""

    def __init__(self, message: str, offset: int | None = None, event_type: int | None = None):
        super().__init__(message)
        self.offset = offset
        self.event_type = event_type


class CaptureFileError(PyFalcoError, ValueError):
    """A malformed or unreadable capture file: the message names the offset."""


class RuleError(PyFalcoError):
    """Base class of rule-language errors."""


class ConfigError(PyFalcoError, ValueError):
    """A malformed configuration: the message names the key."""


class UnknownFieldError(PyFalcoError, ValueError):
    """A field name no provider knows (``ie.get("proc.nmae")``); the message suggests close names
    (``suggestions``) and ``field`` is the name asked for."""

    def __init__(self, name: str, known: Iterable[str] = ()):
        import difflib
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        super().__init__(f"unknown field {name!r}{hint}")
        self.field = name
        self.suggestions = close
