# SPDX-License-Identifier: Apache-2.0
"""Capture files (.scap): the initial state from their metadata, and the writer.

Replay itself is an engine of libpyfalco: ``pyfalco.Capture(engine="replay", capture_file=...)``.
See docs/capture-files.md.
"""

from __future__ import annotations

from .metadata import blocks_from_initial_state, initial_state_from_blocks, read_initial_state
from .writer import CaptureWriter, record

__all__ = ["CaptureWriter", "record", "read_initial_state", "initial_state_from_blocks",
           "blocks_from_initial_state"]
