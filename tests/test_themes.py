"""Comment themes: fr/en detection with negations, counts per site and window, theme_surge alerts."""

from __future__ import annotations

import pytest

from boucle.config.settings import Site, Themes
from boucle.operators.decode import Feedback
from boucle.operators.themes import ThemeDetector, ThemeWindows

DAY = 86_400_000
T0 = 1_790_812_800_000  # 2026-10-01T00:00:00Z
detect = ThemeDetector()


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
    custom = ThemeDetector({"parking": {"fr": [r"parking (?:complet|plein)"], "en": [r"no parking space"]}})
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
