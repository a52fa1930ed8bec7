"""deploy/local's stack and processes helpers (imported by path, as the root conftest sets up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import processes
import pytest
import stack
from redis.connection import parse_url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/15"),
    ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/15"),
    ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/15"),
    ("redis://:s3cret@redis.internal:6380/2?socket_timeout=5&health_check_interval=10",
     "redis://:s3cret@redis.internal:6380/15?socket_timeout=5&health_check_interval=10"),
    ("rediss://user:pw@cache.example:6379?ssl_cert_reqs=none",
     "rediss://user:pw@cache.example:6379/15?ssl_cert_reqs=none"),
    ("redis://127.0.0.1:6379/0?db=3&socket_timeout=5", "redis://127.0.0.1:6379/15?socket_timeout=5&db=15"),
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=15"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock?db=15"),
])
def test_redis_url_for_db_moves_only_the_database(url, expected):
    assert stack.redis_url_for_db(url, 15) == expected


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379", "redis://:pw@h:6380/2?socket_timeout=5", "redis://h/0?db=3", "unix:///run/redis.sock",
])
def test_redis_py_reads_the_rewritten_url_as_the_same_server_on_the_new_database(url):
    before, after = parse_url(url), parse_url(stack.redis_url_for_db(url, 15))
    assert after.pop("db") == 15
    before.pop("db", None)
    assert after == before


# A service stand-in: says "ready" once its SIGTERM handler is set, then drains for DRAIN_S on SIGTERM
# (or ignores SIGTERM when told to hang).
SERVICE = """
import signal, sys, time
hang = sys.argv[1] == "hang"
def on_term(*_):
    if not hang:
        time.sleep(float(sys.argv[2]))
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""
# What `processes.py start` leaves behind: services in their own session, not children of whoever stops them.
LAUNCHER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
child.stdout.readline()
print(child.pid, flush=True)
"""
DRAIN_S = 0.5


def launch_orphan(*args: str) -> int:
    """A service stand-in whose parent has exited (the pid `processes.py stop` reads from services.json)."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, SERVICE, *args], capture_output=True, text=True,
                         timeout=30, check=True)
    return int(out.stdout)


def test_pid_alive_is_false_for_an_exited_child_not_yet_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while processes.pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.pid_alive(child.pid)
    child.wait()


def test_stop_cli_returns_only_after_each_service_drained_and_kills_one_that_hangs(tmp_path, monkeypatch, capsys):
    draining, hanging = launch_orphan("drain", str(DRAIN_S)), launch_orphan("hang", "0")
    monkeypatch.setattr(processes, "STATE", tmp_path)
    (tmp_path / "services.json").write_text(json.dumps({"anonymizer": draining, "trainer": hanging}))
    try:
        started = time.monotonic()
        processes._stop_cli(timeout_s=1.0)
        took = time.monotonic() - started
        assert not processes.pid_alive(draining) and not processes.pid_alive(hanging)
    finally:
        for pid in (draining, hanging):
            if processes.pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    assert took >= DRAIN_S + 1.0  # waited out the drain, then the hung one's timeout
    assert capsys.readouterr().out.splitlines() == [
        f"stopped anonymizer (pid {draining})",
        f"killed trainer (pid {hanging}): still running 1s after SIGTERM",
    ]
    assert not (tmp_path / "services.json").exists()


def test_service_process_stop_waits_for_the_drain_and_returns_the_exit_code(tmp_path):
    service = processes.ServiceProcess("anonymizer", {}, 0, tmp_path / "anonymizer.log")
    service.proc = subprocess.Popen([sys.executable, "-c", SERVICE, "drain", str(DRAIN_S)], stdout=subprocess.PIPE,
                                    start_new_session=True)
    service.proc.stdout.readline()
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started >= DRAIN_S
    service.proc.stdout.close()


def test_service_process_stop_kills_a_process_that_ignores_sigterm(tmp_path):
    service = processes.ServiceProcess("trainer", {}, 0, tmp_path / "trainer.log")
    service.proc = subprocess.Popen([sys.executable, "-c", SERVICE, "hang", "0"], stdout=subprocess.PIPE,
                                    start_new_session=True)
    service.proc.stdout.readline()
    assert service.stop(timeout_s=0.5) == -signal.SIGKILL
    assert service.stop() == -signal.SIGKILL  # already stopped: just its exit code
    service.proc.stdout.close()


def test_group_alive_sees_a_member_that_outlives_its_leader_and_stop_started_waits_for_it():
    # The leader forks a member that ignores SIGTERM, then exits: pid_alive(leader) says gone too early.
    # The member says "armed" once its trap is set (a SIGTERM sent before that would simply stop it).
    leader = subprocess.Popen(["sh", "-c", "(trap '' TERM; echo armed; sleep 30) & echo $!"], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    lines = {leader.stdout.readline().strip(), leader.stdout.readline().strip()}
    assert "armed" in lines
    member = int(next(line for line in lines if line != "armed"))
    leader.wait()
    leader.stdout.close()
    try:
        assert not processes.pid_alive(leader.pid) and stack.group_alive(leader.pid)
        assert stack.stop_started("test", leader.pid, timeout_s=0.5) == "killed"
        assert not stack.group_alive(leader.pid) and not processes.pid_alive(member)
    finally:
        if processes.pid_alive(member):
            os.kill(member, signal.SIGKILL)
