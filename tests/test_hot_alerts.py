"""Hot-alert rules (thresholds, compound, any attribute at minimum), routing, consent, cooldown."""

from datetime import timedelta

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.operators.decode import Decoder
from boucle.operators.hot_alerts import HotAlertBuilder
from boucle.sources.message import RawMessage


def event(i, minutes=0, **fields):
    base = {
        "event_id": f"e{i}",
        "occurred_at": f"2026-10-01T{8 + minutes // 60:02d}:{minutes % 60:02d}:00Z",
        "site_id": "store-0009",
        "channel": "store",
        "scores": {"nps": 8, "csat": 4},
        "attributes": {"waiting_time": 3},
        "comment": "",
        "customer": {"id": f"c{i}", "consent_contact": False},
    }
    base.update(fields)
    return base


def run(settings, events):
    alerts = []
    messages = [RawMessage(orjson.dumps(e), "t", 0, i) for i, e in enumerate(events)]
    run_main(build_flow(settings, TestingSource(messages), FlowOutputs(alerts=[TestingSink(alerts)])))
    return {a["response"]["event_id"]: a for a in alerts}


def build(settings, **fields):
    decoded = Decoder(settings).decode(RawMessage(orjson.dumps(event(1, **fields)), "t", 0, 0))
    return HotAlertBuilder(settings).build(decoded)


def test_passive_with_good_ratings_is_quiet(settings):
    assert build(settings) is None


def test_detractor_thresholds(settings):
    assert build(settings, scores={"nps": 6})["evidence"]["rules"] == ["detractor"]
    assert build(settings, scores={"nps": 6})["severity"] == "medium"
    strong = build(settings, scores={"nps": 2})
    assert strong["evidence"]["rules"] == ["strong_detractor", "detractor"]
    assert strong["severity"] == "high"
    assert build(settings, scores={"nps": 7}) is None


def test_compound_rule_needs_both_parts_in_either_language(settings):
    fr = build(settings, scores={"csat": 2}, comment="J'ai acheté un frigo livré cassé")
    assert fr["evidence"]["rules"] == ["csat_low_purchase"] and fr["severity"] == "critical"
    assert fr["evidence"]["purchase_keywords"] == ["acheté"]
    en = build(settings, scores={"csat": 2}, comment="My ORDER never arrived")
    assert en["evidence"]["rules"] == ["csat_low_purchase"]
    assert build(settings, scores={"csat": 2}, comment="Staff were rude") is None
    assert build(settings, scores={"csat": 3}, comment="my order was late") is None


def test_any_attribute_at_minimum(settings):
    alert = build(settings, attributes={"waiting_time": 1, "cleanliness": 4})
    assert alert["evidence"]["rules"] == ["attribute_at_minimum"]
    assert alert["evidence"]["attributes_at_minimum"] == ["waiting_time"]


def test_routed_to_the_site_owner_with_region_and_message_in_site_language(settings):
    alert = build(settings, scores={"nps": 1})
    site = settings.site_map()["store-0009"]
    assert (alert["owner"], alert["team"], alert["region"]) == (site.owner, site.team, site.region)
    assert alert["message"].startswith("Alerte client") and site.name in alert["message"]
    uk = build(settings, site_id="store-0041", scores={"nps": 1})
    assert uk["message"].startswith("Customer alert")


def test_contact_only_with_consent_and_comment_masked(settings):
    customer = {"id": "c1", "consent_contact": True, "email": "a@b.fr", "phone": "+33612345678"}
    alert = build(settings, scores={"nps": 1}, customer=customer, comment="écrivez à a@b.fr")
    assert alert["contact"] == {"id": "c1", "email": "a@b.fr", "phone": "+33612345678"}
    assert alert["response"]["comment"] == "écrivez à [email]"
    refused = build(settings, scores={"nps": 1}, customer={**customer, "consent_contact": False})
    assert "contact" not in refused
    assert "a@b.fr" not in orjson.dumps(refused).decode()


def test_alert_id_is_deterministic(settings):
    assert build(settings, scores={"nps": 1})["alert_id"] == build(settings, scores={"nps": 1})["alert_id"]


