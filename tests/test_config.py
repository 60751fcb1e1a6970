"""Settings: the shipped file is valid; a bad file fails at start with the path of the bad key."""

import inspect

import pytest

from boucle.config.loader import (
    SHIPPED_CONFIG,
    ConfigError,
    load_settings,
    settings_from_dict,
)
from boucle.config.settings import (
    ClockParameters,
    DeclineParameters,
    ExpectationParameters,
    PeerParameters,
    TrendParameters,
)
from boucle.detectors import (
    DownwardTrend,
    GradualDecline,
    PeerComparison,
    SeasonalExpectation,
    SeriesClock,
)


def test_shipped_config_describes_a_demo_network(settings):
    regions = {site.region for site in settings.sites}
    assert len(settings.sites) >= 24 and len(regions) >= 4
    assert 6 <= len(settings.attributes) <= 10
    assert all(site.owner and site.team for site in settings.sites)
    assert (settings.scores["nps"].min, settings.scores["nps"].max) == (0, 10)
    assert (settings.scores["ces"].min, settings.scores["ces"].max) == (1, 7)


def _problem(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    return str(exc.value)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('[windows]\nlengths = ["1h", "soon"]', "windows.lengths[1]: expected a duration"),
        ('[windows]\nlengths = ["7h"]', "windows.lengths: window length 7:00:00 must divide a day"),
        ('[windows]\nlengths = ["2h", "3h"]', "windows.lengths: window length 3:00:00 must be a multiple of the shortest"),
        ('[warehouse]\nbatch_rows = 0', "warehouse.batch_rows: Input should be greater than 0"),
        ('[warehouse]\nurl = "x"\nusr = "me"', "warehouse.usr: Extra inputs are not permitted"),
        ('[[regions]]\nid = "n"\n[[sites]]\nid = "s"\nregion = "south"', "sites[0].region: unknown region 'south'"),
        ('[scores.nps]\nmin = 0\nmax = 10\nbottom_max = 9\ntop_min = 6', "scores.nps: need min <= bottom_max"),
        (
            '[[hot_alerts.rules]]\nname = "x"\nall = [{ score = "npss", max = 6 }]',
            "hot_alerts.rules[0].all[0].score: unknown score 'npss'",
        ),
        (
            '[[hot_alerts.rules]]\nname = "x"\nall = [{ score = "nps", max = 12 }]',
            "hot_alerts.rules[0].all[0].max: 12 is outside the nps scale 0..10",
        ),
        (
            '[[hot_alerts.rules]]\nname = "x"\nall = [{ comment_mentions = "refund" }]',
            "hot_alerts.rules[0].all[0].comment_mentions: no keyword list 'refund'",
        ),
        ('[[hot_alerts.rules]]\nname = "x"\nall = [{ }]', "hot_alerts.rules[0].all[0]: a condition needs"),
        ("[windows\n", "not valid TOML"),
        (
            "[attribute_alerts.expectation]\nblok_hours = 3",
            "attribute_alerts.expectation.blok_hours: Extra inputs are not permitted",
        ),
        ("[attribute_alerts.expectation]\nblock_hours = 5", "attribute_alerts.expectation.block_hours: block_hours must divide 24"),
        ("[attribute_alerts.expectation]\nblock_hours = 1.5", "attribute_alerts.expectation.block_hours: Input should be a valid integer"),
        ('[attribute_alerts.trend]\nk = "low"', "attribute_alerts.trend.k: Input should be a valid number"),
        ("[attribute_alerts.decline]\nwindow_days = 2", "attribute_alerts.decline.window_days: Input should be greater than or equal to 3"),
        ("[attribute_alerts.peer]\nmin_peers = 3", "attribute_alerts.peer.min_peers: Extra inputs are not permitted"),
        ("[attribute_alerts]\nimportance_min_n = 0", "attribute_alerts.importance_min_n: Input should be greater than 0"),
        ('[attribute_alerts]\nimportance_min_n = "many"', "attribute_alerts.importance_min_n: Input should be a valid number"),
        ("[attribute_alerts]\nimportance_prior_strength = -1",
         "attribute_alerts.importance_prior_strength: Input should be greater than or equal to 0"),
        ("[attribute_alerts]\nimportance_half_life = 30", "attribute_alerts.importance_half_life: a duration needs a unit"),
        ('[attribute_alerts]\nimportance_half_life = "0d"', "attribute_alerts.importance_half_life:"),
        ('[kafka]\ngroup_id = ""', "kafka.group_id: a consumer group id is 1-249 printable"),
        ('[kafka]\ngroup_id = " boucle"', "kafka.group_id: a consumer group id"),
        ('[kafka]\ncommit_offsets = "sometimes"', "kafka.commit_offsets: Input should be a valid boolean"),
        ('[[attributes]]\nname = "legroom"\ncomplaints.en = ["(cramped"]',
         "attributes[0].complaints.en[0]: '(cramped' is not a valid regular expression"),
        ('[[attributes]]\nname = "legroom"\ncomplaints.German = ["eng"]',
         "attributes[0].complaints.German: 'German' is not a language code"),
        ('[[attributes]]\nname = "legroom"\ncomplaints = ["cramped"]', "attributes[0].complaints: Input should be a valid dictionary"),
        ('[themes.lexicons.parking]\nDeutsch = ["kein parkplatz"]', "themes.lexicons.parking.Deutsch: 'Deutsch' is not a language code"),
    ],
)
def test_bad_file_names_the_bad_key(tmp_path, text, expected):
    message = _problem(tmp_path, text)
    assert str(tmp_path / "bad.toml") in message
    assert expected in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml")


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__URL", "http://ch.internal:8123")
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PASSWORD", "s3cret")
    settings = load_settings(SHIPPED_CONFIG)
    assert settings.warehouse.url == "http://ch.internal:8123"
    assert settings.warehouse.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings.warehouse)


