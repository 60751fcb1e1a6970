"""Every failure of the `boucle` command is one line and an exit code, never a traceback, and no
secret reaches the output (issue #13): bad options, a full disk, a read-only or impossible `var/`,
a warehouse locked by another process, Ctrl-C, credentials in `warehouse.url`."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys

import pytest
from clickhouse_stand_in import AUTH_FAILED, serving
from typer.testing import CliRunner

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.config.redact import redact, redact_url, secrets_of
from boucle.flows.cli.app import app
from boucle.flows.cli.errors import redact_logs, report
from boucle.sinks.clickhouse.client import close_all

runner = CliRunner()
BOUCLE = [sys.executable, "-m", "boucle.flows.cli"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line(result) -> str:
    """The one line the command wrote on stderr (stdout may hold its progress)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("args,code,expected", [
    (["query", "--bogus"], 2, "error: No such option: --bogus"),
    (["nope"], 2, "error: No such command 'nope'"),
    (["query", "SELECT 1", "--format", "xml"], 2, "'xml' is not one of"),
    (["cases", "non-respondents", "--after", "soon"], 2, "Invalid value for --after: expected a duration"),
    (["run", "--days", "-1"], 2, "Invalid value for '--days': must be positive"),
    (["simulate", "--days", "0", "--out", "x.jsonl"], 2, "Invalid value for '--days': must be positive"),
    (["run", "--workers", "0"], 2, "--workers"),
    (["--config", "/nonexistent/boucle.toml", "query", "SELECT 1"], 2, "config error: /nonexistent/boucle.toml: no such"),
    (["query", "SELECT 1", "--config", "/nonexistent/boucle.toml"], 2, "config error: /nonexistent/boucle.toml: no such"),
    (["replay", "nope.jsonl"], 2, "no such file nope.jsonl"),
])
def test_bad_options_are_one_line(workspace, args, code, expected):
    result = invoke(*args)
    assert result.exit_code == code
    assert expected in one_line(result)


def test_config_after_the_sub_command_is_read(workspace, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(SHIPPED_CONFIG.read_text().replace('database = "boucle"', 'database = "elsewhere"', 1))
    assert invoke("db", "migrate", "--config", str(config)).exit_code == 0
    result = invoke("query", "SELECT currentDatabase() AS db", "--format", "csv", "--config", str(config))
    assert result.output.split() == ["db", "elsewhere"]


def test_disk_full_is_one_line(workspace):
    result = invoke("simulate", "--out", "/dev/full", "--days", "0.2")
    assert result.exit_code == 1
    assert one_line(result) == "disk full: No space left on device"


def test_an_impossible_var_directory_is_one_line(workspace, monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", "/dev/null/var/boucle.chdb")
    result = invoke("run", "--days", "0.05", "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "warehouse error: cannot create the directory of the chDB warehouse /dev/null/var/boucle.chdb: Not a directory")
    result = invoke("simulate", "--out", "/dev/null/var/feedback.jsonl", "--days", "0.05")
    assert result.exit_code == 1
    assert one_line(result) == "not a directory: /dev/null/var: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories (chmod cannot test it)")
def test_a_read_only_var_directory_is_one_line(workspace):
    var = workspace / "var"
    var.mkdir()
    var.chmod(0o500)
    try:
        result = invoke("simulate", "--out", str(var / "feedback.jsonl"), "--days", "0.05")
        assert result.exit_code == 1
        assert one_line(result).startswith("permission denied: ")
    finally:
        var.chmod(0o700)


@pytest.fixture
def locked_warehouse(tmp_path):
    """A chDB warehouse held by another process, as a running `boucle run` holds it."""
    path = tmp_path / "locked.chdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, clickhouse_connect\n"
         f"c = clickhouse_connect.get_client(interface='chdb', path={str(path)!r})\n"
         "print('ready', flush=True)\nsys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield path, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.mark.parametrize("command", [["cases", "summary"], ["cases", "promoters"], ["cases", "non-respondents"],
                                     ["cases", "search", "attente"], ["query", "SELECT 1"], ["report"], ["db", "migrate"]])
def test_a_locked_warehouse_is_one_line(workspace, locked_warehouse, monkeypatch, command):
    path, pid = locked_warehouse
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(path))
    result = invoke(*command)
    assert result.exit_code == 1
    assert one_line(result) == (f"warehouse error: the chDB warehouse {path} is in use by another process (pid {pid});"
                                " is a `boucle run` still going?")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    env = dict(os.environ, BOUCLE_WAREHOUSE__PATH=str(tmp_path / "chdb"),
               BOUCLE_OUTPUTS__ALERTS_JSONL=str(tmp_path / "a.jsonl"),
               BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL=str(tmp_path / "d.jsonl"))
    run = subprocess.Popen([*BOUCLE, "run", "--days", "300", "--no-progress"], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run.stdout.readline().startswith("Simulating")
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1] == "interrupted"


# ---- secrets --------------------------------------------------------------------------------

@pytest.fixture
def server_url():
    """A ClickHouse stand-in that rejects the credentials, its URL carrying a password."""
    with serving(AUTH_FAILED) as server:
        yield f"http://bob:s3cret-pw@127.0.0.1:{server.server_address[1]}"
    close_all()


@pytest.mark.parametrize("command", [["db", "migrate"], ["run", "--days", "0.05", "--no-progress"],
                                     ["query", "SELECT 1"], ["report"], ["cases", "summary"]])
