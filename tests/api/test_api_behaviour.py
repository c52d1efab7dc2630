# SPDX-License-Identifier: Apache-2.0
"""What a new user of the library runs into (issue 14, item 5): the state syscalls a live capture
gets when an Inspector reads it (live eBPF: processes keep their parents), a str where a list is
expected, unknown field names, a closed capture, docstrings and type hints on the public names."""

from __future__ import annotations

import inspect
import os
import subprocess
import uuid
from pathlib import Path

import pytest

import pyfalco
from pyfalco.inspector import UnknownFieldError

ROOT = Path(__file__).resolve().parents[2]
CURL = ROOT.parent / "shared" / "captures" / "libs_curl_google.scap"


def test_state_syscalls_are_the_agents_state_set():
    from pyfalco.agent.syscalls import STATE_SET
    got = pyfalco.state_syscalls()
    assert got == STATE_SET
    assert {"clone", "execve", "close", "openat", "connect"} <= got and "read" not in got


def _exec_parents(cap: pyfalco.Capture, marker: str) -> list:
    """(proc.name, proc.pname) of the execs of ``marker``'s echo, run by a shell: the echo is a
    child of sh, which is a child of this process."""
    out = []
    with pyfalco.Inspector(cap) as insp:
        subprocess.run(["/bin/sh", "-c", f"/bin/echo {marker} >/dev/null; true"], check=True)
        for ie in insp.events(duration=30):
            if ie.name == "execve" and ie.get("evt.dir") == "<" and ie.get("proc.name") == "echo" \
                    and marker in (ie.get("proc.cmdline") or ""):
                out.append((ie.get("proc.name"), ie.get("proc.pname")))
                break
    return out


def test_an_inspector_adds_the_state_syscalls_to_a_live_capture():
    """Capture(syscalls=["execve"]) read by an Inspector: clone/execve/procexit... are added, so the
    parent of a new process is known (it used to be None for processes started after the scan)."""
    marker = f"pyfalco-api-{uuid.uuid4().hex}"
    with pyfalco.Capture(syscalls=["execve"]) as cap:
        assert cap.syscalls == {"execve"}
        parents = _exec_parents(cap, marker)
        assert pyfalco.state_syscalls() <= cap.syscalls
    assert parents == [("echo", "sh")]


def test_add_state_syscalls_false_keeps_the_selection():
    with pyfalco.Capture(syscalls=["execve"]) as cap, pyfalco.Inspector(cap, add_state_syscalls=False):
        assert cap.syscalls == {"execve"}


def test_a_str_for_a_list_is_a_type_error():
    with pytest.raises(TypeError, match=r"write \['execve'\]"):
        pyfalco.Capture(syscalls="execve")
    with pytest.raises(TypeError):
        pyfalco.capture.syscall_numbers(b"execve")
    with pytest.raises(TypeError, match="not a syscall name"):
        pyfalco.capture.syscall_numbers(["execve", 1.5])
    with pyfalco.Capture(syscalls=["execve"]) as cap, pytest.raises(TypeError):
        cap.select("openat")
    with pytest.raises(TypeError, match="list of syscall names"):
        pyfalco.testing.DetectionSession("- list: x\n  items: []\n", syscalls="execve").start()
    assert pyfalco.capture.syscall_numbers(["execve"]) == pyfalco.capture.syscall_numbers(("execve",))


def test_unknown_field_names_raise_with_a_suggestion():
    with pyfalco.Capture("replay", capture_file=str(CURL)) as cap, pyfalco.Inspector(cap) as insp:
        ie = next(ie for ie in insp if ie.name == "execve" and ie.get("evt.dir") == "<")
        assert ie.get("proc.name") == "curl"
        assert ie.get("proc.aname[1]") == "bash" and ie.get("evt.rawarg.res") == 0
        assert ie.get("container.name", "none") == "none" or ie.get("container.name") is not None
        assert ie.get("fd.name", "no fd") == "no fd" or isinstance(ie.get("fd.name"), str)
        with pytest.raises(UnknownFieldError, match=r"unknown field 'proc.nmae'; did you mean proc.name") as err:
            ie.get("proc.nmae")
        assert isinstance(err.value, pyfalco.PyFalcoError) and "proc.name" in err.value.suggestions
        with pytest.raises(UnknownFieldError, match="'nothing.like.this'$"):
            ie.get("nothing.like.this")
        with pytest.raises(TypeError):
            ie.get(42)


def test_any_use_after_close_raises():
    cap = pyfalco.Capture("replay", capture_file=str(CURL))
    assert cap.next_batch()            # usable while open
    cap.close()
    cap.close()                        # harmless
    assert cap.closed
    uses = {"iter": lambda: iter(cap), "events": lambda: cap.events(), "next_batch": cap.next_batch,
            "next_raw_batch": cap.next_raw_batch, "stats": cap.stats, "metadata_blocks": cap.metadata_blocks,
            "initial_state": cap.initial_state, "start": cap.start, "stop": cap.stop,
            "select": lambda: cap.select(["execve"]), "with": lambda: cap.__enter__()}
    for name, use in uses.items():
        with pytest.raises(pyfalco.CaptureClosedError):
            use()
            pytest.fail(f"{name} on a closed capture did not raise")
    # closed while being iterated: the next batch raises
    cap = pyfalco.Capture("replay", capture_file=str(CURL), batch_bytes=4096)
    it = cap.events()
    next(it)
    cap.close()
    with pytest.raises(pyfalco.CaptureClosedError):
        for _ in it:
            pass
    # an engine too
    engine = pyfalco.Engine("- list: x\n  items: []\n", capture=pyfalco.Capture("replay", capture_file=str(CURL)))
    engine.close()
    with pytest.raises(pyfalco.CaptureClosedError):
        list(engine.alerts())


PUBLIC = ["Engine", "SyscallSource", "Capture", "Inspector", "testing.DetectionSession", "testing.Watch"]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_classes_have_docstrings_and_type_hints(name):
    import pyfalco.testing
    cls = pyfalco
    for part in name.split("."):
        cls = getattr(cls, part)
    assert inspect.getdoc(cls)
    missing_doc, missing_hints = [], []
    for attr, member in vars(cls).items():
        if attr.startswith("_") and attr not in ("__init__",):
            continue
        fn = member.fget if isinstance(member, property) else member
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        if not inspect.isfunction(fn):
            continue
        if attr != "__init__" and not inspect.getdoc(fn):
            missing_doc.append(attr)
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
        if any(p.annotation is inspect.Parameter.empty for p in params if p.kind not in (p.VAR_POSITIONAL,)) \
                or (sig.return_annotation is inspect.Signature.empty and attr != "__init__"):
            missing_hints.append(attr)
    assert missing_doc == [] and missing_hints == [], (missing_doc, missing_hints)


def test_public_functions_have_docstrings_and_type_hints():
    for fn in (pyfalco.state_syscalls, pyfalco.capture.syscall_numbers):
        assert inspect.getdoc(fn)
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    assert set(pyfalco.__all__) <= set(dir(pyfalco)) | {"Capture", "Event", "Engine", "EventSource", "SyscallSource",
                                                        "Inspector", "Alert", "state_syscalls"}
    for name in pyfalco.__all__:
        assert getattr(pyfalco, name) is not None, name