def test_one_hot_alert_per_customer_and_site_within_cooldown(settings):
    assert settings.hot_alerts.cooldown == timedelta(hours=24)
    same = {"id": "repeat", "consent_contact": True}
    alerts = run(
        settings,
        [
            event(1, 0, scores={"nps": 1}, customer=same),
            event(2, 30, scores={"nps": 0}, customer=same),  # same customer, 30 min later
            event(3, 40, scores={"nps": 0}, site_id="store-0010", customer=same),  # other site
            event(4, 50, scores={"nps": 2}, customer={"consent_contact": False}),  # no id: never merged
            event(5, 55, scores={"nps": 2}, customer={"consent_contact": False}),
        ],
    )
    assert sorted(alerts) == ["e1", "e3", "e4", "e5"]
    late_again = run(
        settings,
        [
            event(1, 0, scores={"nps": 1}, customer=same),
            event(2, 0, scores={"nps": 1}, customer=same, occurred_at="2026-10-02T08:00:00Z"),
        ],
    )
    assert sorted(late_again) == ["e1", "e2"]  # 24 h later the cooldown is over


def test_batch_matcher_agrees_with_the_single_one_on_every_condition_kind():
    from types import SimpleNamespace

    from boucle.config.loader import settings_from_dict
    from boucle.operators.hot_rules import HotRules

    settings = settings_from_dict({
        "regions": [{"id": "north"}], "sites": [{"id": "s1", "region": "north"}],
        "attributes": [{"name": "waiting_time"}, {"name": "cleanliness", "min": 0, "max": 10}],
        "hot_alerts": {
            "keywords": {"purchase": {"fr": ["Achat"], "en": ["order"]}},
            "rules": [
                {"name": "low_csat_purchase", "all": [{"score": "csat", "max": 2}, {"comment_mentions": "purchase"}]},
                {"name": "web_detractor", "all": [{"score": "nps", "min": 1, "max": 6}, {"channel_in": ["web"]}]},
                {"name": "slow", "all": [{"attribute": "waiting_time", "max": 1}]},
                {"name": "minimum", "all": [{"any_attribute_at_minimum": True}]},
            ],
        },
    })
    rules = HotRules(settings)
    events = [
        SimpleNamespace(scores=scores, attributes=attributes, comment=comment, channel=channel)
        for scores in ({}, {"nps": 0}, {"nps": 5, "csat": 1}, {"csat": 2}, {"nps": 9, "csat": 5})
        for attributes in ({}, {"waiting_time": 1}, {"cleanliness": 0}, {"waiting_time": 4, "cleanliness": 7})
        for comment in ("", "Mon ACHAT est cassé", "the order was late", "rien à dire")
        for channel in ("web", "store")
    ]
    expected = [(e, m) for e in events if (m := rules.matches(e.scores, e.attributes, e.comment, e.channel))]
    assert rules.matches_many(events) == expected
    assert {name for _, m in expected for name, _ in m} == {"low_csat_purchase", "web_detractor", "slow", "minimum"}


def test_hot_alert_has_the_contract_layout_of_new_alert(settings):
    from boucle.operators.alerts import new_alert

    alert = build(settings, scores={"nps": 2}, customer={"id": "c1", "consent_contact": True, "phone": "0612345678"})
    fields = {k: alert[k] for k in ("severity", "site_id", "region", "triggers", "evidence", "message", "owner", "team")}
    extra = {k: alert[k] for k in ("response", "contact")}
    same = new_alert(id=alert["alert_id"], kind="hot", event_ms=alert.event_ms, detected_ms=alert.detected_ms,
                     **fields, **extra)
    assert list(alert.items()) == list(same.items())


def test_hot_alert_of_an_event_without_channel_follows_the_schema(settings):
    import jsonschema

    from boucle.schemas import alert_schema

    fields = event(1, scores={"nps": 1})
    del fields["channel"]  # optional in the feedback contract
    decoded = Decoder(settings).decode(RawMessage(orjson.dumps(fields), "t", 0, 0))
    alert = HotAlertBuilder(settings).build(decoded)
    assert alert["response"]["channel"] == ""
    jsonschema.validate(orjson.loads(alert.json_bytes()), alert_schema())


def test_hot_alert_is_built_on_cpythons_fast_keyword_call():
    """More than 15 keyword arguments and CPython builds a dict per call (~0.6 µs per hot alert)."""
    import dis

    assert "CALL_FUNCTION_EX" not in {i.opname for i in dis.get_instructions(HotAlertBuilder.build)}
