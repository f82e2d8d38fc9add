"""Real services for integration tests: a Celery worker process and an SMTP server.

The worker is a separate `celery worker` process on the test database and Redis, with a
queue of its own, so that tests see exactly what production sees. The SMTP server is
aiosmtpd on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MailServer:
    """Collects every message; recipients listed in `refuse` get a permanent 550."""

    port: int
    refuse: set[str] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    # Answer the next N messages with a temporary failure (451), as a busy server does.
    defer: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.defer > 0:
            self.defer -= 1
            return "451 4.3.0 Temporary failure, try again later"
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def subject(self, index: int = 0) -> str:
        return str(make_header(decode_header(self.messages[index]["Subject"])))

    def body(self, index: int = 0) -> str:
        payload = self.messages[index].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def recipients(self) -> list[str]:
        return [str(m["X-Envelope-To"]) for m in self.messages]


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[MailServer]:
    port = free_port()
    server = MailServer(port)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    try:
        yield server
    finally:
        controller.stop()


class Worker:
    """A `celery worker` subprocess on the test database, consuming its own queue."""

    def __init__(self, env: dict[str, str], queue: str) -> None:
        self.env, self.queue = env, queue
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(env["WORKER_LOG"])

    def start(self) -> None:
        self.log.write_bytes(b"")
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                self.queue,
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        self.wait_for_log("ready.", timeout=30)

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("worker exited:\n" + self.log.read_text(errors="replace"))
            time.sleep(0.1)
        raise TimeoutError(f"worker log never showed {text!r}:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool child), as a crash would."""
        if self.process is None:
            return
        self._kill_tree()
        self.process.wait(timeout=10)

    def _kill_tree(self) -> None:
        assert self.process is not None
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        for pid in [*children, str(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._kill_tree()


def _test_database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{user}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def worker(
    transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Worker]:
    """A real Celery worker; tasks enqueued by this test go to it through Redis.

    Request `smtp_server` before `worker` so that the worker mails to it.
    """
    from config import celery as celery_module
    from config.celery import app

    if not settings.REDIS_URL:
        pytest.fail("the worker tests need Redis: set REDIS_URL (make test does)")
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_QUEUE": queue,
        "WORKER_LOG": str(tmp_path / "worker.log"),
        "EMAIL_HOST": str(settings.EMAIL_HOST or ""),
        "EMAIL_PORT": str(settings.EMAIL_PORT),
        "DB_CONN_MAX_AGE": "0",
        "EMAIL_RETRY_BACKOFF_SECONDS": "1",
    }
    marker = request.node.get_closest_marker("worker_env")
    if marker is not None:
        env.update({key: str(value) for key, value in marker.kwargs.items()})
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    celery_module._queue_down_until = 0.0
    handle = Worker(env, queue)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]


def wait_until(condition: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll `condition()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")
