# SPDX-License-Identifier: Apache-2.0
"""The host's filesystem as seen from a container: Falco's ``HOST_ROOT`` convention.

An agent in a container reads the host's ``/proc``, ``/etc`` (passwd, group), ``/run`` (container
runtime sockets and task bundles) and ``/var/lib/containers`` where they are mounted under
``$HOST_ROOT`` (``/host`` in pyfalco's image: ``-v /proc:/host/proc:ro`` and so on). With
``HOST_ROOT`` unset, empty or ``/`` every path is used as it is.

The variable is read when a path is asked for; modules that keep a path in a constant (such as
``procscan.PROC``) read it once, at import, like Falco which reads it at start-up.
"""

from __future__ import annotations

import os

__all__ = ["host_root", "host_path"]


def host_root() -> str:
    """``$HOST_ROOT`` without a trailing slash; "" when unset, empty or ``/``."""
    root = os.environ.get("HOST_ROOT", "").rstrip("/")
    return root


def host_path(path: str) -> str:
    """``path`` (absolute, on the host) as this process reaches it: ``$HOST_ROOT`` + ``path``."""
    root = host_root()
    if not root or not path.startswith("/"):
        return path
    return root + path
