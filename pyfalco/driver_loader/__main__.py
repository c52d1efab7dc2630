# SPDX-License-Identifier: Apache-2.0
"""python -m pyfalco.driver_loader: the same as the pyfalco-driver-loader command."""

import sys

from . import main

sys.exit(main())
