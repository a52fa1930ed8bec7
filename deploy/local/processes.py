"""Run the four services as local processes (what `make up`, the demo and the e2e tests use).

    python deploy/local/processes.py start     # after `stack.py up`; logs in .stack/logs/
    python deploy/local/processes.py stop
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".stack"
SERVICES = ("ingestion", "anonymizer", "trainer", "predictor")
DEFAULT_PORTS = {"ingestion": 8081, "anonymizer": 8082, "trainer": 8083, "predictor": 8084}
DEFAULT_MODELS = {"clinical-notes": "disease-ner", "pump-sensors": "pump-anomaly"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env() -> dict[str, str]:
    """The variables `stack.py up` wrote (Redis URL, S3 endpoint and keys, pseudonym key)."""
    env = {}
    for line in (STATE / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # PermissionError: another user's process has the pid now
        return False
    try:
        # /proc/<pid>/stat: "pid (comm) state ...", comm may hold spaces and parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(alive: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def stop_group(pid: int, alive: Callable[[], bool], timeout_s: float = 40.0, kill_wait_s: float = 10.0) -> str:
    """SIGTERM the process group led by pid, wait for the leader to exit, SIGKILL the group if it hangs.

    ``alive`` says whether the leader still runs (``Popen.poll`` for a child, else ``pid_alive``).
    Returns "gone" (not running), "stopped" (exited after SIGTERM) or "killed"; raises TimeoutError
    when it outlives SIGKILL by kill_wait_s.
    """
    if not alive():
        return "gone"
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    if _wait_gone(alive, timeout_s):
        return "stopped"
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_gone(alive, kill_wait_s):
        raise TimeoutError(f"pid {pid} still runs {kill_wait_s:.0f}s after SIGKILL")
    return "killed"


@dataclass
class ServiceProcess:
    """One service running as a child process, with its port and log file."""

    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        """Start the process (its own session, so signals reach only it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, f"{self.name.upper()}_HTTP_PORT": str(self.port),
               f"{self.name.upper()}_HTTP_HOST": "127.0.0.1", "STREAMTUNE_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"streamtune_{self.name}"], env=env, cwd=ROOT,
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def url(self, path: str) -> str:
        """The service's HTTP URL for a path."""
        return f"http://127.0.0.1:{self.port}{path}"

    def answers(self, path: str = "/healthz") -> bool:
        """Whether GET path returns 200."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_until(self, path: str = "/healthz", timeout_s: float = 120.0) -> None:
        """Wait for GET path to return 200; fail with the log tail if the process died or time ran out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.answers(path):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer {path} in {timeout_s:.0f}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        """Send a signal (SIGKILL for a crash, SIGTERM for a graceful stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout_s: float = 40.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it hangs; returns the exit code."""
        if self.proc is None:
            return None
        stop_group(self.proc.pid, lambda: self.proc.poll() is None, timeout_s)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def service_env(base: dict[str, str], models: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every service: the stack's, plus the predictor's dataset -> model map."""
    return {**base, "PREDICTOR_MODELS": json.dumps(models or DEFAULT_MODELS)}


def start_all(env: dict[str, str], ports: dict[str, int] | None = None,
              logs: Path = STATE / "logs") -> dict[str, ServiceProcess]:
    """Start the four services and wait until each answers /healthz."""
    ports = ports or DEFAULT_PORTS
    started = {name: ServiceProcess(name, env, ports[name], logs / f"{name}.log").start() for name in SERVICES}
    for service in started.values():
        service.wait_until("/healthz")
    return started


def _start_cli() -> None:
    processes = start_all(service_env(stack_env()))
    (STATE / "services.json").write_text(json.dumps({n: p.proc.pid for n, p in processes.items()}))
    for name, process in processes.items():
        print(f"{name:<11} http://127.0.0.1:{process.port}  log: .stack/logs/{name}.log")


def _stop_cli(timeout_s: float = 40.0) -> None:
    """Stop the services `start` recorded, each waited for (SIGKILL after timeout_s), so that `make down`
    takes Redis and S3 away only once every service has drained (the anonymizer's last flush writes to
    S3, then acks in Redis)."""
    path = STATE / "services.json"
    if not path.exists():
        return
    for name, pid in json.loads(path.read_text()).items():
        outcome = stop_group(pid, lambda pid=pid: pid_alive(pid), timeout_s)
        if outcome == "stopped":
            print(f"stopped {name} (pid {pid})")
        elif outcome == "killed":
            print(f"killed {name} (pid {pid}): still running {timeout_s:.0f}s after SIGTERM")
    path.unlink()


if __name__ == "__main__":
    {"start": _start_cli, "stop": _stop_cli}.get(sys.argv[1] if len(sys.argv) > 1 else "", lambda: sys.exit(
        "usage: processes.py start|stop"))()
