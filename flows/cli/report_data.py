"""What ``boucle report`` reads: :class:`ReportData`, filled by :func:`collect` from the BI views
(headline series, peers, leaderboard, alerts, importance, what is watched, the cases' KPIs), and the
one-line :class:`ReportError`.

>>> parse_period("30d"), parse_period("2w"), parse_period(14)
(30, 14, 14)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from boucle.config.locales import collation_key
from boucle.config.settings import parse_duration

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["DEFAULT_PERIOD", "MIN_N", "ReportData", "ReportError", "by_region_of", "collect", "parse_period", "rolling"]

DEFAULT_PERIOD = 30
MIN_N = 5  # responses under which a point, a cell or a site's period says too little to be drawn
ROLLING_DAYS = (7, 14, 28, 91)  # the headline line's window: the shortest most points can stand on
SCORE_NAMES = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}  # short names a title can carry


class ReportError(ValueError):
    """The report cannot be built (bad option, empty warehouse); one line for a human."""


def parse_period(value: Any) -> int:
    """A period such as ``"30d"`` or ``"2w"`` as whole days."""
    try:
        delta = parse_duration(value if not isinstance(value, int) else timedelta(days=value))
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    days = delta.total_seconds() / 86400
    if days < 1 or days != int(days):
        raise ReportError(f"the period must be whole days, e.g. 7d or 30d, got {value!r}")
    return int(days)

@dataclass
class ReportData:
    region: str | None
    period_days: int
    period_start: date
    period_end: date
    lang: str
    labels: dict[str, str]  # question -> label
    region_names: dict[str, str]
    sites: int
    responses: int
    headline: str = "nps"  # the question the headline, leaderboard and importance stand for
    headline_is_target: bool = True  # the importance target itself (else the first score question with data)
    target: str = "nps"
    min_n: int = MIN_N
    compare_days: int = DEFAULT_PERIOD  # period of peers and leaderboard (widened from period_days if thin)
    site_median: float = math.nan  # responses of the median site in period_days (headline question)
    rolling_days: int = 7
    series: list[dict] = field(default_factory=list)  # headline per region and day: n, total, top_n, bottom_n
    peers: list[dict] = field(default_factory=list)
    leaderboard: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    site_days: list[dict] = field(default_factory=list)  # hot alerts per site and day: published, held
    importance: list[dict] = field(default_factory=list)
    importance_is_standin: bool = True
    importance_unknown: list[str] = field(default_factory=list)  # regions whose importance is not known yet
    watched: list[dict] = field(default_factory=list)  # per question: watched, warming up, median needs
    cases: dict = field(default_factory=dict)  # the loop's KPIs over the cases opened in the period

    @property
    def widened(self) -> bool:
        return self.compare_days != self.period_days

    def region_name(self, region: str) -> str:
        return self.region_names.get(region) or region

    def name(self, question: str) -> str:
        """A question's short name for titles: NPS, CSAT, CES, else its label."""
        return SCORE_NAMES.get(question) or self.labels.get(question, question)


def _rows(client: Client, sql: str, **params: Any) -> list[dict]:
    from boucle.sinks.clickhouse.client import client_lock

    with client_lock(client):
        result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


WHERE = "({r:String} = '' OR region = {r:String})"