def test_a_password_in_the_warehouse_url_is_never_printed(workspace, server_url, monkeypatch, command):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__URL", server_url)
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PASSWORD", "hunter2-pw")
    result = invoke(*command)
    assert result.exit_code == 1
    line = one_line(result) if command[0] != "run" else result.output.strip().splitlines()[-1]
    assert "bob:***@127.0.0.1" in line and "rejected user" in line
    assert "s3cret-pw" not in result.output and "hunter2-pw" not in result.output


def test_secrets_of_a_config_cover_the_warehouse_and_kafka(monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__URL", "https://bob:url-pw@ch.internal:8443")
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PASSWORD", "wh-pw")
    monkeypatch.setenv("BOUCLE_KAFKA__LIBRDKAFKA__SASL_PASSWORD", "sasl-pw")
    monkeypatch.setenv("BOUCLE_KAFKA__LIBRDKAFKA__SASL_USERNAME", "alice")
    settings = load_settings(SHIPPED_CONFIG)
    assert sorted(secrets_of(settings)) == ["sasl-pw", "url-pw", "wh-pw"]
    assert redact_url(settings.warehouse.url) == "https://bob:***@ch.internal:8443"
    assert redact("SASL failed for alice with sasl-pw", secrets_of(settings)) == "SASL failed for alice with ***"


def test_error_lines_and_log_records_are_redacted(capsys):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger()
    logger.addHandler(handler)
    try:
        redact_logs(["sasl-pw"])
        logging.getLogger("boucle.test").warning("broker said: auth %s failed at %s", "sasl-pw", "http://u:pw1@h:1")
        try:
            raise RuntimeError("connect to http://u:pw2@h:1 failed")
        except RuntimeError:
            logging.getLogger("boucle.test").exception("with a traceback, sasl-pw inside")
        assert report(RuntimeError("librdkafka: sasl.password=sasl-pw rejected")) == 1
    finally:
        logger.removeHandler(handler)
        redact_logs([])
    logged, printed = stream.getvalue(), capsys.readouterr().err
    assert "sasl-pw" not in logged + printed and "pw1" not in logged and "pw2" not in logged
    assert "broker said: auth *** failed at http://u:***@h:1" in logged
    assert printed.strip() == ("failed: RuntimeError: librdkafka: sasl.password=*** rejected"
                               " (BOUCLE_DEBUG=1 shows the traceback)")


def test_the_last_line_of_a_run_masks_the_url_password(settings):
    from rich.console import Console

    from boucle.flows.summary import print_outputs

    warehouse = settings.warehouse.model_copy(update={"url": "https://bob:s3cret-pw@ch.internal:8443/"})
    console = Console(file=io.StringIO(), width=300)
    print_outputs(console, settings.model_copy(update={"warehouse": warehouse}))
    text = console.file.getvalue()
    assert "warehouse: https://bob:***@ch.internal:8443/" in text and "s3cret-pw" not in text


def test_a_permanent_warehouse_error_stops_the_run_at_once_in_one_line(workspace):
    assert invoke("db", "migrate").exit_code == 0
    assert invoke("query", "--write", "RENAME TABLE feedback TO feedback_elsewhere").exit_code == 0
    result = invoke("run", "--days", "0.2", "--no-progress")  # not retried: a retry would hang here
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("warehouse error: ") and "feedback" in last and "UNKNOWN_TABLE" in last


def test_a_handler_added_after_the_config_is_loaded_gets_redacted_records():
    redact_logs(["late-pw"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("boucle.test").warning("sasl failed with late-pw")
    finally:
        logging.getLogger().removeHandler(handler)
        redact_logs([])
    assert stream.getvalue() == "sasl failed with ***\n"


def test_an_unreachable_server_ends_an_interactive_command_quickly_and_quietly(workspace, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BOUCLE_WAREHOUSE__URL", f"http://bob:s3cret-pw@127.0.0.1:{port}")
    monkeypatch.setenv("BOUCLE_WAREHOUSE__INTERACTIVE_TIMEOUT", "1s")
    result = invoke("query", "SELECT 1")
    assert result.exit_code == 1
    line = one_line(result)  # no retry warnings before it
    assert line.startswith(f"warehouse error: ClickHouse server at http://bob:***@127.0.0.1:{port} is unreachable"
                           " (connection refused); gave up after ")
    assert float(line.rsplit(" in ", 1)[1].rstrip("s")) <= 1.0  # the deadline, as the retry loop reports it


def test_a_password_equal_to_a_public_name_does_not_garble_messages(monkeypatch):
    """The compose demo's user, password and database are all `boucle`."""
    for key in ("USER", "PASSWORD", "DATABASE"):
        monkeypatch.setenv(f"BOUCLE_WAREHOUSE__{key}", "boucle")
    monkeypatch.setenv("BOUCLE_KAFKA__LIBRDKAFKA__SASL_PASSWORD", "pw")  # too short to search text for
    assert secrets_of(load_settings(SHIPPED_CONFIG)) == []


def test_a_full_disk_under_a_run_is_its_last_line(workspace, monkeypatch):
    monkeypatch.setenv("BOUCLE_OUTPUTS__ALERTS_JSONL", "/dev/full")
    result = invoke("run", "--days", "0.5", "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == "disk full: No space left on device"
