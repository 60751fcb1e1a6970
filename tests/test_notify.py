"""`boucle notify` (issue 17, item 2) against real receivers: an SMTP server (aiosmtpd) and HTTP
servers on loopback, with a manual clock for quiet hours, digests and retries (no sleeping)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import orjson
import pytest
from notify_receivers import HttpReceiver, MailServer

from boucle.config.loader import settings_from_dict
from boucle.flows.notify.clock import ManualClock
from boucle.flows.notify.ledger import Ledger
from boucle.flows.notify.notifier import notifier_from_settings
from boucle.sinks.notify.signing import verify

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)  # 13:00 in Paris, 12:00 in London
SECRET = "whsec-test"


def registry(smtp_port: int, routes: list[dict], webhooks: dict | None = None, **notify) -> dict:
    return {
        "regions": [{"id": "idf", "name": "Île-de-France", "manager": "ops-idf@example.org", "timezone": "Europe/Paris"},
                    {"id": "uk", "name": "UK South", "manager": "ops-uk@example.org", "timezone": "Europe/London"}],
        "sites": [
            {"id": "s1", "name": "Paris Bercy", "region": "idf", "language": "fr", "owner": "owner-s1@example.org",
             "team": "frontline-s1", "team_email": "team-s1@example.org", "manager": "ops-idf@example.org"},
            {"id": "s2", "name": "Créteil", "region": "idf", "language": "fr", "owner": "owner-s2@example.org"},
            {"id": "s3", "name": "Brighton", "region": "uk", "language": "en", "owner": "owner-s3@example.org"},
        ],
        "notify": {"smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                            "from_address": "boucle@example.org"},
                   "routes": routes, "webhooks": webhooks or {},
                   "retry": {"attempts": 3, "initial": "1s", "max": "10s", "jitter": "1s"}, **notify},
    }


def alert(n: int, *, site: str = "s1", severity: str = "high", kind: str = "hot", status: str = "open",
          region: str = "idf", comment: str = "Attente interminable en caisse", attribute=None) -> bytes:
    body = {"schema": "boucle.alert/1", "alert_id": f"00000000-0000-5000-8000-{n:012d}", "kind": kind,
            "status": status, "severity": severity, "site_id": site, "region": region, "attribute": attribute,
            "triggers": ["rule"], "evidence": {}, "message": f"NPS 2 ({n}).",
            "event_time": "2026-12-03T11:59:00.000Z", "detected_at": "2026-12-03T11:59:01.000Z"}
    if kind == "hot":
        body["response"] = {"event_id": f"e{n}", "channel": "store", "scores": {"nps": 2}, "attributes": {},
                            "comment": comment}
    return orjson.dumps(body)


@pytest.fixture
def mail():
    with MailServer() as server:
        yield server


def make(tmp_path, config: dict, clock: ManualClock | None = None, environ: dict | None = None):
    settings = settings_from_dict(config)
    dead: list = []
    notifier = notifier_from_settings(settings, dead.append, ledger=Ledger(tmp_path / "ledger.sqlite"),
                                      clock=clock or ManualClock(NOON),
                                      environ={"HOOK_SECRET": SECRET, **(environ or {})})
    return notifier, dead


def test_an_alert_reaches_its_routed_recipients_once(tmp_path, mail):
    with HttpReceiver() as slack, HttpReceiver() as teams:
        hooks = {"ops-slack": {"format": "slack", "url": slack.url}, "ops-teams": {"format": "teams", "url": teams.url}}
        routes = [{"name": "hot-now", "kinds": ["hot"], "min_severity": "high", "to": ["owner", "team", "manager"],
                   "webhooks": ["ops-slack", "ops-teams"]},
                  {"name": "escalate", "kinds": ["hot"], "severities": ["high"], "to": ["region_manager"]},
                  {"name": "uk-only", "regions": ["uk"], "to": ["owner"]}]
        notifier, dead = make(tmp_path, registry(mail.port, routes, hooks))
        record = alert(1, comment="<script>alert(1)</script> & <!channel>")
        assert notifier.accept(record) == 5  # owner, team, manager (= region manager), Slack, Teams
        assert notifier.accept(record) == 0  # the same alert again (a replay): nothing new
        assert notifier.tick() == 5
        assert notifier.tick() == 0

        assert sorted(r for rcpts, _ in mail.messages for r in rcpts) == [
            "ops-idf@example.org", "owner-s1@example.org", "team-s1@example.org"]
        assert len(mail.sessions) == 1  # one SMTP connection carried the tick's three messages
        [message] = mail.to("owner-s1@example.org")
        assert message["Subject"] == "[Boucle] Élevée · Alerte client · Paris Bercy"  # the site's language
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in html and "<script>" not in html
        assert "<script>alert(1)</script>" in text
        assert message["X-Boucle-Delivery"]

        [post] = slack.requests
        body = json.loads(post.body)
        assert body["blocks"][0]["text"]["text"] == "Élevée · Alerte client · Paris Bercy"
        assert "&lt;!channel&gt;" in body["blocks"][1]["text"]["text"] and "<!channel>" not in post.body.decode()
        [card] = json.loads(teams.requests[0].body)["attachments"]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["type"] == "AdaptiveCard" and len(teams.requests) == 1
    assert dead == []
    assert notifier.metrics()["email"]["sent"] == 3 and notifier.metrics()["slack"]["sent"] == 1


def test_a_digest_gathers_the_hour_of_a_site_and_critical_goes_at_once(tmp_path, mail):
    routes = [{"name": "medium-digest", "kinds": ["hot"], "severities": ["medium"], "to": ["owner"], "digest": "1h"},
              {"name": "critical-now", "kinds": ["hot"], "severities": ["critical"], "to": ["owner"]}]
    clock = ManualClock(NOON.replace(minute=5))
    notifier, _ = make(tmp_path, registry(mail.port, routes), clock)
    for n in (1, 2, 3):
        notifier.accept(alert(n, severity="medium"))
    notifier.accept(alert(4, site="s2", severity="medium"))
    notifier.accept(alert(5, severity="critical"))
    notifier.accept(alert(6, severity="low"))  # no route: nobody
    assert notifier.tick() == 1
    [(rcpts, critical)] = mail.messages
    assert rcpts == ["owner-s1@example.org"] and "Critique" in critical["Subject"]

    clock.set(NOON.replace(minute=59))
    assert notifier.tick() == 0  # the hour is not over
    clock.set(NOON.replace(hour=13, minute=0))
    notifier.accept(alert(7, severity="medium"))  # the next hour: the next digest
    assert notifier.tick() == 2
    s1 = [m for m in mail.to("owner-s1@example.org") if m is not critical]
    [s2] = mail.to("owner-s2@example.org")
    assert [m["Subject"] for m in s1] == ["[Boucle] 3 alertes · Paris Bercy"]
    assert s2["Subject"] == "[Boucle] Élevée · Alerte client · Créteil".replace("Élevée", "Moyenne")
    text = s1[0].get_body(("plain",)).get_content()
    assert all(f"NPS 2 ({n})." in text for n in (1, 2, 3)) and "NPS 2 (7)." not in text
    clock.set(NOON.replace(hour=14))
    assert notifier.tick() == 1 and "NPS 2 (7)." in mail.messages[-1][1].get_body(("plain",)).get_content()


def test_quiet_hours_hold_a_non_critical_alert_until_morning(tmp_path, mail):
    routes = [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}]
    night = datetime(2026, 12, 3, 21, 30, tzinfo=timezone.utc)  # 22:30 in Paris
    clock = ManualClock(night)
    config = registry(mail.port, routes, quiet_hours={"start": "21:00", "end": "07:00"})
    notifier, _ = make(tmp_path, config, clock)
    notifier.accept(alert(1, severity="high"))
    notifier.accept(alert(2, severity="critical"))
    assert notifier.tick() == 1  # the critical one wakes them up
    [(_, critical)] = mail.messages
    assert "Critique" in critical["Subject"]
    assert notifier.metrics()["email"]["held"] == 1
    clock.set(datetime(2026, 12, 4, 5, 59, tzinfo=timezone.utc))  # 06:59 in Paris
    assert notifier.tick() == 0
    clock.set(datetime(2026, 12, 4, 6, 0, tzinfo=timezone.utc))  # 07:00 in Paris
    assert notifier.tick() == 1
    assert "Élevée" in mail.messages[-1][1]["Subject"]


def test_quiet_hours_follow_the_recipients_time_zone(tmp_path, mail):
    routes = [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}]
    config = registry(mail.port, routes, quiet_hours={"start": "21:00", "end": "07:00"},
                      contacts=[{"id": "owner-s3@example.org", "timezone": "America/New_York"}])
    clock = ManualClock(datetime(2026, 12, 4, 6, 30, tzinfo=timezone.utc))  # 07:30 Paris, 01:30 New York
    notifier, _ = make(tmp_path, config, clock)
    notifier.accept(alert(1, site="s1"))
    notifier.accept(alert(2, site="s3", region="uk"))
    assert notifier.tick() == 1 and mail.to("owner-s1@example.org") and not mail.to("owner-s3@example.org")
    clock.set(datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc))  # 07:00 in New York
    assert notifier.tick() == 1 and mail.to("owner-s3@example.org")


def test_a_receiver_down_for_a_while_gets_the_message_after_retries(tmp_path, mail):
    hook = HttpReceiver()  # its port is reserved, nothing listens yet: connection refused
    hooks = {"crm": {"format": "json", "url": hook.url, "secret_env": "HOOK_SECRET"}}
    clock = ManualClock(NOON)
    notifier, dead = make(tmp_path, registry(mail.port, [{"name": "all", "webhooks": ["crm"]}], hooks), clock)
    notifier.accept(alert(1))
    assert notifier.tick() == 0
    assert notifier.metrics()["json"]["retried"] == 1
    [row] = notifier.ledger.rows()
    assert row["state"] == "pending" and "ConnectError" in row["reason"] and row["next_at"] > NOON.timestamp()
    with hook:
        assert notifier.tick() == 0  # the backoff is not over: not tried again yet
        clock.advance(seconds=11)  # past retry.max + jitter
        assert notifier.tick() == 1
        [post] = hook.requests
    assert dead == []
    body = json.loads(post.body)
    assert body["alerts"][0]["alert_id"].endswith("000000000001") and body["recipient"] == "crm"
    assert verify(post.body, post.headers, SECRET, now=clock.now().timestamp())
    assert not verify(post.body.replace(b"NPS 2", b"NPS 9"), post.headers, SECRET, now=clock.now().timestamp())
    assert not verify(post.body, post.headers, "another secret", now=clock.now().timestamp())


def test_a_receiver_that_always_fails_puts_the_alert_in_the_dead_letters_with_its_reason(tmp_path, mail):
    with HttpReceiver(status=503) as flaky, HttpReceiver(status=404) as gone:
        hooks = {"flaky": {"format": "slack", "url": flaky.url}, "gone": {"format": "teams", "url": gone.url}}
        clock = ManualClock(NOON)
        notifier, dead = make(tmp_path, registry(mail.port, [{"name": "all", "webhooks": ["flaky", "gone"]}], hooks),
                              clock)
        notifier.accept(alert(1))
        for _ in range(5):
            notifier.tick()
            clock.advance(seconds=11)
    assert len(flaky.requests) == 3 and len(gone.requests) == 1  # retry.attempts; a 404 is not retried
    by_channel = {d.channel: d for d in dead}
    assert set(by_channel) == {"slack", "teams"}
    assert by_channel["slack"].reason == "http 503 Service Unavailable from 127.0.0.1 (3 attempts)"
    assert by_channel["teams"].reason == "http 404 Not Found from 127.0.0.1 (permanent)"
    letter = json.loads(by_channel["slack"].json())
    assert letter["alert"]["alert_id"].endswith("000000000001") and letter["attempts"] == 3
    assert notifier.metrics()["slack"] == {"sent": 0, "alerts": 0, "retried": 2, "failed": 1, "held": 0}
    assert {r["state"] for r in notifier.ledger.rows()} == {"dead"}


def test_a_restarted_notifier_does_not_resend_what_was_delivered(tmp_path, mail):
    routes = [{"name": "hot", "kinds": ["hot"], "to": ["owner"]},
              {"name": "digest", "kinds": ["attribute"], "to": ["owner"], "digest": "1h"}]
    clock = ManualClock(NOON)
    first, _ = make(tmp_path, registry(mail.port, routes), clock)
    first.accept(alert(1))
    first.accept(alert(2, kind="attribute", attribute="waiting_time"))  # waits for its digest
    assert first.tick() == 1
    first.close()  # the process stops before its offsets were committed

    second, _ = make(tmp_path, registry(mail.port, routes), clock)
    assert second.accept(alert(1)) == 0 and second.accept(alert(2, kind="attribute", attribute="waiting_time")) == 0
    assert second.tick() == 0
    clock.advance(hours=1)
    assert second.tick() == 1  # the digest survived the restart
    second.accept(alert(1, status="resolved"))  # a new status of the same alert is news
    assert second.tick() == 1
    subjects = [m["Subject"] for _, m in mail.messages]
    assert len(subjects) == 3 and "(résolue)" in subjects[-1] and "Temps" not in subjects[1]


def test_a_regional_incident_reaches_the_region_manager_in_the_regions_language(tmp_path, mail):
    routes = [{"name": "regional", "kinds": ["regional_incident"], "to": ["owner", "region_manager"]}]
    notifier, dead = make(tmp_path, registry(mail.port, routes))
    notifier.accept(alert(1, kind="regional_incident", site="", region="uk", attribute="waiting_time"))
    assert notifier.tick() == 1 and dead == []
    [(rcpts, message)] = mail.messages
    assert rcpts == ["ops-uk@example.org"]
    assert message["Subject"] == "[Boucle] High · Regional incident · UK South · waiting_time"


def test_what_cannot_be_delivered_is_dead_lettered_not_dropped(tmp_path, mail):
    routes = [{"name": "team", "kinds": ["hot"], "to": ["team"]}]  # s2 has no team address
    notifier, dead = make(tmp_path, registry(mail.port, routes))
    notifier.accept(b"\x00 not json", origin="boucle.alerts/0/7")
    notifier.accept(b'{"alert_id": 3}', origin="boucle.alerts/0/8")
    notifier.accept(alert(4, site="s2"))
    notifier.accept(alert(4, site="s2"))
    notifier.tick()
    reasons = sorted(d.reason.split(":")[0] for d in dead)
    assert reasons == ["no_recipient", "not_an_alert", "not_an_alert"]
    assert any("team of s2" in d.reason for d in dead)
    assert mail.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_smtp_login_comes_from_the_environment(tmp_path):
    with MailServer(login=("boucle", "pa55")) as server:
        routes = [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}]
        good, dead = make(tmp_path / "a", registry(server.port, routes),
                          environ={"BOUCLE_SMTP_USERNAME": "boucle", "BOUCLE_SMTP_PASSWORD": "pa55"})
        good.accept(alert(1))
        assert good.tick() == 1 and len(server.messages) == 1
        anonymous, dead = make(tmp_path / "b", registry(server.port, routes))  # no login in the environment
        anonymous.accept(alert(1))
        assert anonymous.tick() == 0 and len(server.messages) == 1
        [letter] = dead
        assert letter.reason.startswith("smtp 530") and "(permanent)" in letter.reason


def test_bad_notify_config_fails_at_start_with_the_key_path(mail):
    from boucle.config.loader import ConfigError

    with pytest.raises(ConfigError, match=r"notify.*unknown webhook nope"):
        settings_from_dict(registry(mail.port, [{"name": "x", "webhooks": ["nope"]}]))
    with pytest.raises(ConfigError, match=r"notify.*timezone.*unknown time zone 'Paris'"):
        settings_from_dict(registry(mail.port, [], timezone="Paris"))
    with pytest.raises(ConfigError, match=r"notify.routes\[0\].*needs recipients"):
        settings_from_dict(registry(mail.port, [{"name": "x"}]))
    with pytest.raises(ConfigError, match=r"notify.routes\[0\].sites\[0\]: unknown site 'nowhere'"):
        settings_from_dict(registry(mail.port, [{"name": "x", "sites": ["nowhere"], "to": ["owner"]}]))


def test_the_ledger_forgets_delivered_rows_after_its_retention(tmp_path, mail):
    clock = ManualClock(NOON)
    notifier, _ = make(tmp_path, registry(mail.port, [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}],
                                          ledger_retention="1d"), clock)
    notifier.accept(alert(1))
    assert notifier.tick() == 1 and len(notifier.ledger.rows()) == 1
    clock.advance(hours=23)
    notifier.tick()
    assert len(notifier.ledger.rows()) == 1  # still remembered: a replay now is not delivered again
    clock.advance(hours=2)
    notifier.tick()
    assert notifier.ledger.rows() == []


@pytest.fixture
def tls(tmp_path, monkeypatch):
    """A private CA trusted through SSL_CERT_FILE (as a user of a private CA would), and the relay's context."""
    import ssl

    import trustme
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return server


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd: implicit TLS is TLS too
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_goes_over_tls_with_the_login_from_the_environment(tmp_path, tls, security):
    kwargs = {"starttls": tls} if security == "starttls" else {"implicit_tls": tls}
    with MailServer(login=("boucle", "pa55"), **kwargs) as server:
        config = registry(server.port, [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}])
        config["notify"]["smtp"]["security"] = security
        notifier, dead = make(tmp_path, config, environ={"BOUCLE_SMTP_USERNAME": "boucle", "BOUCLE_SMTP_PASSWORD": "pa55"})
        notifier.accept(alert(1))
        assert notifier.tick() == 1 and dead == []
        assert [rcpts for rcpts, _ in server.messages] == [["owner-s1@example.org"]]


