"""The entity registry from CSV files (issue 16, item 1) and the config that refuses mistakes (item 7)."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from boucle.config.loader import ConfigError, load_settings
from boucle.flows.cli.app import app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "registry" / "network.toml"
MAPPING = """
[registry]
sites_csv = "data/sites.csv"
regions_csv = "data/regions.csv"
[registry.site_columns]
id = "Store code"
region = "Area"
language = "Lang"
timezone = "TZ"
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _network(tmp_path: Path, sites: int = 2_000, toml: str = "", bad: dict[int, tuple[str, str]] | None = None) -> Path:
    """A config with ``sites`` sites in data/sites.csv over 20 regions; ``bad``: row index -> (column, value)."""
    regions = [[f"r{r:02d}", f"Region {r}", f"boss{r}@example.org" if r % 5 else ""] for r in range(20)]
    _write_csv(tmp_path / "data" / "regions.csv", ["id", "name", "manager"], regions)
    header = ["Store code", "name", "Area", "country", "kind", "Lang", "owner", "TZ", "unused column"]
    rows = [
        [f"site-{i:04d}", f"Site {i}", f"r{i % 20:02d}", ("FR", "DE", "US")[i % 3], ("store", "outlet")[i % 2],
         ("fr", "en")[i % 2], "" if i % 7 == 0 else f"owner{i}@example.org",
         ("Europe/Paris", "Europe/Berlin", "America/New_York")[i % 3], "ignored"]
        for i in range(sites)
    ]
    for index, (column, value) in (bad or {}).items():
        rows[index][header.index(column)] = value
    _write_csv(tmp_path / "data" / "sites.csv", header, rows)
    config = tmp_path / "network.toml"
    config.write_text(MAPPING + toml, encoding="utf-8")
    return config


def test_a_2000_site_registry_loads_from_csv_with_its_column_mapping(tmp_path):
    toml = '[[regions]]\nid = "hq"\n[[sites]]\nid = "flagship"\nregion = "hq"\n'
    settings = load_settings(_network(tmp_path, toml=toml))
    assert len(settings.sites) == 2_001 and len(settings.regions) == 21
    assert settings.sites[0].id == "flagship"  # the TOML's own sites first, then the file's rows
    site = settings.site_map()["site-1999"]
    assert (site.region, site.country, site.language, site.timezone, site.owner) == (
        "r19", "DE", "en", "Europe/Berlin", "owner1999@example.org")
    assert settings.site_map()["site-0007"].owner == ""  # an empty cell: the field's default
    assert settings.site_map()["site-0000"].kind == "store"


@pytest.mark.parametrize("bad,expected", [
    ({1233: ("Lang", "klingon")}, "sites.csv: row 1235, column 'Lang': 'klingon' is not a language code"),
    ({9: ("TZ", "Mars/Olympus")}, "sites.csv: row 11, column 'TZ': unknown time zone 'Mars/Olympus'"),
    ({41: ("Area", "nowhere")}, "sites.csv: row 43, column 'Area': unknown region 'nowhere'"),
    ({5: ("Store code", "site-0001")}, "sites.csv: row 7, column 'Store code': duplicate site id 'site-0001'"),
])
def test_a_bad_row_names_its_file_row_and_column(tmp_path, bad, expected):
    with pytest.raises(ConfigError) as exc:
        load_settings(_network(tmp_path, bad=bad))
    lines = str(exc.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tmp_path / 'network.toml'}: registry: data/") and expected in lines[0]


