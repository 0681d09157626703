"""Run untrusted Python in a subprocess with time, memory, output and network limits.

What contains a program (all on Linux):

* **time**: ``RLIMIT_CPU`` (the kernel kills a busy loop) and a wall-clock limit (the parent kills the
  whole process group, so sleeping or blocked programs and their children end too);
* **memory**: ``RLIMIT_AS`` (allocations past it raise ``MemoryError`` or fail);
* **output and files**: stdout/stderr go to files capped by ``RLIMIT_FSIZE``; ``RLIMIT_NPROC`` and
  ``RLIMIT_NOFILE`` bound fork bombs and descriptor leaks;
* **network**: a fresh, empty network namespace (``unshare -n`` as root, ``unshare -rn`` otherwise,
  where user namespaces are allowed): no interface but a down loopback, so nothing is reachable,
  not even this machine's services. Where namespaces are unavailable (some containers), a run that
  requires isolation raises :class:`SandboxUnavailable`; ``require_network_isolation: false`` runs
  with the other limits only, and every result says ``network_isolated: false``.
* **privileges**: as root the program runs as ``nobody`` (it could otherwise raise its own limits and
  write anywhere), with an interpreter that user can execute (``/usr/bin/python3`` by default).

This is process-level containment for reward computation, not a security boundary against a
determined attacker (no seccomp, no filesystem namespace): run the trainer in a container.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, PositiveInt

from nemo_recipes.config.loader import StrictModel

# Runs first inside the namespace: set the limits, drop to the sandbox user, exec the program.
_LAUNCHER = """
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for name, value in spec["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if spec["uid"] is not None:
    os.setgroups([])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
os.execv(spec["python"], [spec["python"], "-I", "-B", spec["script"]])
"""


class SandboxUnavailable(RuntimeError):
    """The requested containment cannot be provided on this machine."""


class SandboxConfig(StrictModel):
    wall_time_s: float = Field(10.0, gt=0)
    cpu_time_s: PositiveInt = 5
    memory_mb: PositiveInt = 512
    max_output_bytes: PositiveInt = 65_536
    max_processes: PositiveInt = 32
    require_network_isolation: bool = True
    run_as_user: str | None = "nobody"
    """Only used when running as root; None keeps root (weaker: the program may raise its limits)."""
    python: str | None = None
    """Interpreter for the program; default: this one, or /usr/bin/python3 when dropping to a user."""


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    network_isolated: bool
    wall_s: float

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@functools.cache
def network_namespace_command() -> tuple[str, ...] | None:
    """The prefix that starts a process in an empty network namespace here, or None if none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    command = (unshare, "-n") if os.geteuid() == 0 else (unshare, "-rn")
    probe = subprocess.run([*command, "true"], capture_output=True, timeout=30, check=False)
    return command if probe.returncode == 0 else None


def _identity(config: SandboxConfig) -> tuple[int | None, int | None, str]:
    """(uid, gid, interpreter) the program runs with."""
    if os.geteuid() != 0 or config.run_as_user is None:
        return None, None, config.python or sys.executable
    entry = pwd.getpwnam(config.run_as_user)
    python = config.python or "/usr/bin/python3"
    if not Path(python).is_file():
        raise SandboxUnavailable(
            f"no interpreter for the sandbox user {config.run_as_user!r}: {python} does not exist; "
            "set sandbox python to one that user can execute"
        )
    return entry.pw_uid, entry.pw_gid, python


def _limits(config: SandboxConfig) -> dict[str, int]:
    return {
        "RLIMIT_CPU": config.cpu_time_s,
        "RLIMIT_AS": config.memory_mb << 20,
        "RLIMIT_FSIZE": config.max_output_bytes,
        "RLIMIT_NPROC": config.max_processes,
        "RLIMIT_NOFILE": 64,
        "RLIMIT_CORE": 0,
    }


def run_python(source: str, config: SandboxConfig) -> SandboxResult:
    """Run ``source`` as a script under the limits of ``config`` (see the module docstring)."""
    namespace = network_namespace_command()
    if namespace is None and config.require_network_isolation:
        raise SandboxUnavailable(
            "cannot isolate the network here (`unshare -n` / `unshare -rn` failed or is missing); "
            "set require_network_isolation: false to run code with time and memory limits only"
        )
    uid, gid, python = _identity(config)
    with tempfile.TemporaryDirectory(prefix="redone-sandbox-") as root:
        work = Path(root) / "work"
        work.mkdir()
        script = work / "main.py"
        script.write_text(source, encoding="utf-8")
        if uid is not None:
            os.chmod(root, 0o755)
            for path in (work, script):
                os.chown(path, uid, gid)
        spec = {"limits": _limits(config), "uid": uid, "gid": gid, "python": python, "script": str(script)}
        command = [*(namespace or ()), sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(spec)]
        return _run(command, work, Path(root), config, isolated=namespace is not None)


def _run(command: list[str], work: Path, root: Path, config: SandboxConfig, isolated: bool) -> SandboxResult:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "PYTHONHASHSEED": "0"}
    out_path, err_path = root / "stdout", root / "stderr"
    start = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timed_out = False
        try:
            process.wait(timeout=config.wall_time_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
    return SandboxResult(
        returncode=None if timed_out else process.returncode,
        timed_out=timed_out,
        stdout=_read_capped(out_path, config.max_output_bytes),
        stderr=_read_capped(err_path, config.max_output_bytes),
        network_isolated=isolated,
        wall_s=time.monotonic() - start,
    )


def _kill_group(pid: int) -> None:
    """Kill the program's process group (children included); it may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read_capped(path: Path, max_bytes: int) -> str:
    with path.open("rb") as handle:
        return handle.read(max_bytes).decode("utf-8", errors="replace")
