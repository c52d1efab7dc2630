# SPDX-License-Identifier: Apache-2.0
"""Helpers of the deployment tests: pyfalco's container image (built by tools/build-image when
this machine does not have it at the checkout's content hash), and a reader of the agent's JSON
alerts from a podman process's output."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE = REPO / "tools" / "build-image"


def podman(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *map(str, args)], check=check, capture_output=True, text=True,
                          timeout=timeout)


def repo_version() -> str:
    return re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="session")
def pyfalco_image() -> str:
    """``localhost/pyfalco:<version>``, built (or found up to date) by tools/build-image."""
    r = subprocess.run([str(BUILD_IMAGE)], capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert r.returncode == 0, f"tools/build-image failed:\n{r.stderr[-4000:]}"
    ref = r.stdout.strip().splitlines()[-1]
    assert ref == f"localhost/pyfalco:{repo_version()}"
    return ref


@pytest.fixture
def marker() -> str:
    """A word no other process on the machine has in its command line."""
    return "pyfalco" + uuid.uuid4().hex[:10]


class AlertReader:
    """Collects the JSON alert lines of a process (``podman run``/``podman logs -f``) on a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.alerts: list[dict] = []
        self.lines: queue.Queue = queue.Queue()
        self.other: list[str] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            try:
                obj = json.loads(line) if line.startswith("{") else None
            except ValueError:
                obj = None
            with self._lock:
                if isinstance(obj, dict) and "rule" in obj:
                    self.alerts.append(obj)
                else:
                    self.other.append(line)

    def find(self, pred) -> list[dict]:
        with self._lock:
            return [a for a in self.alerts if pred(a)]

    def wait_for(self, pred, act=None, timeout: float = 90.0, every: float = 2.0) -> dict | None:
        """The first alert matching ``pred``; ``act()`` is repeated every ``every`` seconds until one
        arrives (the agent may still be starting), for at most ``timeout`` seconds."""
        end = time.monotonic() + timeout
        next_act = 0.0
        while time.monotonic() < end:
            hits = self.find(pred)
            if hits:
                return hits[0]
            if self.proc.poll() is not None and not self.thread.is_alive():
                return None
            if act is not None and time.monotonic() >= next_act:
                act()
                next_act = time.monotonic() + every
            time.sleep(0.1)
        hits = self.find(pred)
        return hits[0] if hits else None

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.other[-60:])


def has_marker(marker: str):
    return lambda a: marker in ((a.get("output_fields") or {}).get("proc.cmdline") or "")


def readme_block(heading: str) -> str:
    """The first ```sh block after the line ``heading`` in README.md, before the next heading."""
    text = (REPO / "README.md").read_text()
    m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#)", text, re.M | re.S)
    assert m, f"no section {heading!r} in README.md"
    block = re.search(r"^```sh\n(.*?)^```", m.group(1), re.M | re.S)
    assert block, f"no ```sh block under {heading!r} in README.md"
    return block.group(1)
