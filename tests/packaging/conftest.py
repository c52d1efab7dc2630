# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures of the packaging tests (the helpers live in packagingtools.py)."""

from packagingtools import fresh_venv, readme_wheel  # noqa: F401