def test_starttls_is_required_when_asked_for(tmp_path, mail):
    config = registry(mail.port, [{"name": "hot", "kinds": ["hot"], "to": ["owner"]}])
    config["notify"]["smtp"]["security"] = "starttls"  # the test relay offers no STARTTLS
    notifier, dead = make(tmp_path, config)
    notifier.accept(alert(1))
    assert notifier.tick() == 0 and mail.messages == [] and dead == []
    [row] = notifier.ledger.rows()
    assert "STARTTLS" in row["reason"] and row["state"] == "pending"  # retried: the relay may be fixed


def test_a_password_is_not_sent_in_clear_to_a_remote_relay():
    from boucle.sinks.notify.smtp import SmtpSender

    with pytest.raises(ValueError, match="in clear"):
        SmtpSender("smtp.example.org", 25, security="none", from_address="a@b", username="u", password="p")


def test_the_digests_of_a_night_go_out_as_one_in_the_morning(tmp_path, mail):
    routes = [{"name": "hourly", "kinds": ["hot"], "to": ["owner"], "digest": "1h"}]
    clock = ManualClock(datetime(2026, 12, 3, 19, 30, tzinfo=timezone.utc))  # 20:30 in Paris
    notifier, _ = make(tmp_path, registry(mail.port, routes, quiet_hours={"start": "21:00", "end": "07:00"}), clock)
    notifier.accept(alert(1))  # its hour ends at 21:00 Paris: quiet already
    clock.set(datetime(2026, 12, 3, 23, 10, tzinfo=timezone.utc))
    notifier.accept(alert(2))
    clock.set(datetime(2026, 12, 4, 3, 40, tzinfo=timezone.utc))
    notifier.accept(alert(3))
    notifier.accept(alert(4, site="s2"))
    clock.set(datetime(2026, 12, 4, 5, 59, tzinfo=timezone.utc))
    assert notifier.tick() == 0
    clock.set(datetime(2026, 12, 4, 6, 0, tzinfo=timezone.utc))  # 07:00 in Paris
    assert notifier.tick() == 2
    [s1] = mail.to("owner-s1@example.org")
    assert s1["Subject"] == "[Boucle] 3 alertes · Paris Bercy" and len(mail.to("owner-s2@example.org")) == 1


