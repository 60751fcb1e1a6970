"""`boucle notify` as a user drives it: the shipped example routes load, `plan` shows who gets what,
`run --to-end` delivers from the real broker to a real SMTP server, `status` reads the ledger."""

from __future__ import annotations

import re

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kafka_broker import unique_topic
from notify_receivers import MailServer
from test_notify import alert
from typer.testing import CliRunner

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.flows.cli.app import app

runner = CliRunner()


def shipped_with_examples(tmp_path, **replace: str):
    """The shipped boucle.toml with the commented [notify] examples switched on."""
    text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    head, _, notify = text.partition("\n[notify]\n")
    notify = re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", notify)
    for old, new in replace.items():
        notify = notify.replace(old, new)
    path = tmp_path / "boucle.toml"
    path.write_text(head + "\n[notify]\n" + notify, encoding="utf-8")
    return path


def test_the_shipped_config_sends_nothing_and_its_examples_load(tmp_path, settings):
    assert settings.notify.routes == [] and settings.notify.webhooks == {}
    examples = load_settings(shipped_with_examples(tmp_path))
    assert [r.name for r in examples.notify.routes] == ["hot-critical-now", "hot-medium-hourly", "regional"]
    assert set(examples.notify.webhooks) == {"ops-slack", "crm"} and examples.notify.quiet_hours is not None


def test_run_without_routes_is_one_line():
    result = runner.invoke(app, ["notify", "run", "--brokers", "127.0.0.1:1"])
    assert result.exit_code == 2 and "no [[notify.routes]]" in result.output


def test_plan_shows_who_gets_each_alert_and_when(tmp_path):
    config = shipped_with_examples(tmp_path)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"\n".join([
        alert(1, site="store-0001", region="ile-de-france", severity="critical"),
        alert(2, site="store-0001", region="ile-de-france", severity="medium"),
        alert(3, site="", kind="regional_incident", region="uk-south", attribute="waiting_time"),
    ]))
    result = runner.invoke(app, ["--config", str(config), "notify", "plan", str(alerts), "--at", "2026-12-03T12:05:00Z"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("manager.store-0001@boucle.example" in line and "now" in line for line in lines)
    assert any("frontline-store-0001" in line for line in lines)  # no team address: a dead letter, said so
    assert any("hot-medium-hourly" in line and "2026-12-03T13:00" in line for line in lines)
    assert any("ops-uk-south@boucle.example" in line and "regional" in line for line in lines)


def test_run_to_end_delivers_from_the_broker_and_status_reads_the_ledger(tmp_path, kafka_broker):
    topic = unique_topic("boucle.alerts")
    kafka_broker.admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce(topic, alert(1, site="store-0041", region="uk-south", severity="critical"), key=b"store-0041")
    assert producer.flush(10) == 0
    with MailServer() as mail:
        config = shipped_with_examples(tmp_path, **{'port = 587': f'port = {mail.port}',
                                                    'security = "starttls"': 'security = "none"',
                                                    'host = "localhost"': 'host = "127.0.0.1"'})
        env = {"BOUCLE_NOTIFY__DLQ_TOPIC": unique_topic("boucle.notify-dlq"), "BOUCLE_SLACK_OPS_URL": "http://127.0.0.1:9/x",
               "BOUCLE_CRM_WEBHOOK_SECRET": "s", "BOUCLE_NOTIFY__GROUP_ID": unique_topic("boucle-notify"),
               "BOUCLE_NOTIFY__REPORT_EVERY": "0s"}
        ledger = tmp_path / "notify.sqlite"
        args = ["--config", str(config), "notify", "run", "--brokers", kafka_broker.bootstrap, "--topic", topic,
                "--ledger", str(ledger), "--to-end"]
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert "Deliveries" in result.output and "email" in result.output
        assert "deliveries · email: 1 sent, 0 retried, 0 failed, 0 held" in result.output  # the periodic line
        assert sorted(r for rcpts, _ in mail.messages for r in rcpts) == [
            "manager.store-0041@boucle.example"]  # the owner; the team has no e-mail address
        assert mail.messages[0][1]["Subject"].startswith("[Boucle] Critical · Customer alert · London Oxford Street")
    status = runner.invoke(app, ["--config", str(config), "notify", "status", "--ledger", str(ledger)],
                           env={"COLUMNS": "200"})
    assert status.exit_code == 0 and re.search(r"email\s*│\s*0\s*│\s*1\s*│", status.output), status.output
