"""Comment themes: cues from the catalogue in any language, negations, counts per site and window, theme_surge alerts."""

from __future__ import annotations

import pytest

from boucle.config.loader import load_settings
from boucle.config.settings import Site, Themes
from boucle.operators.decode import Feedback
from boucle.operators.themes import ThemeDetector, ThemeWindows

DAY = 86_400_000
T0 = 1_790_812_800_000  # 2026-10-01T00:00:00Z
detect = ThemeDetector(load_settings().theme_lexicons())  # the demo's cues, from the shipped config


@pytest.mark.parametrize(
    "text, lang, themes",
    [
        ("Attente interminable à l'accueil.", "fr", ["waiting_time"]),
        ("Pas trop long, merci.", "fr", []),
        ("C'était pas trop long finalement", "fr", []),
        ("Attente pas trop longue, merci.", "fr", []),
        ("Aucune attente en caisse.", "fr", []),
        ("Trop long, et le vendeur était désagréable.", "fr", ["staff_friendliness", "waiting_time"]),
        ("Le produit annoncé n'était pas disponible.", "fr", ["product_availability"]),
        ("Magasin pas sale du tout.", "fr", []),
        ("Trop cher pour ce que c'est.", "fr", ["price_perception"]),
        ("The wait was not too long.", "en", []),
        ("Waited far too long to be served.", "en", ["waiting_time"]),
        ("No queue at the tills.", "en", []),
        ("Staff were not unfriendly at all, quite the opposite.", "en", []),
        ("The store was dirty and the staff member was rude.", "en", ["cleanliness", "staff_friendliness"]),
        ("Didn't find it expensive.", "en", []),
        ("The advertised item was not available.", "en", ["product_availability"]),
        ("", "fr", []),
    ],
)
def test_detection_with_negations(text, lang, themes):
    assert detect(text, lang) == themes


def test_every_simulated_irritant_is_found_and_no_praise_is():
    from boucle.sources.simulator.text import _PHRASES

    for attribute, (irritants_fr, irritants_en, praise_fr, praise_en) in _PHRASES.items():
        for text in irritants_fr:
            assert attribute in detect(text, "fr"), text
        for text in irritants_en:
            assert attribute in detect(text, "en"), text
        for text in praise_fr:
            assert detect(text, "fr") == [], text
        for text in praise_en:
            assert detect(text, "en") == [], text


def test_configured_lexicons_add_themes():
    custom = ThemeDetector({**load_settings().theme_lexicons(),
                            "parking": {"fr": [r"parking (?:complet|plein)"], "en": [r"no parking space"]}})
    assert custom("Parking complet encore une fois", "fr") == ["parking"]
    assert custom("Pas parking complet", "fr") == []
    assert "parking" in custom.themes and "waiting_time" in custom.themes


def _event(i: int, ts: int, comment: str, lang: str = "fr") -> Feedback:
    return Feedback(f"e{i}", ts, "s1", "store", "", {"nps": 3}, {}, comment, lang, {}, ts, "t:0:0")


def test_counts_per_window_and_one_surge_alert_when_a_theme_jumps():
    site = Site(id="s1", name="Lyon", region="north", owner="o@x", language="fr")
    windows = ThemeWindows(site, detect, Themes(window="1d", min_count=5, min_windows=3), 2 * 3_600_000)
    out, i = [], 0
    for day in range(7):
        surge = day in (4, 5)
        for k in range(20):
            text = "Attente interminable." if (surge and k < 10) or k == 0 else "Trop cher pour ce que c'est."
            out += windows.add([_event(i, T0 + day * DAY + k * 60_000, text)])
            i += 1
    out += windows.flush()
    rows = [r for kind, r in out if kind == "row"]
    day0 = {r[4]: (r[5], r[6]) for r in rows if r[3] == T0}
    assert day0 == {"waiting_time": (1, 20), "price_perception": (19, 20)}
    assert {r[3] for r in rows} == {T0 + d * DAY for d in range(7)}
    alerts = [a for kind, a in out if kind == "alert"]
    assert len(alerts) == 1  # day 5 continues the surge of day 4: no second alert
    alert = alerts[0]
    assert (alert["kind"], alert["attribute"], alert["evidence"]["window_start"]) == (
        "theme_surge", "waiting_time", "2026-10-05T00:00:00.000Z")
    assert alert["evidence"]["n"] == 10 and alert["evidence"]["baseline_share"] == pytest.approx(0.05)


