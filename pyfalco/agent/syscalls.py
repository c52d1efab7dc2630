# SPDX-License-Identifier: Apache-2.0
"""The syscall selection (Falco's ``base_syscalls``) lives in :mod:`pyfalco.syscalls`, below the
engine (it depends only on the event table); these names stay importable from here."""

from pyfalco.syscalls import (DRIVER_SET, IGNORED_SET, REPAIR_SET, STATE_SET, Selection, select_syscalls,
                              syscall_names_of_events)

__all__ = ["STATE_SET", "IGNORED_SET", "REPAIR_SET", "DRIVER_SET", "Selection", "select_syscalls",
           "syscall_names_of_events"]
