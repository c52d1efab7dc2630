# SPDX-License-Identifier: Apache-2.0
"""The state engine: thread table (threads.py), fd tables (fds.py), the event parser that keeps
them (parser.py), users/groups (users.py), containers and pods (cgroups.py; the model in
container_info.py, its lookups in containers.py and, from the CRI runtime, container_cri.py over the
client cri.py and its wire layers in wire/). ``pyfalco.inspector.Inspector`` puts them together over
a capture."""

from .event import InspectedEvent
from .fds import Fd
from .parser import StateParser
from .threads import Proc, Thread, ThreadTable

__all__ = ["InspectedEvent", "Fd", "StateParser", "Thread", "ThreadTable", "Proc"]
