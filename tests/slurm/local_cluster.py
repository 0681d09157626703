"""A real two-node Slurm cluster on this host, for tests and for trying the sbatch script.

Debian's Slurm (built with MULTIPLE_SLURMD) runs `slurmctld` and two `slurmd -N n1|n2` on one machine,
authenticated by a private `munged`. Nodes advertise 8 fake GPUs (gres "devices" that are links to
/dev/null) and large CPU/memory counts, so H100-style requests (`--gpus-per-node=8 --mem=1000G`) are
accepted and Slurm sets CUDA_VISIBLE_DEVICES. Everything lives under one state directory; the only
system change is a `127.0.0.1 n1 n2` line in /etc/hosts (the node names must resolve for rendezvous),
removed on stop.

    python -m tests.slurm.local_cluster start|stop|status

Run it from the repository root, as root (`start` installs the Debian packages if missing). It is
test scaffolding, not part of the installed package.

Clients find the cluster through `SLURM_CONF` (printed by `start`; `client_env()` in Python).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

NODES = ("n1", "n2")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol", "squeue", "sinfo", "scancel")
HOSTS_FILE = Path("/etc/hosts")
HOSTS_LINE = "127.0.0.1 " + " ".join(NODES) + "  # redone local slurm"
CTLD_PORT = 16817
FAKE_GPUS_PER_NODE = 8


class ClusterError(RuntimeError):
    """The local cluster could not be installed or started."""


class SlurmUnavailable(ClusterError):
    """Slurm is not installed and this machine cannot install it (no apt-get, or not root)."""


def state_dir() -> Path:
    return Path(os.environ.get("REDONE_SLURM_DIR", "/tmp/redone-slurm"))


def conf_path() -> Path:
    return state_dir() / "etc" / "slurm.conf"


def client_env() -> dict[str, str]:
    """Environment variables that point Slurm's commands at this cluster."""
    return {"SLURM_CONF": str(conf_path())}


def ensure_installed() -> None:
    """Install Slurm and munge from Debian's packages unless they are there already."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SlurmUnavailable(
            "Slurm is not installed and cannot be installed here (needs root and apt-get): "
            + " ".join(PACKAGES)
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _slurm_conf(root: Path) -> str:
    host = socket.gethostname()
    node_lines = [
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={CTLD_PORT + 1 + i} "
        f"CPUs=64 RealMemory=2000000 Gres=gpu:{FAKE_GPUS_PER_NODE} State=UNKNOWN"
        for i, name in enumerate(NODES)
    ]
    return "\n".join(
        [
            "ClusterName=redone-local",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={CTLD_PORT}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"AuthInfo=socket={root}/munge/munge.socket.2,cred_expire=5",
            f"StateSaveLocation={root}/ctld",
            f"SlurmdSpoolDir={root}/spool/%n",
            f"SlurmctldPidFile={root}/run/slurmctld.pid",
            f"SlurmdPidFile={root}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd-%n.log",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # linuxproc follows the process tree: torchrun's workers (own sessions) are tracked too.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "GresTypes=gpu",
            "SlurmdParameters=config_overrides",  # the fake counts above exceed this machine
            "ReturnToService=2",
            "JobRequeue=1",
            # Seconds between SIGTERM and SIGKILL when a job ends (scancel, requeue, time limit): the
            # time the trainer has to write its checkpoint. 30 s is Slurm's default, stated here.
            "KillWait=30",
            # A requeued job restarts after ~7 s instead of ~121 s (cred_expire above + fast scheduling).
            "SchedulerParameters=sched_interval=2,bf_interval=2",
            "MinJobAge=600",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            *node_lines,
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _gres_conf(root: Path) -> str:
    return f"Name=gpu File={root}/fake-gpu/gpu[0-{FAKE_GPUS_PER_NODE - 1}]\n"


def _write_files(root: Path) -> None:
    for sub in ("etc", "ctld", "run", "log", "fake-gpu", *(f"spool/{n}" for n in NODES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(FAKE_GPUS_PER_NODE):
        fake = root / "fake-gpu" / f"gpu{i}"
        if not fake.is_symlink():
            fake.symlink_to("/dev/null")  # Slurm wants character devices
    (root / "etc" / "slurm.conf").write_text(_slurm_conf(root))
    (root / "etc" / "gres.conf").write_text(_gres_conf(root))
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755, exist_ok=True)
    key = munge_dir / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    user = pwd.getpwnam("munge")
    for path in (munge_dir, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    munge_dir.chmod(0o755)
    key.chmod(0o400)


def _add_hosts_line() -> None:
    text = HOSTS_FILE.read_text()
    if HOSTS_LINE not in text.splitlines():
        # In place, not by rename: /etc/hosts may be a mount point.
        with HOSTS_FILE.open("a") as f:
            f.write(("" if text.endswith("\n") or not text else "\n") + HOSTS_LINE + "\n")


def _remove_hosts_line() -> None:
    lines = HOSTS_FILE.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.rstrip("\n") != HOSTS_LINE]
    if kept != lines:
        with HOSTS_FILE.open("w") as f:
            f.writelines(kept)


def _spawn(name: str, cmd: list[str], root: Path, user: str | None = None) -> None:
    """Start a daemon in the foreground mode (-D/-F) of its own session; its pid goes to run/NAME.pid."""
    kwargs = {"user": user} if user else {}
    with (root / "log" / f"{name}.out").open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_daemon_env(), **kwargs
        )
    (root / "run" / f"{name}.daemon").write_text(str(proc.pid))


def _daemon_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, **client_env()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _daemon_pids(root: Path) -> dict[str, int]:
    """Daemons this module started that still run: a pid counts only if its command line is still ours
    (a stale pid file, e.g. after a reboot, must never make `stop` signal someone else's process)."""
    out = {}
    for f in sorted((root / "run").glob("*.daemon")):
        pid = int(f.read_text())
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = Path(cmdline[0].decode()).name == f.stem.split("-")[0] and any(
            str(root).encode() in arg for arg in cmdline
        )
        if ours and _alive(pid):
            out[f.stem] = pid
    return out


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=_daemon_env(), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def node_states() -> dict[str, str]:
    """Node name -> Slurm state (e.g. idle, alloc, down*)."""
    proc = _run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False)
    if proc.returncode != 0:
        return {}
    return dict(line.split() for line in proc.stdout.splitlines() if line.strip())


