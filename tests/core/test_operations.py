"""Operating TARS: the CLI's checks and its one-line errors, Alembic from the repo, and the orchestrator's probes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bot.core.database import make_engine, schema_head, upgrade_database
from bot.ingress.http_server import HttpServer, TarsWsgi
from tests.support import Workspace, run_tars

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/none"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing was said on stderr"
    return lines[-1]


def probe(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_version_is_printed() -> None:
    result = run_tars("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("tars ")


def test_check_config_validates_without_connecting_anywhere(tmp_path: Path) -> None:
    catalog = tmp_path / "tars.yaml"
    catalog.write_text("services:\n  payments:\n    oncall: U0PAYONCALL\n")
    # The database cannot be reached: check-config must not try.
    result = run_tars("check-config", env={"TARS_CONFIG": str(catalog), "DATABASE_URL": UNREACHABLE_DATABASE})
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert "1 services" in result.stdout
    assert "alert endpoints on: none;" in result.stdout


def test_check_config_says_which_alert_endpoints_are_on(tmp_path: Path) -> None:
    catalog = tmp_path / "tars.yaml"
    catalog.write_text(
        "services:\n  payments:\n    oncall: U0PAYONCALL\n"
        "signals:\n  sns_topics: [arn:aws:sns:us-east-1:123456789012:alarms]\n"
    )
    env = {
        "TARS_CONFIG": str(catalog),
        "TARS_ALERTMANAGER_TOKEN": "a-token",
        "TARS_SIGNAL_WEBHOOK_SECRET": "",
    }
    result = run_tars("check-config", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "alert endpoints on: /signals/alertmanager, /signals/sns; off: /signals/webhook (set TARS_SIGNAL_WEBHOOK_SECRET)"
        in result.stdout
    )


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    catalog = tmp_path / "tars.yaml"
    catalog.write_text("services:\n  payments:\n    oncal: U0PAYONCALL\n")
    result = run_tars("check-config", env={"TARS_CONFIG": str(catalog)})
    assert result.returncode == 2
    assert "services.payments.oncal: unknown key" in one_line_error(result)
    result = run_tars("check-config", env={"PORT": "eighty"})
    assert result.returncode == 2
    assert "PORT" in one_line_error(result)


def test_a_bad_log_level_is_refused_in_one_line() -> None:
    result = run_tars("--log-level", "LOUD", "check-config")
    assert result.returncode == 2
    assert "invalid choice: 'LOUD'" in one_line_error(result)


def test_an_unreachable_database_is_one_line_not_a_traceback() -> None:
    result = run_tars("migrate", env={"DATABASE_URL": UNREACHABLE_DATABASE})
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith("tars: cannot reach the database at postgresql://postgres@127.0.0.1:1/none:")


def test_a_taken_port_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tars(
            "serve",
            env={
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": "secret",
                "SLACK_API_URL": "http://127.0.0.1:9/api/",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'tars.db'}",
                "PORT": str(port),
            },
        )
    assert result.returncode == 1
    assert one_line_error(result) == f"tars: port {port} is already in use (set PORT to another one)"


def test_alembic_upgrade_head_works_from_the_repository(tmp_path: Path) -> None:
    database = tmp_path / "alembic.db"
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema_head()
    engine.dispose()


def test_livez_and_readyz_when_all_is_well(workspace: Workspace) -> None:
    assert probe(workspace.running.url + "/livez") == (200, {"status": "ok"})
    status, body = probe(workspace.running.url + "/readyz")
    assert status == 200
    assert body == {"status": "ok", "database": True, "migrations": True}


def test_readyz_waits_for_the_migrations(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    server = HttpServer(TarsWsgi(engine, None), host="127.0.0.1", port=0).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert probe(url + "/livez")[0] == 200  # alive: no reason to restart it
        assert probe(url + "/readyz") == (
            503,
            {"status": "unavailable", "database": True, "migrations": False},
        )
        upgrade_database(engine)
        assert probe(url + "/readyz") == (200, {"status": "ok", "database": True, "migrations": True})
    finally:
        server.stop()
        engine.dispose()


def test_readyz_in_socket_mode_needs_the_connection_to_slack(workspace: Workspace) -> None:
    wsgi = workspace.running.app.wsgi
    connected = False
    wsgi.socket_mode_connected = lambda: connected
    try:
        status, body = probe(workspace.running.url + "/readyz")
        assert (status, body["socket_mode"]) == (503, False)
        connected = True
        status, body = probe(workspace.running.url + "/readyz")
        assert (status, body["socket_mode"]) == (200, True)
    finally:
        wsgi.socket_mode_connected = None
