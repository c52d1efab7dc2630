# SPDX-License-Identifier: Apache-2.0
"""What an action runs with: a private temporary directory, host command helpers and podman
containers (built from the local image, cleaned up), and the record of what it started so a
detection check can tell its alerts from the rest of the machine's."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

from .image import IMAGE, busybox_path, ensure_image

__all__ = ["Context", "PODMAN", "RUN_OPTS", "ActionFailed"]

#: podman as the tests run it on this machine: cgroupfs + runc, no systemd dependency
PODMAN = ["podman", "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
#: every generator container: no network (an action that needs addresses adds them to its own
#: loopback), rlimits the container runtime may set here, removed on exit
RUN_OPTS = ["--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--pull", "never", "--label", "pyfalco-event-generator=1"]

TIMEOUT = 60


class ActionFailed(RuntimeError):
    """An action could not perform its behaviour (a missing tool, podman failing)."""


@dataclass
class Context:
    """Per-action state. ``container`` asks actions that can run either way to use a container."""

    container: bool = False
    verbose: bool = False
    tmp: str = ""
    containers: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def __enter__(self) -> "Context":
        self.tmp = tempfile.mkdtemp(prefix="pyfalco-eventgen-")
        os.chmod(self.tmp, 0o700)
        return self

    def __exit__(self, *exc) -> bool:
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    # -- host ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def run(self, argv, *, executable: str | None = None, input: bytes | None = None, check: bool = True,
            ok: tuple = (0,), env: dict | None = None, cwd: str | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Runs a host command (no shell) and waits for it. With ``check`` (the default) an exit
        status outside ``ok`` (or a timeout) raises :class:`ActionFailed` with the command's
        error output: the behaviour did not happen (``cat: /etc/shadow: Permission denied``)."""
        self.log.append("$ " + " ".join(argv))
        proc = subprocess.Popen(argv, executable=executable, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd or self.tmp)
        self.pids.append(proc.pid)
        timed_out = False
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            out, err = proc.communicate()
        cp = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if self.verbose and (out or err):
            self.log.append((out + err).decode("utf-8", "replace").rstrip())
        if check and (timed_out or proc.returncode not in ok):
            what = f"timed out after {timeout:g}s" if timed_out else _status_text(proc.returncode)
            raise ActionFailed(f"{os.path.basename(argv[0])} {what}{_first_lines(err)}")
        return cp

    def tool(self, name: str) -> str:
        """The host path of a program this action needs."""
        found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")
        if found is None:
            raise ActionFailed(f"{name} is not installed on this host")
        return found

    def named_busybox(self, name: str) -> str:
        """A link named ``name`` to busybox in the temp dir: executing it runs a process called
        ``name`` (its comm) whose behaviour busybox picks from argv[0]."""
        d = self.path("bin")
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, name)
        if not os.path.lexists(link):
            os.symlink(busybox_path(), link)
        return link

    # -- containers ---------------------------------------------------------------------------
    def podman_run(self, *command: str, options: tuple = (), tty: bool = False, check: bool = True,
                   timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Runs ``command`` in a new container of the generator image and waits for it to exit;
        the container id goes to ``containers``. With ``check`` (the default) a non-zero exit of
        the container's command (or of podman) raises :class:`ActionFailed`."""
        image = ensure_image()
        cidfile = self.path(f"cid-{uuid.uuid4().hex[:8]}")
        argv = PODMAN + ["run", *RUN_OPTS, "--cidfile", cidfile, "--name", f"pyfalco-eventgen-{uuid.uuid4().hex[:10]}",
                         *(["-t"] if tty else []), *options, image, *command]
        try:
            cp = self.run(argv, timeout=timeout, check=False)
        finally:
            try:
                with open(cidfile) as f:
                    cid = f.read().strip()
                if cid:
                    self.containers.append(cid)
            except OSError:
                pass
        if check and cp.returncode != 0:
            raise ActionFailed(f"in the container: {command[0]} {_status_text(cp.returncode)}"
                               f"{_first_lines(cp.stderr or (cp.stdout if tty else b''))}")
        return cp

    def container_sh(self, script: str, *, options: tuple = (), tty: bool = False, check: bool = True):
        """Runs a busybox shell script in a container. Commands in it must be written with their
        path (/bin/cat, not cat): busybox's shell runs bare applet names inside its own process,
        which would hide the program name the rules look at."""
        return self.podman_run("/bin/sh", "-c", script, options=options, tty=tty, check=check)


def _status_text(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


def _first_lines(err: bytes, n: int = 3) -> str:
    """': ' + the first lines of a command's error output, one line, printable; '' if none."""
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()][:n]
    text = " | ".join(lines)
    text = "".join(c if c.isprintable() else "?" for c in text)[:300]
    return f": {text}" if text else ""


def image_name() -> str:
    return IMAGE
