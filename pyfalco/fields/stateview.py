# SPDX-License-Identifier: Apache-2.0
"""What the field extractors may ask of the state engine, as typed protocols.

An extractor is a function of one :class:`FieldEvent` (in practice a
:class:`pyfalco.state.event.InspectedEvent`). Everything beyond the event, its thread and its fd
(the thread table, the users, container metadata, paths, port names, a live process's
environment) is reached through ``ie.inspector``, a :class:`StateView`. The
:class:`pyfalco.inspector.Inspector` implements it; so can anything else that holds a state (a
test double, another engine) without the field modules knowing about it. The field modules use
nothing of ``ie.inspector`` that this protocol does not name (tests/unit/test_stateview.py checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the state layer's types, for annotations only
    from ..state.container_info import ContainerInfo
    from ..state.fds import Fd, Interfaces
    from ..state.threads import Thread, ThreadTable
    from ..state.users import UserTable

__all__ = ["StateView", "FieldEvent", "InterfacesView"]


class InterfacesView(Protocol):
    """The parser's knowledge of this machine's addresses (fd.lip/rip, fd.is_server)."""

    interfaces: Interfaces | None


@runtime_checkable
class StateView(Protocol):
    """The state behind an event, as the field extractors see it."""

    #: the thread table: ``threads`` (tid -> Thread), ``parent``, ``ancestors``, ``main_thread``
    threads: ThreadTable
    #: users and groups by the event thread's ids (user.*, group.*)
    users: UserTable
    #: whether /proc of this machine describes the events (read_environ is used only then)
    live: bool
    #: timestamp of the first event (evt.reltime)
    first_ts: int
    #: the machine's hostname (evt.hostname)
    hostname: str
    #: the event parser; fd fields read ``parser.interfaces`` (this machine's addresses)
    parser: InterfacesView

    def container(self, t: Thread) -> ContainerInfo | None:
        """The container metadata of a thread (None outside containers)."""
        ...

    def paths_of(self, ie: Any) -> dict[str, tuple[str, str]]:
        """{"name"|"source"|"target": (normalized, raw)} of a file-path syscall."""
        ...

    def port_name(self, port: int, l4proto: int) -> str | None:
        """The service name of a port (fd.proto)."""
        ...

    def network_of(self, ip: Any) -> Any:
        """The network an address is matched as (fd.net, fd.cnet, ...)."""
        ...

    def ip_name(self, ip: Any) -> str | None:
        """The host name of an address (fd.*ip.name), None when not resolved."""
        ...

    def read_environ(self, t: Thread) -> tuple:
        """The environment of a live process whose exec was not seen (proc.env)."""
        ...


class FieldEvent(Protocol):
    """What an extractor reads: an event after the state engine parsed it."""

    #: the decoded event (pyfalco.events.Event)
    evt: Any
    #: the state behind it
    inspector: StateView
    #: the thread that made it (None if unknown)
    thread: Thread | None
    #: the fd it is about and its number (-1 if none)
    fd: Fd | None
    fdnum: int
    #: fd.name_changed
    name_changed: bool
    #: per-event cache of values that cost a join or a walk
    cache: dict | None
    #: the fds of two-fd events (pipe, socketpair)
    extra: Any
    #: the previous event's timestamp (evt.deltatime)
    prev_ts: int | None
