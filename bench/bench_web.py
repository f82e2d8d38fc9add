"""Respondent page speed: gunicorn on PostgreSQL with production settings, driven by wrk.

Measures a questionnaire page GET and a page-save POST (session cookie and CSRF token, as a
browser sends them) at 16 and 64 concurrent connections for 15 s each, and prints
requests/s, p50 and p99. Run with `make bench-web`.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8765"))
SESSIONS = 256
DURATION = os.environ.get("BENCH_DURATION", "15s")
WORKERS = os.environ.get("BENCH_GUNICORN_WORKERS", "3")


def prepare_cases() -> list[str]:
    from tests import factories

    survey = common.fresh_survey("bench_web")
    tokens = []
    for _ in range(SESSIONS):
        _case, token, _code = factories.case(survey)
        tokens.append(token)
    return tokens


def sign_in(base: str, token: str) -> dict[str, str]:
    """Open the link like a browser; return the cookies and the CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/r/{token}/").read()
    html = opener.open(f"{base}/q/p/profile/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    return {"cookie": cookies, "csrf": csrf}


LUA = """
sessions = {%(sessions)s}
SHOWN = "%(shown)s"
counter = 0
request = function()
  counter = counter + 1
  local s = sessions[(counter %% #sessions) + 1]
  if "%(method)s" == "GET" then
    return wrk.format("GET", "/q/p/profile/", {["Cookie"] = s.cookie})
  end
  -- what the page showed, as the form sends it back: the field-level merge compares with it
  local body = "csrfmiddlewaretoken=" .. s.csrf .. "&shown=" .. SHOWN ..
    "&action=next&employees=" .. (10 + counter %% 200) .. "&sales_krw_mn=1500.5"
  return wrk.format("POST", "/q/p/profile/", {
    ["Cookie"] = s.cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end
"""


def lua_script(sessions: list[dict[str, str]], method: str) -> str:
    rows = ",\n".join(f"{{cookie={s['cookie']!r}, csrf={s['csrf']!r}}}" for s in sessions)
    shown = urllib.parse.quote(json.dumps({"employees": "", "sales_krw_mn": ""}))
    return LUA % {"sessions": rows.replace("'", '"'), "method": method, "shown": shown}


def run_wrk(base: str, script: str, connections: int) -> dict[str, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    output = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            DURATION,
            "--latency",
            "-s",
            handle.name,
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(handle.name).unlink()
    figures = {
        "rps": re.search(r"Requests/sec:\s+([\d.]+)", output).group(1),  # type: ignore[union-attr]
        "p50": re.search(r"\s50%\s+([\d.]+\w+)", output).group(1),  # type: ignore[union-attr]
        "p99": re.search(r"\s99%\s+([\d.]+\w+)", output).group(1),  # type: ignore[union-attr]
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["errors"] = errors.group(1) if errors else "0"
    socket_errors = re.search(r"Socket errors: (.*)", output)
    figures["socket"] = socket_errors.group(1) if socket_errors else "none"
    return figures


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    env = common.production_env()
    common.setup_django(env)
    tokens = prepare_cases()
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    base = f"http://127.0.0.1:{PORT}"
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            WORKERS,
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        common.wait_for(base + "/login/")
        sessions = [sign_in(base, token) for token in tokens]
        print(
            f"gunicorn {WORKERS} sync workers, PostgreSQL, production settings; "
            f"{len(sessions)} signed-in firms; {DURATION} per run"
        )
        print(f"{'request':<22}{'conns':>6}{'req/s':>10}{'p50':>10}{'p99':>10}{'non-2xx/3xx':>13}")
        for method, label in (("GET", "page GET"), ("POST", "page-save POST")):
            for connections in (16, 64):
                time.sleep(1)
                f = run_wrk(base, lua_script(sessions, method), connections)
                print(
                    f"{label:<22}{connections:>6}{f['rps']:>10}{f['p50']:>10}{f['p99']:>10}"
                    f"{f['errors']:>13}  socket errors: {f['socket']}"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
