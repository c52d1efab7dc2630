# SPDX-License-Identifier: Apache-2.0
"""Which syscalls the driver is asked for: the rules' event types plus the state set (the engine,
the agent and ``pyfalco.capture.state_syscalls`` use it; it depends only on the event table).

Falco's ``base_syscalls`` semantics:

* default: rules' syscalls (minus the I/O ones Falco ignores) + the state set (syscalls whose
  events modify process/fd state, flagged MODIFIES_STATE in the event table, plus the
  never-dropped prlimit64 and setrlimit);
* ``custom_set: [a, b, !c]``: rules' syscalls + the named ones instead of the state set
  (``!name`` removes a syscall from the final set, whatever added it);
* ``repair: true``: with custom_set, also the minimal set that keeps process state sound;
* ``all: true``: every syscall the driver can capture, I/O included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from pyfalco import _schema

__all__ = ["STATE_SET", "IGNORED_SET", "REPAIR_SET", "DRIVER_SET", "Selection", "select_syscalls",
           "syscall_names_of_events"]

_SYSCALL_NAMES = frozenset(_schema.SYSCALL_NUMBERS)
_SYSCALL_OF_EVENT = {}
for _nr, _code in _schema.SYSCALL_EVENT.items():
    _SYSCALL_OF_EVENT.setdefault(_schema.EVENTS[_code].name, set()).add(_schema.SYSCALL_NAMES.get(_nr))


def syscall_names_of_events(names: Iterable[str]) -> tuple[frozenset, frozenset]:
    """Event type names (``open``, ``procexit``, ``umount``) -> (syscall names, names that are
    not syscalls: tracepoints, metaevents, plugin events)."""
    sc, other = set(), set()
    for name in names:
        if name in _SYSCALL_NAMES:
            sc.add(name)
        elif name in _SYSCALL_OF_EVENT:
            sc.update(n for n in _SYSCALL_OF_EVENT[name] if n)
        else:
            other.add(name)
    return frozenset(sc), frozenset(other)


def _state_set() -> frozenset:
    names = set()
    for e in _schema.EVENTS:
        if "MODIFIES_STATE" in e.flags and e.category & {"SYSCALL", "TRACEPOINT"} and "OLD_VERSION" not in e.flags:
            names.add(e.name)
    sc, _ = syscall_names_of_events(names)
    return sc | {"prlimit64", "setrlimit"}


#: syscalls Falco always collects to keep process and fd state (FALCO_REFERENCE 2.3)
STATE_SET: frozenset = _state_set()
#: syscalls Falco ignores by default (I/O), ``falco -i``
IGNORED_SET: frozenset = syscall_names_of_events(
    e.name for e in _schema.EVENTS if e.category & {"IO_READ", "IO_WRITE"})[0] - STATE_SET
#: the smallest set that keeps process lifecycle, identity and cwd right (base_syscalls.repair)
REPAIR_SET: frozenset = frozenset((
    "clone", "clone3", "fork", "vfork", "execve", "execveat", "close", "setuid", "setgid", "setreuid",
    "setregid", "setresuid", "setresgid", "setsid", "capset", "prctl", "chdir", "fchdir", "chroot",
    "dup", "dup2", "dup3", "fcntl", "close_range"))
#: what the pyfalco drivers can capture
DRIVER_SET: frozenset = frozenset(_schema.SYSCALL_NAMES[n] for n in _schema.DRIVER_SYSCALLS)


@dataclass
class Selection:
    """The outcome: ``syscalls`` go to the driver; the rest explains how they were chosen."""

    syscalls: frozenset
    rules: frozenset                      # syscalls the rules need
    state: frozenset                      # what the base set added
    other_events: frozenset = frozenset()  # rule event types that are not syscalls (procexit, ...)
    ignored_in_rules: frozenset = frozenset()   # I/O syscalls of the rules left out (all: false)
    unsupported: frozenset = frozenset()        # wanted, but the driver cannot capture them
    removed: frozenset = frozenset()            # taken out by !name
    warnings: list = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"Syscalls requested from the driver ({len(self.syscalls)}):",
                 "  " + " ".join(sorted(self.syscalls)),
                 f"  from the rules ({len(self.rules)}): " + " ".join(sorted(self.rules)),
                 f"  for state ({len(self.state)}): " + " ".join(sorted(self.state))]
        if self.other_events:
            lines.append("  rule events that are not syscalls: " + " ".join(sorted(self.other_events)))
        if self.ignored_in_rules:
            lines.append("  ignored I/O syscalls used by rules (base_syscalls.all=true to capture them): "
                         + " ".join(sorted(self.ignored_in_rules)))
        if self.unsupported:
            lines.append("  not captured by the pyfalco driver: " + " ".join(sorted(self.unsupported)))
        if self.removed:
            lines.append("  removed by base_syscalls.custom_set: " + " ".join(sorted(self.removed)))
        return "\n".join(lines)


def select_syscalls(rule_event_types: Iterable[str], base_syscalls: dict | None = None,
                    driver_set: frozenset = DRIVER_SET) -> Selection:
    """Compute the syscall selection for the given rule event types and base_syscalls config."""
    base = base_syscalls or {}
    custom = [str(x).strip() for x in base.get("custom_set") or []]
    add = {x for x in custom if x and not x.startswith("!")}
    remove = {x[1:].strip() for x in custom if x.startswith("!")}
    warnings = []
    rules_sc, other = syscall_names_of_events(rule_event_types)
    add_sc, add_other = syscall_names_of_events(add)
    rm_sc, rm_other = syscall_names_of_events(remove)
    for bad in sorted(add_other | rm_other):
        warnings.append(f"base_syscalls.custom_set: {bad!r} is not a syscall (ignored)")
    ignored_in_rules = frozenset()
    if base.get("all"):
        state = frozenset(driver_set)
        chosen = set(driver_set) | rules_sc
    else:
        ignored_in_rules = rules_sc & IGNORED_SET
        rules_eff = rules_sc - IGNORED_SET
        if add:
            state = frozenset(add_sc | (REPAIR_SET if base.get("repair") else frozenset()))
        else:
            state = STATE_SET
        chosen = set(rules_eff) | state
    chosen -= rm_sc
    unsupported = frozenset(chosen - driver_set)
    chosen &= driver_set
    return Selection(frozenset(chosen), rules_sc, state, other, ignored_in_rules, unsupported,
                     frozenset(rm_sc), warnings)