def is_running() -> bool:
    names = {"munged", "slurmctld", *(f"slurmd-{n}" for n in NODES)}
    if not names <= set(_daemon_pids(state_dir())):
        return False  # before asking sinfo, which retries for ~10 s when there is no controller
    states = node_states()  # a trailing "*" (node not responding) does not count
    return len(states) == len(NODES) and all(
        s in ("idle", "mixed", "allocated", "completing") for s in states.values()
    )


def start(timeout_s: float = 60.0) -> bool:
    """Install if needed and start the cluster; True if this call started it (False: already up)."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("the local cluster runs its daemons as root and edits /etc/hosts: run as root")
    if is_running():
        _add_hosts_line()
        return False
    ensure_installed()
    root = state_dir()
    stop()  # whatever half-started cluster is left over
    for old in ("ctld", "spool"):  # a fresh cluster: no jobs recovered from an earlier one
        shutil.rmtree(root / old, ignore_errors=True)
    _write_files(root)
    _add_hosts_line()
    munge = root / "munge"
    (munge / "munge.socket.2").unlink(missing_ok=True)  # the wait below must see the new daemon's
    _spawn(
        "munged",
        [
            "munged",
            "-F",
            "--force",
            f"--socket={munge}/munge.socket.2",
            f"--key-file={munge}/munge.key",
            f"--pid-file={munge}/munged.pid",
            f"--seed-file={munge}/munged.seed",
            f"--log-file={root}/log/munged.log",
        ],
        root,
        user="munge",
    )
    _wait_for(lambda: (munge / "munge.socket.2").exists(), timeout_s, "munged socket", root)
    _spawn("slurmctld", ["slurmctld", "-D", "-f", str(conf_path())], root)
    _wait_for(lambda: _run(["scontrol", "ping"], check=False).returncode == 0, timeout_s, "slurmctld", root)
    for name in NODES:
        _spawn(f"slurmd-{name}", ["slurmd", "-D", "-N", name, "-f", str(conf_path())], root)
    _wait_for(is_running, timeout_s, "both nodes idle", root)
    return True


def _wait_for(ready, timeout_s: float, what: str, root: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((root / "log").iterdir())
            )
            raise ClusterError(f"local Slurm: timed out waiting for {what}\n{logs}")
        time.sleep(0.2)


def stop(timeout_s: float = 60.0) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged; remove the hosts line."""
    root = state_dir()
    pids = _daemon_pids(root) if (root / "run").exists() else {}
    if "slurmctld" in pids:  # jobs first: stopping slurmd under a running job leaves its processes behind
        jobs = lambda: _run(["squeue", "-h", "-o", "%i"], check=False).stdout.split()  # noqa: E731
        deadline = time.monotonic() + timeout_s
        while (running := jobs()) and time.monotonic() < deadline:
            _run(["scancel", *running], check=False)
            time.sleep(0.5)
    # slurmd before slurmctld before munged: the reverse of start.
    order = sorted(pids, key=lambda n: (not n.startswith("slurmd"), n == "munged"))
    for name in order:
        _terminate(pids[name], timeout_s)
    _remove_hosts_line()


def _terminate(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.slurm.local_cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    args = parser.parse_args(argv)
    if args.action == "start":
        started = start()
        print(f"{'started' if started else 'already running'}: export SLURM_CONF={conf_path()}")
    elif args.action == "stop":
        stop()
        print("stopped")
    else:
        running = is_running()
        print(f"{'running' if running else 'not running'}: {node_states() or 'no controller'}")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
