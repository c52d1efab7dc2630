# SPDX-License-Identifier: Apache-2.0
"""Kernel-module tests. The host-side files (test_loader.py, test_guest.py) run everywhere
(root); guest/ holds the tests that tools/kmod/guest_session.sh runs inside the qemu guest, where
the module can load: they are collected only there (PYFALCO_IN_GUEST=1)."""

import os

collect_ignore = [] if os.environ.get("PYFALCO_IN_GUEST") == "1" else ["guest"]
