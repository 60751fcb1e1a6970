"""Sites in any language (issue 16, item 5): any language tag is accepted; alert messages and
notifications are written in fr, en, de, es, it or nl, any other language in English."""

from __future__ import annotations

import orjson
import pytest
import tomllib

from boucle.config.loader import SHIPPED_CONFIG, ConfigError, settings_from_dict
from boucle.config.locales import SHIPPED, texts
from boucle.flows.notify.render import Renderer
from boucle.operators.decode import Decoder
from boucle.operators.hot_alerts import HotAlertBuilder
from boucle.sources.message import RawMessage

GERMAN, SWEDISH = "store-0009", "store-0041"


def shipped_with(languages: dict[str, str]):
    data = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    for site in data["sites"]:
        site["language"] = languages.get(site["id"], site.get("language", "fr"))
    return settings_from_dict(data, source=str(SHIPPED_CONFIG), base=SHIPPED_CONFIG.parent)


@pytest.fixture(scope="module")
def settings():
    return shipped_with({GERMAN: "de", SWEDISH: "sv-SE"})


def hot_alert(settings, site_id: str) -> dict:
    event = {"event_id": "e1", "occurred_at": "2026-10-01T08:00:00Z", "site_id": site_id, "channel": "store",
             "scores": {"nps": 1, "csat": 4}, "attributes": {}, "comment": "",
             "customer": {"id": "c1", "consent_contact": False}}
    decoded = Decoder(settings).decode(RawMessage(orjson.dumps(event), "t", 0, 0))
    return HotAlertBuilder(settings).build(decoded)


def test_a_german_site_gets_german_messages(settings):
    alert = hot_alert(settings, GERMAN)
    assert alert["message"].startswith("Kundenalarm (strong_detractor) in Lyon Part-Dieu: "), alert["message"]
    site = settings.site_map()[GERMAN]
    mail = Renderer({}, {GERMAN: site.name}, {}).email([alert], site.language)
    assert mail.subject.startswith("[Boucle] Hoch · Kundenalarm · "), mail.subject
    assert "Gesendet von Boucle" in mail.text


def test_a_language_boucle_does_not_ship_is_written_in_english(settings):
    assert "sv" not in SHIPPED
    assert hot_alert(settings, SWEDISH)["message"].startswith("Customer alert (strong_detractor) at ")
    assert Renderer({}, {}, {}).email([hot_alert(settings, SWEDISH)], "sv-SE").subject.startswith("[Boucle] High")


def test_a_language_name_is_refused_with_its_key_path():
    with pytest.raises(ConfigError, match=r"sites\[0\]\.language: .German. is not a language code"):
        shipped_with({"store-0001": "German"})


@pytest.mark.parametrize("language", [lang for lang in SHIPPED if lang != "en"])
@pytest.mark.parametrize("section", ["common", "notify", "alerts", "report"])
def test_every_shipped_language_translates_every_english_text(section, language):
    def keys(table, prefix=""):
        return {f"{prefix}{k}" if not isinstance(v, dict) else f"{prefix}{k}.{kk}"
                for k, v in table.items() if not k.startswith("_")
                for kk in (v if isinstance(v, dict) else [None])}

    english = keys(texts(section, "en"))
    own = tomllib.loads((SHIPPED_CONFIG.parent / "locales" / language / f"{section}.toml").read_text("utf-8"))
    assert keys(own) == english


@pytest.mark.parametrize("language", SHIPPED)
def test_every_translated_sentence_takes_the_fields_english_gives(language):
    import string

    def fields(text):
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english, own = texts("alerts", "en"), texts("alerts", language)
    for section, table in english.items():
        if isinstance(table, dict):
            for key, text in table.items():
                assert fields(own[section][key]) == fields(text), (section, key)


def test_a_question_label_in_any_language_reaches_the_message():
    data = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    for site in data["sites"]:
        site["language"] = "de" if site["id"] == GERMAN else site.get("language", "fr")
    waiting = next(a for a in data["attributes"] if a["name"] == "waiting_time")
    waiting["labels"] = {"de": "Wartezeit"}
    settings = settings_from_dict(data, source=str(SHIPPED_CONFIG), base=SHIPPED_CONFIG.parent)
    questions = {name: m.labels_by_language(name) for name, m in settings.questions().items()}
    alert = {"alert_id": "a1", "kind": "attribute", "status": "open", "severity": "high", "site_id": GERMAN,
             "attribute": "waiting_time", "message": "…", "event_time": "2026-12-03T10:00:00.000Z"}
    assert "Wartezeit" in Renderer(questions, {}, {}).email([alert], "de-AT").text
    assert "Wartezeit" not in Renderer(questions, {}, {}).email([alert], "sv").text  # English label
    with pytest.raises(ConfigError, match=r"attributes\[\d+\]\.labels"):
        waiting["labels"] = {"Deutsch": "Wartezeit"}
        settings_from_dict(data, source=str(SHIPPED_CONFIG), base=SHIPPED_CONFIG.parent)
