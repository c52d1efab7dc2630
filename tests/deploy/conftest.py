# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures of the deployment tests (the helpers live in deploytools.py)."""

from deploytools import marker, pyfalco_image  # noqa: F401