def collect(client: Client, database: str, *, region: str | None, period_days: int = DEFAULT_PERIOD,
            lang: str = "en", target: str = "nps", min_n: int = MIN_N, widen: bool = False,
            labels: dict[str, str] | None = None) -> ReportData:
    """Read everything the report shows from the views of ``database``.

    ``target``: the question the headline stands for when it has responses; ``widen``: the period may
    grow to a longer listed one when the median site has fewer than ``min_n`` responses in it;
    ``labels``: question labels in the report's language (the warehouse's French/English otherwise).
    """
    db = database
    anchor = _rows(client, f"SELECT max(day) AS d, count() AS n FROM {db}.site_attribute_daily")[0]
    if not anchor["n"]:
        raise ReportError("the warehouse has no daily scores yet: run `boucle run` first")
    end: date = anchor["d"]
    start = end - timedelta(days=period_days - 1)
    if region and not _rows(client, f"SELECT 1 FROM {db}.sites FINAL WHERE region = {{r:String}} LIMIT 1", r=region):
        raise ReportError(f"no site of region {region!r} in the warehouse (see the sites table)")
    known = sorted(r["period_days"] for r in _rows(client, f"SELECT DISTINCT period_days FROM {db}.periods"))
    if period_days not in known:  # the views compare the periods listed there; a report only reads
        listed = ", ".join(f"{p}d" for p in known) or "none"
        raise ReportError(
            f"{period_days}d is not a comparison period of the warehouse ({listed}); add it once with"
            f' `boucle query --write "INSERT INTO periods VALUES ({period_days})"`'
        )
    params = {"r": region or "", "p": period_days, "start": start, "end": end}
    questions = _questions(client, db, "fr" if lang.lower().startswith("fr") else "en")
    shown = {q: (labels or {}).get(q) or label for q, (label, _) in questions.items()}
    region_names = {r["region"]: r["name"] for r in _rows(
        client, f"SELECT region, any(region_name) AS name FROM {db}.sites FINAL GROUP BY region")}
    totals = _rows(client, f"SELECT uniqExact(site_id) AS sites, count() AS responses FROM {db}.feedback FINAL"
                           f" WHERE toDate(occurred_at) BETWEEN {{start:Date}} AND {{end:Date}} AND {WHERE}",
                   **params)[0]
    data = ReportData(region, period_days, start, end, lang, shown, region_names, totals["sites"], totals["responses"],
                      target=target, min_n=min_n, compare_days=period_days)
    data.headline, data.headline_is_target = _headline(client, db, target, questions, params)
    medians = _site_medians(client, db, data.headline, [p for p in known if p >= period_days], params)
    data.site_median = medians.get(period_days, math.nan)
    if widen:
        data.compare_days = _compare_days(medians, period_days, min_n)
    params.update(p=data.compare_days, h=data.headline)
    data.series = _rows(client, f"SELECT day, region, n, mean * n AS total, top_n, bottom_n FROM {db}.v_region_daily"
                                f" WHERE attribute = {{h:String}} AND {WHERE} ORDER BY region, day", **params)
    data.rolling_days = _rolling_days(data.series, min_n)
    data.peers = _rows(client, f"SELECT site_id, site_name, region, attribute, score, n, robust_z, region_peer_median,"
                               f" region_rank, region_sites FROM {db}.v_peer_comparison"
                               f" WHERE period_days = {{p:UInt32}} AND {WHERE}", **params)
    data.leaderboard = _rows(client, f"SELECT site_id, site_name, region, score, previous_score, delta, progress_rank,"
                                     f" level_rank, region_sites, n, prev_n FROM {db}.v_leaderboard"
                                     f" WHERE period_days = {{p:UInt32}} AND attribute = {{h:String}} AND {WHERE}"
                                     f" ORDER BY delta", **params)
    data.alerts = _rows(client, f"SELECT alert_id, kind, status, severity, site_id, site_name, region, attribute, message,"
                                f" first_event_time FROM {db}.v_alerts WHERE toDate(first_event_time) BETWEEN"
                                f" {{start:Date}} AND {{end:Date}} AND {WHERE} ORDER BY first_event_time", **params)
    data.site_days = _rows(client, f"SELECT d.day AS day, d.site_id AS site_id, if(s.name = '', d.site_id, s.name)"
                                   f" AS site_name, d.hot_alerts AS hot_alerts, d.hot_held AS hot_held"
                                   f" FROM {db}.v_site_alert_days AS d LEFT JOIN (SELECT site_id, name FROM"
                                   f" {db}.sites FINAL) AS s ON s.site_id = d.site_id WHERE d.day BETWEEN"
                                   f" {{start:Date}} AND {{end:Date}} AND ({{r:String}} = '' OR d.region = {{r:String}})"
                                   f" ORDER BY d.day", **params)
    _collect_importance(client, db, data, params)
    data.watched = _rows(client, f"SELECT question, countIf(status = 'watched') AS watched,"
                                 f" countIf(status != 'watched') AS warming, medianIf(needs, status != 'watched')"
                                 f" AS needs FROM {db}.v_series_status WHERE {WHERE} GROUP BY question", **params)
    data.cases = _case_kpis(client, db, params)
    return data


def _questions(client: Client, db: str, label_language: str) -> dict[str, tuple[str, bool]]:
    """``{question: (label, is_score)}``, scores first (NPS, CSAT, CES, then the others), then attributes."""
    col = "label_fr" if label_language == "fr" else "label_en"
    return {r["attribute"]: (r["label"] or r["attribute"], bool(r["is_score"])) for r in _rows(
        client, f"SELECT attribute, {col} AS label, is_score FROM {db}.questions FINAL"
                f" ORDER BY is_score DESC, indexOf(['nps', 'csat', 'ces'], attribute) = 0,"
                f" indexOf(['nps', 'csat', 'ces'], attribute), label")}


def _headline(client: Client, db: str, target: str, questions: dict[str, tuple[str, bool]],
              params: dict) -> tuple[str, bool]:
    """The headline question and whether it is ``target``: the target when it has responses in scope,
    else the first score question that has, else the first question that has."""
    answered = {r["attribute"] for r in _rows(
        client, f"SELECT DISTINCT attribute FROM {db}.site_attribute_daily WHERE {WHERE}", **params)}
    if target in answered:
        return target, True
    ordered = [q for q, (_, is_score) in questions.items() if is_score] + list(questions) + sorted(answered)
    return next((q for q in ordered if q in answered), target), False


