"""Private services for fault tests: Redis, PostgreSQL, a Celery worker and gunicorn.

These tests kill, freeze and restart servers, so each test gets servers of its own on free
ports; the machine's shared PostgreSQL (5432) and Redis (6379) are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kombu.pools
import psycopg2
import pytest
import redis
import requests
from django.conf import settings

from tests.services import ROOT, Worker, _test_database_url, free_port, wait_until


def _binary(name: str, *candidates: str) -> str:
    for path in [*candidates, shutil.which(name) or ""]:
        if path and Path(path).is_file():
            return path
    pytest.fail(
        f"{name} is needed for the fault tests (Debian: apt-get install redis-server postgresql)"
    )


# --- Redis -------------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            _binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, timeout=10, interval=0.05)

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """Stop the process without closing its port: the kernel still accepts connections
        but nothing ever answers, as with a hung Redis or a host behind a dropping firewall."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir()
    server = RedisServer(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


def fresh_web_process() -> None:
    """Forget this process's broker connections and its memory that the queue is down, so
    that the next task sent behaves as in a web process meeting the outage for the first
    time (each gunicorn process keeps its own)."""
    from config import celery as celery_module

    kombu.pools.reset()
    celery_module.app._pool = None  # type: ignore[attr-defined]
    celery_module.app.amqp._producer_pool = None  # type: ignore[attr-defined]
    celery_module._queue_down_until = 0.0


@dataclass
class Broker:
    redis: RedisServer
    queue: str


@pytest.fixture
def private_broker(private_redis: RedisServer, settings: Any) -> Iterator[Broker]:
    """This process sends real (non-eager) tasks to the private Redis, on a queue of its own."""
    from config.celery import app

    queue = f"faults-{uuid.uuid4().hex[:12]}"
    names = ("broker_url", "task_always_eager", "task_default_queue")
    previous = {name: app.conf[name] for name in names}
    settings.REDIS_URL = private_redis.url
    app.conf.update(broker_url=private_redis.url, task_always_eager=False, task_default_queue=queue)
    fresh_web_process()
    try:
        yield Broker(private_redis, queue)
    finally:
        app.conf.update(previous)
        fresh_web_process()


@pytest.fixture
def broker_worker(
    private_broker: Broker, smtp_server: Any, transactional_db: None, tmp_path: Path
) -> Iterator[Worker]:
    """A real Celery worker on the test database, the private Redis and the SMTP server."""
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": private_broker.redis.url,
        "CELERY_QUEUE": private_broker.queue,
        "WORKER_LOG": str(tmp_path / "worker.log"),
        "EMAIL_HOST": str(settings.EMAIL_HOST),
        "EMAIL_PORT": str(settings.EMAIL_PORT),
        "EMAIL_RATE_PER_SECOND": "100",
        "EMAIL_RETRY_BACKOFF_SECONDS": "1",
        "DB_CONN_MAX_AGE": "0",
        "RECOMPUTE_MIN_INTERVAL_SECONDS": "0",
    }
    worker = Worker(env, private_broker.queue)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


# --- PostgreSQL --------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return _binary(name, *[str(path) for path in installed])


def _as_postgres() -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresCluster:
    """A throwaway cluster in a temporary directory, trusting local connections."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.data, self.log = directory / "data", directory / "server.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            # Durability against power loss is not under test; clean shutdowns still flush.
            "-c fsync=off"
        )
        command = [
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            *args,
        ]
        subprocess.run([*_as_postgres(), *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        command = [
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        subprocess.run([*_as_postgres(), *command], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "restart")

    def create_database(self, name: str) -> None:
        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        try:
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp_path: the postgres user cannot enter root's pytest folder.
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="faults-pg-")), free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    with running_postgres() as cluster:
        yield cluster


# --- gunicorn ----------------------------------------------------------------------------


class WebServer:
    """gunicorn serving the app as production does (Procfile), on a free port."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 3) -> None:
        self.env, self.log, self.workers = env, log, workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self.answers, timeout=30)

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + self.log.read_text(errors="replace"))
        try:
            return requests.get(f"{self.url}/login/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