def test_bad_environment_value_is_reported(monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__BATCH_ROWS", "many")
    with pytest.raises(ConfigError, match="warehouse.batch_rows"):
        load_settings(SHIPPED_CONFIG)


def test_simulation_start_must_be_aware():
    with pytest.raises(ConfigError, match="simulation.start: .*time zone"):
        settings_from_dict({"simulation": {"start": "2026-10-01T00:00:00"}})


# The site's offset comes from its country (the registry), not from the parameters.
PER_SITE = {"utc_offset_hours"}


@pytest.mark.parametrize(
    "model,detector",
    [
        (TrendParameters, DownwardTrend),
        (ExpectationParameters, SeasonalExpectation),
        (PeerParameters, PeerComparison),
        (DeclineParameters, GradualDecline),
        (ClockParameters, SeriesClock),
    ],
    ids=lambda x: x.__name__,
)
def test_detector_parameters_mirror_the_constructors(model, detector):
    """Same names, same defaults, same types: the flow passes every field, so a default that
    drifted from the detector's would silently change what runs."""
    params = {
        name: p for name, p in inspect.signature(detector.__init__).parameters.items()
        if name != "self" and name not in PER_SITE
    }
    fields = model.model_fields
    assert list(fields) == list(params)
    for name, param in params.items():
        default = fields[name].default
        assert default == param.default and type(default) is type(param.default), name
        assert fields[name].annotation.__name__ == param.annotation, name  # "int" stays int


def test_integer_detector_parameters_stay_integers(tmp_path):
    path = tmp_path / "int.toml"
    path.write_text(SHIPPED_CONFIG.read_text().replace(
        "[attribute_alerts.expectation]\n", "[attribute_alerts.expectation]\nblock_hours = 6\n"))
    expectation = load_settings(path).attribute_alerts.expectation
    assert expectation.block_hours == 6 and type(expectation.block_hours) is int
    assert type(expectation.min_n) is float  # the shipped `min_n = 15`, as the detector's default
    assert SeasonalExpectation(**expectation.model_dump()).block_hours == 6


# ---- durations always carry a unit; a config without sites does not start (issue #13) ----

@pytest.mark.parametrize("key", ["warehouse.retention", "windows.allowed_lateness", "hot_alerts.cooldown",
                                 "cases.sla", "themes.window"])
@pytest.mark.parametrize("value", ["400", "400.5", '"400"'])
def test_a_duration_without_unit_fails_at_start_with_its_key_and_an_example(tmp_path, key, value):
    section, name = key.split(".")
    message = _problem(tmp_path, f"[{section}]\n{name} = {value}\n")
    assert f"{key}: a duration needs a unit, e.g. '400d', '2h', '30s', '1w'" in message


def test_a_duration_without_unit_from_the_environment_fails(monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__RETENTION", "400")
    with pytest.raises(ConfigError, match=r"warehouse.retention: a duration needs a unit, e.g. '400d'"):
        load_settings(SHIPPED_CONFIG)


@pytest.mark.parametrize("text,days", [("400d", 400), ("P400D", 400), ("57w", 399), ("9600h", 400), ("P1W", 7),
                                       ("p2wt24h", 15), ("1d12h", 1.5)])
def test_durations_with_a_unit(monkeypatch, text, days):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__RETENTION", text)
    assert load_settings(SHIPPED_CONFIG).warehouse.retention.total_seconds() == days * 86400


@pytest.mark.parametrize("text", ["", "[[regions]]\nid = \"north\"\n", "[warehouse]\npath = \"x\"\n"])
def test_a_config_without_sites_fails_at_start_in_one_line(tmp_path, text):
    message = _problem(tmp_path, text)
    assert message == (f"{tmp_path / 'bad.toml'}: sites: at least one site is required"
                       " ([[sites]] with id and region, or [registry] sites_csv; see the shipped boucle.toml)")


def test_the_cli_says_a_config_without_sites_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from boucle.flows.cli.app import app

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = CliRunner().invoke(app, ["--config", str(empty), "run", "--no-progress"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"config error: {empty}: sites: at least one site is required"
                                                  " ([[sites]] with id and region, or [registry] sites_csv; see the shipped boucle.toml)"]