def _site_medians(client: Client, db: str, question: str, lengths: list[int], params: dict) -> dict[int, float]:
    """Responses to ``question`` of the median site in each period length, over the sites that
    answered in the longest one."""
    if not lengths:
        return {}
    rows = _rows(client, f"SELECT p, quantileExact(0.5)(s) AS median FROM (SELECT site_id, p,"
                         f" sumIf(n, day > {{end:Date}} - p) AS s FROM {db}.site_attribute_daily FINAL"
                         f" ARRAY JOIN {{ps:Array(UInt32)}} AS p WHERE attribute = {{h:String}}"
                         f" AND day > {{end:Date}} - {{longest:UInt32}} AND {WHERE} GROUP BY site_id, p) GROUP BY p",
                 **{**params, "h": question, "ps": lengths, "longest": max(lengths)})
    return {int(r["p"]): float(r["median"]) for r in rows}


def _compare_days(medians: dict[int, float], period_days: int, min_n: int) -> int:
    """The shortest listed period from ``period_days`` on where the median site has ``min_n``
    responses, else the longest listed.

    >>> _compare_days({30: 2.0, 90: 6.0}, 30, 5), _compare_days({30: 2.0, 90: 3.0}, 30, 5), _compare_days({30: 9.0}, 30, 5)
    (90, 90, 30)
    """
    enough = [p for p in sorted(medians) if medians[p] >= min_n]
    return enough[0] if enough else max(medians, default=period_days)


def rolling(rows: list[dict], days: int) -> list[dict]:
    """Per day of ``rows`` (one region, by day): the sums of the ``days`` days up to it."""
    out = []
    for i, row in enumerate(rows):
        window = [r for r in rows[max(0, i - days + 1): i + 1] if (row["day"] - r["day"]).days < days]
        out.append({"day": row["day"], **{k: sum(r[k] for r in window) for k in ("n", "total", "top_n", "bottom_n")}})
    return out


def _rolling_days(series: list[dict], min_n: int, share: float = 0.5) -> int:
    """The shortest window of :data:`ROLLING_DAYS` on which at least ``share`` of the region-days
    reach ``min_n`` responses: a week on a busy network, a month or a quarter on a thin one."""
    by_region = by_region_of(series)
    for days in ROLLING_DAYS:
        points = [p for rows in by_region.values() for p in rolling(rows, days)]
        if points and sum(p["n"] >= min_n for p in points) >= share * len(points):
            return days
    return ROLLING_DAYS[-1]


def by_region_of(rows: list[dict]) -> dict[str, list[dict]]:
    """``rows`` grouped by their ``region``, in their order."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["region"], []).append(row)
    return out


def _collect_importance(client: Client, db: str, data: ReportData, params: dict) -> None:
    """The headline's importance weights, the regions not known yet, or the corr() stand-in."""
    has_model = _rows(client, "SELECT count() AS n FROM system.tables WHERE database = {db:String}"
                              " AND name = 'attribute_importance'", db=db)[0]["n"]
    if has_model:
        latest = _rows(client, f"SELECT region, attribute, argMax(weight, updated_at) AS weight,"
                               f" argMax(status, updated_at) AS status FROM {db}.attribute_importance"
                               f" WHERE target = {{h:String}} AND {WHERE} GROUP BY region, attribute", **params)
        data.importance_unknown = sorted({r["region"] for r in latest if r["status"] == "not_enough_data"},
                                         key=lambda r: collation_key(data.region_name(r)))
        data.importance = [r for r in latest if r["status"] != "not_enough_data"]
    data.importance_is_standin = not data.importance and not data.importance_unknown
    if data.importance_is_standin:
        data.importance = _rows(
            client,
            f"SELECT region, kv.1 AS attribute, corr(toFloat64(kv.2), toFloat64(mapUpdate(scores, attributes)[{{h:String}}]))"
            f" AS weight, count() AS n FROM {db}.feedback FINAL"
            f" ARRAY JOIN arrayZip(mapKeys(attributes), mapValues(attributes)) AS kv"
            f" WHERE mapContains(mapUpdate(scores, attributes), {{h:String}}) AND kv.1 != {{h:String}}"
            f" AND toDate(occurred_at) BETWEEN {{start:Date}} AND {{end:Date}}"
            f" AND {WHERE} GROUP BY region, attribute HAVING n >= 20 AND NOT isNaN(weight)", **params)


def _case_kpis(client: Client, db: str, params: dict) -> dict:
    """The loop's KPIs over the hot-alert cases opened in the period (definitions: v0005_cases.sql)."""
    # Aliases unlike the columns: ClickHouse would read `contacted` inside medianIf as the alias.
    names = ("cases", "contacted", "median_hours", "decided", "untreated", "pending", "history")
    row = _rows(client, f"""SELECT count() AS k0, countIf(contacted = 1) AS k1,
        medianIf(dateDiff('second', opened_at, first_contact_at) / 3600, contacted = 1) AS k2,
        countIf(sla_decided = 1) AS k3, countIf(untreated = 1) AS k4,
        countIf(sla_decided = 0 AND outcome_unknown = 0 AND first_action_at = toDateTime64(0, 3, 'UTC')) AS k5,
        countIf(outcome_unknown = 1) AS k6
        FROM {db}.cases FINAL WHERE toDate(opened_at) BETWEEN {{start:Date}} AND {{end:Date}} AND {WHERE}""",
                **params)[0]
    return dict(zip(names, row.values()))


# ---- words, numbers and dates in the report's language ---------------------------------------