def test_an_alert_that_would_break_a_header_is_dead_lettered_not_a_crash(tmp_path, mail):
    notifier, dead = make(tmp_path, registry(mail.port, [{"name": "all", "to": ["owner"]}]))
    evil = orjson.loads(alert(1))
    notifier.accept(orjson.dumps({**evil, "alert_id": "x\r\nBcc: everyone@example.org"}), origin="t/0/1")
    notifier.accept(orjson.dumps({**evil, "attribute": "waiting\r\nBcc: everyone@example.org"}))
    notifier.accept(orjson.dumps({**evil, "alert_id": evil["alert_id"][:-1] + "2", "response": "not a dict",
                                  "evidence": [1]}))
    assert notifier.tick() == 2
    assert [d.reason.split(":")[0] for d in dead] == ["not_an_alert"]
    subjects = [m["Subject"] for _, m in mail.messages]
    assert all("\n" not in s for s in subjects) and any("waiting Bcc" in s for s in subjects)
    assert all(rcpts == ["owner-s1@example.org"] for rcpts, _ in mail.messages)


def test_each_distinct_update_of_an_alert_is_delivered_once(tmp_path, mail):
    notifier, _ = make(tmp_path, registry(mail.port, [{"name": "all", "to": ["owner"]}]))
    opened = orjson.loads(alert(1))
    contacted = {**opened, "status": "updated", "evidence": {"case": "contacted"}, "message": "Contacted."}
    escalated = {**contacted, "evidence": {"case": "escalated"}, "message": "Escalated."}
    for record in (opened, contacted, {**contacted, "detected_at": "2026-12-03T13:00:00.000Z"}, escalated, escalated):
        notifier.accept(orjson.dumps(record))
    assert notifier.tick() == 3
    assert [m.get_body(("plain",)).get_content().splitlines()[1] for _, m in mail.messages] == [
        "NPS 2 (1).", "Contacted.", "Escalated."]