def test_snapshot_is_plain_data_and_resumes_under_the_current_site_and_rule():
    import pickle

    site = Site(id="s1", name="Lyon", region="north", owner="o@x", language="fr")
    themes = Themes(window="1d", min_count=5, min_windows=3)

    def day(windows, d: int) -> list:
        texts = ["Attente interminable." if (d == 4 and k < 10) or k == 0 else "Trop cher." for k in range(20)]
        return windows.add([_event(d * 100 + k, T0 + d * DAY + k * 60_000, t) for k, t in enumerate(texts)])

    straight = ThemeWindows(site, detect, themes, 2 * 3_600_000)
    expected = [x for d in range(6) for x in day(straight, d)] + straight.flush()
    first = ThemeWindows(site, detect, themes, 2 * 3_600_000)
    out = [x for d in range(4) for x in day(first, d)]
    snapshot = pickle.loads(pickle.dumps(first.snapshot()))
    assert repr(snapshot) == repr(eval(repr(snapshot)))  # dicts, tuples and numbers only
    moved = Site(id="s1", name="Lyon Part-Dieu", region="north", owner="new@x", language="fr")
    resumed = ThemeWindows(moved, detect, themes, 2 * 3_600_000, snapshot)
    out += [x for d in (4, 5) for x in day(resumed, d)] + resumed.flush()
    assert [x for kind, x in out if kind == "row"] == [x for kind, x in expected if kind == "row"]
    alerts = [x for kind, x in out if kind == "alert"]
    assert len(alerts) == 1 and alerts[0]["owner"] == "new@x" and "Lyon Part-Dieu" in alerts[0]["message"]
    assert alerts[0]["evidence"] == next(x for kind, x in expected if kind == "alert")["evidence"]


# -- themes follow the catalogue ------------------------------------------------------------------
REGISTRY = {"regions": [{"id": "europe"}],
            "sites": [{"id": "fl-0001", "name": "Paris CDG", "region": "europe", "language": "fr"},
                      {"id": "fl-0002", "name": "Frankfurt", "region": "europe", "language": "de"}]}
AIRLINE = [
    {"name": "legroom", "complaints": {"en": ["no legroom", r"cramped\w*", "knees (?:against|touching)"],
                                       "fr": ["pas de place pour les jambes", r"serrés?"],
                                       "de": [r"beinfreiheit (?:war )?(?:viel )?zu (?:eng|knapp)", r"eng\w*"]}},
    {"name": "boarding", "complaints": {"en": ["chaotic boarding", r"boarding was (?:a )?(?:chaos|mess)"],
                                        "de": [r"chaotisch\w*", "einsteigen dauerte ewig"]}},
    {"name": "meal"},  # asked, but no complaint cues: no theme
]


def _airline(**extra):
    from boucle.config.loader import settings_from_dict

    return settings_from_dict({**REGISTRY, "attributes": AIRLINE, **extra}, "airline.toml")


def test_an_airline_catalogue_themes_with_its_own_phrases_and_never_the_demo_s():
    settings = _airline()
    airline = ThemeDetector(settings.theme_lexicons())
    assert airline.themes == ["boarding", "legroom"]
    assert airline("Cramped seats, my knees against the tray table.", "en") == ["legroom"]
    assert airline("Chaotic boarding and no legroom at all.", "en") == ["boarding", "legroom"]
    assert airline("Pas de place pour les jambes.", "fr") == ["legroom"]
    # The demo's cues are not there: "hard to find" was store_layout, "dirty" cleanliness.
    assert airline("The gate was hard to find and the cabin was dirty.", "en") == []
    assert "store_layout" not in airline.themes


@pytest.mark.parametrize(
    "text, themes",
    [
        ("Die Beinfreiheit war viel zu eng.", ["legroom"]),
        ("Das Einsteigen dauerte ewig, total chaotisch.", ["boarding"]),
        ("Das Boarding war nicht chaotisch, alles gut.", []),
        ("Keine engen Sitze, sehr bequem.", []),
        ("Kein Problem beim Boarding, aber die Sitze waren eng.", ["legroom"]),  # "aber" starts a new clause
    ],
)
def test_a_german_comment_is_matched_by_german_phrases_with_german_negations(text, themes):
    assert ThemeDetector(_airline().theme_lexicons())(text, "de") == themes


def test_a_language_without_phrases_matches_nothing_and_a_regional_tag_uses_its_language():
    assert detect("The store was dirty.", "de") == []  # the demo gives fr and en cues only
    assert detect("The store was dirty.", "") == []
    assert detect("The store was dirty.", "en-GB") == ["cleanliness"]
    assert detect("Magasin sale.", "FR_be") == ["cleanliness"]


@pytest.mark.parametrize(
    "language, cue, complaint, praise",
    [
        ("es", "sucio", "El baño estaba sucio.", "El baño no estaba sucio."),
        ("it", "sporco", "Il bagno era sporco.", "Il bagno non era sporco."),
        ("nl", "vies", "Het toilet was vies.", "Het toilet was helemaal niet vies."),
        ("de", "schmutzig", "Die Toilette war schmutzig.", "Die Toilette war nie schmutzig."),
        ("fr", "sale", "Toilettes sales.", "Toilettes jamais sales."),
        ("en", "dirty", "Dirty toilets.", "Never dirty toilets."),
    ],
)
def test_negations_in_six_languages(language, cue, complaint, praise):
    clean = ThemeDetector({"cleanliness": {language: [rf"{cue}\w*"]}})
    assert clean(complaint, language) == ["cleanliness"]
    assert clean(praise, language) == []


