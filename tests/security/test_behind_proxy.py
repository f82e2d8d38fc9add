"""Behind the TLS proxy, under gunicorn as production runs (not the development server,
whose WSGI layer takes HTTPS=1 from the environment and calls every request secure).

With HTTPS=1 and BEHIND_PROXY=1, a request the proxy marks X-Forwarded-Proto: https is
served with HSTS; one without it is redirected to https. Without BEHIND_PROXY the header is
not trusted: a client cannot claim to be secure.

gunicorn itself trusts that header from FORWARDED_ALLOW_IPS (127.0.0.1 by default). The
balancer is another machine (docs/deployment.md), so here gunicorn trusts only a balancer
address that is not the test's: Django's BEHIND_PROXY alone decides, as in production."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.factories import ROOT
from tests.security.test_hardening import HOST, production_env
from tests.services import _test_database_url, free_port, wait_until

pytestmark = pytest.mark.django_db
HSTS = "max-age=31536000; includeSubDomains; preload"
BALANCER = "192.0.2.1"


class Gunicorn:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind",
                   f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "30",
                   "--forwarded-allow-ips", BALANCER]  # fmt: skip
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.log = log
        wait_until(self.answers, timeout=30)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + self.log.read_text(errors="replace"))
        try:
            self.get("/login/")
        except requests.RequestException:
            return False
        return True

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Host": HOST, **headers},
            allow_redirects=False,
            timeout=60,
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def gunicorn(tmp_path: Path, **env: str | None) -> Iterator[Gunicorn]:
    server = Gunicorn(production_env(DATABASE_URL=_test_database_url(), **env), tmp_path / "log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[Gunicorn]:
    yield from gunicorn(tmp_path, BEHIND_PROXY="1")


@pytest.fixture
def not_behind_proxy(tmp_path: Path) -> Iterator[Gunicorn]:
    yield from gunicorn(tmp_path, BEHIND_PROXY=None)


def test_a_request_the_proxy_forwards_as_https_is_served_with_hsts(
    behind_proxy: Gunicorn,
) -> None:
    response = behind_proxy.get("/login/", **{"X-Forwarded-Proto": "https"})

    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == HSTS
    assert "Secure" in response.headers["Set-Cookie"]


def test_plain_http_is_redirected_to_https_even_with_https_in_the_environment(
    behind_proxy: Gunicorn,
) -> None:
    # gunicorn, unlike the development server, does not read HTTPS=1 from the environment
    response = behind_proxy.get("/login/?next=/q/")

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{HOST}/login/?next=/q/"
    assert "Strict-Transport-Security" not in response.headers


def test_a_forwarded_proto_of_http_is_redirected(behind_proxy: Gunicorn) -> None:
    response = behind_proxy.get("/login/", **{"X-Forwarded-Proto": "http"})

    assert response.status_code == 301


def test_without_behind_proxy_the_header_is_not_trusted(not_behind_proxy: Gunicorn) -> None:
    response = not_behind_proxy.get("/login/", **{"X-Forwarded-Proto": "https"})

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{HOST}/login/"
