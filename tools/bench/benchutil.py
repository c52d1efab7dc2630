# SPDX-License-Identifier: Apache-2.0
"""What every benchmark prints first: the machine its figures come from."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model, CPU count, kernel, and the Python running the benchmark."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}")