def test_a_language_without_negation_words_just_matches_cues():
    swedish = ThemeDetector({"cleanliness": {"sv": ["smutsig\\w*"]}})
    assert swedish("Toaletten var smutsig.", "sv") == ["cleanliness"]
    assert swedish("Toaletten var inte smutsig.", "sv") == ["cleanliness"]  # no Swedish negations known


def test_a_catalogue_without_complaints_has_no_themes():
    from boucle.flows.cli.cases import themes_off

    settings = _airline(attributes=[{"name": "legroom"}, {"name": "boarding"}])
    assert settings.theme_lexicons() == {}
    assert ThemeDetector(settings.theme_lexicons()).themes == []
    assert "comments are not themed" in themes_off(settings)
    assert themes_off(_airline()) is None


def test_themes_lexicons_add_a_theme_in_any_language_and_replace_an_attribute_s_cues():
    settings = _airline(themes={"lexicons": {
        "parking": {"fr": [r"parking (?:complet|plein)"], "de": ["kein parkplatz"]},
        "legroom": {"en": ["tiny seats"]},
    }})
    custom = ThemeDetector(settings.theme_lexicons())
    assert custom.themes == ["boarding", "legroom", "parking"]
    assert custom("Parking complet encore une fois", "fr") == ["parking"]
    assert custom("Pas parking complet", "fr") == []
    assert custom("Wieder kein Parkplatz.", "de") == ["parking"]
    assert custom("Tiny seats.", "en") == ["legroom"] and custom("Cramped seats.", "en") == []


def test_a_comment_without_language_is_read_in_its_site_s():
    site = Site(id="fl-0002", region="europe", language="de")
    windows = ThemeWindows(site, ThemeDetector(_airline().theme_lexicons()), Themes(window="1d"), 0)
    out = windows.add([_event(1, T0, "Die Beinfreiheit war zu knapp.", lang="")]) + windows.flush()
    assert [r[4:7] for kind, r in out if kind == "row"] == [("legroom", 1, 1)]


@pytest.mark.parametrize("profile", ["demo", "retail", "reviews"])
def test_every_profile_s_simulated_complaints_are_themed_by_its_catalogue(profile):
    import orjson

    from boucle.sources.simulator import Simulator
    from boucle.sources.simulator.text import _PHRASES

    sizes = {"demo": {"days": 1, "volume_scale": 0.2}, "retail": {"sites": 40, "days": 7},
             "reviews": {"sites": 30, "days": 730}}[profile]
    sim = Simulator(load_settings(), profile=profile, seed=5, malformed_share=0.0, late_share=0.0, **sizes)
    themed = ThemeDetector(sim.settings.theme_lexicons())
    irritants = {text: name for name, (fr, en, _, _) in _PHRASES.items() for text in fr + en}
    checked = 0
    for event in map(orjson.loads, (m.value for m in sim.messages())):
        comment = event.get("comment") or ""
        for text, name in irritants.items():
            if text in comment:
                assert name in themed(comment, event.get("language", "")), comment
                checked += 1
    assert checked > 20


def test_the_demo_flow_finds_its_themes_from_the_demo_config_and_a_catalogue_without_cues_none():
    rows = _theme_rows_of_flow(load_settings(), "store-0009", ["Attente interminable.", "Magasin sale."])
    assert sorted(r[4] for r in rows) == ["cleanliness", "waiting_time"]
    airline = _theme_rows_of_flow(_airline(), "fl-0001", ["The layout is confusing.", "No legroom."], "en")
    assert [r[4] for r in airline] == ["legroom"]
    bare = _airline(attributes=[{"name": "legroom"}])
    assert _theme_rows_of_flow(bare, "fl-0001", ["No legroom."], "en") == []


def _theme_rows_of_flow(settings, site_id: str, comments: list[str], language: str = "") -> list[tuple]:
    import orjson
    from bytewax.testing import TestingSink, TestingSource, run_main

    from boucle.flows.feedback_flow import FlowOutputs, build_flow
    from boucle.flows.loop import LoopSources
    from boucle.sources.message import RawMessage

    events = [{"event_id": f"e{i}", "occurred_at": "2026-10-01T08:00:00Z", "site_id": site_id, "channel": "store",
               "scores": {"csat": 2}, "comment": text, **({"language": language} if language else {})}
              for i, text in enumerate(comments)]
    tables: list = []
    messages = [RawMessage(orjson.dumps(e), "t", 0, i) for i, e in enumerate(events)]
    run_main(build_flow(settings, TestingSource(messages), FlowOutputs(warehouse=TestingSink(tables)), loop=LoopSources()))
    return [row for batch in tables if batch.table == "comment_themes" for row in batch.rows]
