"""`make down && make up` back to back: deploy/local/stack.py on a separate stack (own folder and ports)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import stack

ROOT = Path(__file__).resolve().parents[2]
# Far from the team's stack (6390, 8333, 9333, ...), and from each other's gRPC ports (+10000).
OFFSETS = (1100, 1300, 1500)


def stack_ports(offset: int) -> list[int]:
    base = [8333, 6390, *stack.WEED_PORTS.values()]
    return [port + offset for port in base] + [port + offset + 10000 for port in (9333, 9340, 8888, 8333, 23646)]


def holders(folder: Path) -> set[int]:
    """Pids with a file open under folder (SeaweedFS's store lock is one; redis's log is another)."""
    found = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if Path(fd.readlink()).is_relative_to(folder):
                found.add(int(fd.parts[2]))
        except (OSError, ValueError):
            continue  # gone while we looked, or not ours to read
    return found


def free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def separate_stack(tmp_path):
    """The environment of a stack of its own, stopped in the end whatever the test did."""
    offset = next((o for o in OFFSETS if all(map(free, stack_ports(o)))), None)
    if offset is None:
        pytest.skip("no free set of ports for a second stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMTUNE_")}
    env |= {"STREAMTUNE_STACK_DIR": str(tmp_path / "stack"), "STREAMTUNE_STACK_PORT_OFFSET": str(offset)}
    yield env, offset
    subprocess.run([sys.executable, "deploy/local/stack.py", "down"], cwd=ROOT, env=env, timeout=120)


def run_stack(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "deploy/local/stack.py", command], cwd=ROOT, env=env, timeout=150,
                          capture_output=True, text=True)


def test_down_then_up_right_away_starts_a_working_stack_again(separate_stack):
    env, offset = separate_stack
    state = Path(env["STREAMTUNE_STACK_DIR"])
    assert run_stack(env, "up").returncode == 0
    first = json.loads((state / "pids.json").read_text())
    assert set(first) == {"redis", "s3"}
    assert holders(state) & set(first.values())  # (the check sees a running stack's open files)

    down = run_stack(env, "down")
    assert down.returncode == 0, down.stderr
    # down returned: every process it started is gone and every port it held is free again.
    assert not any(stack.group_alive(pid) for pid in first.values())
    assert all(map(free, stack_ports(offset)))
    assert not holders(state)  # the store's lock was released with the last open file

    again = run_stack(env, "up")
    assert again.returncode == 0, again.stderr + again.stdout
    written = (state / "env").read_text()
    assert f"127.0.0.1:{8333 + offset}" in written and f"127.0.0.1:{6390 + offset}/0" in written
    second = json.loads((state / "pids.json").read_text())
    assert set(second) == {"redis", "s3"} and not set(second.values()) & set(first.values())