def test_a_semicolon_export_loads_and_a_bad_registry_key_is_named(tmp_path):
    (tmp_path / "sites.csv").write_text("\ufeffid;region;name\ns1;r;Café du Port\n\n", encoding="utf-8")
    (tmp_path / "regions.csv").write_text("id\nr\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text('[registry]\nsites_csv = "sites.csv"\nregions_csv = "regions.csv"\ndelimiter = ";"\n')
    assert [(s.id, s.name) for s in load_settings(config).sites] == [("s1", "Café du Port")]
    config.write_text('[registry]\nsites_csv = "sites.csv"\nsite_colums = {}\n')
    with pytest.raises(ConfigError, match=r"c.toml: registry.site_colums: Extra inputs are not permitted"):
        load_settings(config)


def test_a_duplicate_region_names_its_row(tmp_path):
    config = _network(tmp_path, sites=3, toml='[[regions]]\nid = "r03"\n')
    with pytest.raises(ConfigError, match=r"registry: data/regions.csv: row 5, column 'id': duplicate region id 'r03'"):
        load_settings(config)


def test_a_missing_column_or_file_is_named(tmp_path):
    config = _network(tmp_path, sites=3)
    config.write_text(MAPPING.replace('region = "Area"', 'region = "Zone"'))
    with pytest.raises(ConfigError, match=r"data/sites.csv: no column 'Zone' for the region field"):
        load_settings(config)
    config.write_text(MAPPING.replace("data/regions.csv", "data/nope.csv"))
    with pytest.raises(ConfigError, match=r"registry: data/nope.csv: no such registry file"):
        load_settings(config)
    config.write_text(MAPPING + 'colour = "Colour"\n')
    with pytest.raises(ConfigError, match=r"column mapping names no field: colour"):
        load_settings(config)


def test_registry_check_summarises_the_registry(tmp_path):
    result = invoke("registry", "check", "--config", str(_network(tmp_path, sites=200)))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "registry ok: 200 sites in 20 regions" in out
    assert "Sites per time zone" in out and "America/New_York" in out and "Sites per country" in out
    # every 7th site of 200 has no owner, every 5th region no manager
    assert "no owner (29): site-0000, site-0007, site-0014," in out and ", ...\n" in out
    assert "region without manager (4): r00, r05, r10, r15\n" in out
    assert "region without sites" not in out.split("Sites per region")[1]


def test_registry_check_refuses_a_bad_row_in_one_line(tmp_path):
    config = _network(tmp_path, sites=20, bad={3: ("Lang", "Dutch")})
    result = invoke("registry", "check", "--config", str(config))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"config error: {config}: registry: data/sites.csv: row 5, column 'Lang': 'Dutch' is not a language code (a tag such as 'de', 'de-CH' or 'sv')"]


def test_the_shipped_example_registry_loads():
    settings = load_settings(EXAMPLE)
    assert len(settings.sites) == 10 and {s.region for s in settings.sites} == {r.id for r in settings.regions}


@pytest.mark.parametrize("text,expected", [
    ('[attribute_alerts]\nimportance_target = "npss"', "attribute_alerts.importance_target: unknown question 'npss'"),
    ('[windows]\nlengths = ["1h"]', "windows.lengths: must include '1d' (the daily rollups need it)"),
    ('[windows]\nlengths = ["1h", "2d"]', "windows.lengths: must include '1d'"),
])
def test_mistakes_are_refused_with_their_key_path(tmp_path, text, expected):
    config = _network(tmp_path, sites=3, toml="\n" + text + "\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config)
    assert f"{config}: {expected}" in str(exc.value)


def test_a_known_importance_target_and_windows_with_1d_load(tmp_path):
    toml = '\n[attribute_alerts]\nimportance_target = "csat"\n[windows]\nlengths = ["15m", "1d", "7d"]\n'
    settings = load_settings(_network(tmp_path, sites=3, toml=toml))
    assert settings.attribute_alerts.importance_target == "csat"


@pytest.mark.parametrize("where", ["after", "short", "both"])
def test_replay_takes_config_after_the_file_and_warns_of_an_unused_upper_half(workspace, where):
    events = workspace / "feedback.jsonl"
    with events.open("wb") as f:
        for i in range(60):  # NPS answered 0-5 only (a 1-5 rating sent as NPS); CSAT uses its whole scale
            f.write(orjson.dumps({
                "event_id": f"e{i}", "occurred_at": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
                "site_id": ("lyon-01", "london-01")[i % 2], "channel": "store",
                "scores": {"nps": i % 6, "csat": 1 + i % 5}, "language": "fr"}) + b"\n")
    option = {"after": ["--config", str(EXAMPLE)], "short": ["-c", str(EXAMPLE)], "both": [f"--config={EXAMPLE}"]}
    before = ["-c", "/nonexistent.toml"] if where == "both" else []  # the last one given wins
    result = invoke(*before, "replay", str(events), "--no-progress", *option[where])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: scores.nps: none of the 60 answers to nps is above 5, the middle of its"
                        " scale 0..10: were they given on another scale?"]
