# SPDX-License-Identifier: Apache-2.0
"""Helpers and fixtures of the packaging tests (conftest.py imports the fixtures; a unique module
name, as tests/agent/agenttools.py, so no other conftest shadows it).

The wheel as a user gets it: the README's "Install / Wheel" block, run as written in a clean copy
of the checkout (tracked and unignored files of the working tree, so nothing built in the checkout
is reused: the wheel is compiled from scratch, as on a fresh machine), with HOME in a temporary
folder. Its wheel is what the packaging tests install into fresh virtual environments."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_block(heading: str) -> str:
    """The first ```sh fenced block after ``heading`` (a whole line) in README.md, before the next
    heading of the same or a higher level."""
    text = (REPO / "README.md").read_text()
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    nxt = re.search(r"(?m)^#{1,%d} " % level, text[start:])
    section = text[start:start + nxt.start()] if nxt else text[start:]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, f"no ```sh block under {heading!r} in README.md"
    return m.group(1)


def clean_env(home: Path) -> dict:
    """The environment of a user's shell: no PYTHONPATH/virtualenv of the test run, the checkout's
    .venv off PATH, HOME in the test's folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYFALCO_LIBRARY", "PYTHONHOME") and not k.startswith("PYTEST")}
    venv_bin = str(REPO / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin)
    env["HOME"] = str(home)
    return env


def copy_checkout(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    dest.mkdir(parents=True)
    tar = dest.parent / "checkout.tar"
    with tarfile.open(tar, "w") as tf:
        for f in files:
            name = f.decode()
            if name and os.path.lexists(REPO / name):   # a tracked file deleted in the working tree
                tf.add(REPO / name, arcname=name, recursive=False)
    with tarfile.open(tar) as tf:
        if hasattr(tarfile, "fully_trusted_filter"):   # Python >= 3.12 (and 3.11.4+): our own files
            tf.extractall(dest, filter="fully_trusted")
        else:
            tf.extractall(dest)
    tar.unlink()


@dataclass
class InstalledWheel:
    src: Path            # the clean copy the wheel was built from
    wheel: Path          # dist/pyfalco-*.whl
    home: Path           # HOME of the README block (its venv: home/pyfalco)
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def readme_wheel(tmp_path_factory) -> InstalledWheel:
    root = tmp_path_factory.mktemp("readme-install")
    src, home = root / "src", root / "home"
    home.mkdir()
    copy_checkout(src)
    block = readme_block("### Wheel")
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=src, env=clean_env(home),
                       capture_output=True, text=True, timeout=1800)
    wheels = sorted((src / "dist").glob("pyfalco-*.whl")) if (src / "dist").is_dir() else []
    if r.returncode != 0 or len(wheels) != 1:
        pytest.fail(f"the README's Wheel block failed (exit {r.returncode}, wheels {wheels}):\n{block}\n"
                    f"--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}")
    return InstalledWheel(src, wheels[0], home, r)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory, readme_wheel) -> Path:
    """A new virtual environment, outside the checkout, with the wheel installed by pip."""
    root = tmp_path_factory.mktemp("fresh-venv")
    venv = root / "venv"
    env = clean_env(root)
    python = shutil.which("python3", path=env["PATH"]) or "python3"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(readme_wheel.wheel), "pytest"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return venv
