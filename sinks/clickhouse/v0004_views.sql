-- Migration 0004: stable views for BI (documented column by column in README.md, "Views for BI").
-- Scores: for nps the score is the NPS (100 x (promoters - detractors) / n), for every other
-- question the mean rating; higher is better on every scale. Window-based views exclude late
-- responses (feedback.late = 1); v_journey reads feedback and includes them.
-- Periods: the `periods` table lists lengths in days (7, 30, 90). A period of P days ends at
-- period_end = the last day with closed daily windows (max(day) of site_attribute_daily) and
-- covers (period_end - P, period_end]; the previous period is the P days before it.

CREATE OR REPLACE VIEW {db}.v_site_attribute_daily AS
SELECT
    d.day AS day,
    d.site_id AS site_id,
    if(s.name = '', d.site_id, s.name) AS site_name,
    d.region AS region,
    s.region_name AS region_name,
    s.country AS country,
    s.kind AS kind,
    d.attribute AS attribute,
    d.n AS n,
    d.sum / d.n AS mean,
    d.bottom_n AS bottom_n,
    d.bottom_n / d.n AS bottom_share,
    d.top_n AS top_n,
    d.top_n / d.n AS top_share,
    if(d.attribute = 'nps', 100 * (toInt64(d.top_n) - toInt64(d.bottom_n)) / d.n, d.sum / d.n) AS score
FROM {db}.site_attribute_daily AS d FINAL
LEFT JOIN (SELECT * FROM {db}.sites FINAL) AS s ON s.site_id = d.site_id
WHERE d.n > 0;

CREATE OR REPLACE VIEW {db}.v_region_daily AS
SELECT
    region, attribute, day,
    length(nm.1) AS sites,
    arraySum(nm.2) AS n,
    arraySum(sm.2) / n AS mean,
    arraySum(bm.2) AS bottom_n,
    bottom_n / n AS bottom_share,
    arraySum(tm.2) AS top_n,
    top_n / n AS top_share,
    if(attribute = 'nps', 100 * (toInt64(top_n) - toInt64(bottom_n)) / n, mean) AS score
FROM
(
    SELECT region, attribute, day, maxMap(n) AS nm, maxMap(sum) AS sm, maxMap(bottom_n) AS bm, maxMap(top_n) AS tm
    FROM {db}.region_daily
    GROUP BY region, attribute, day
)
WHERE n > 0;

CREATE OR REPLACE VIEW {db}.v_nps_daily AS
SELECT
    day, site_id, site_name, region, region_name, country, kind,
    n AS responses,
    top_n AS promoters,
    toUInt32(n - top_n - bottom_n) AS passives,
    bottom_n AS detractors,
    score AS nps
FROM {db}.v_site_attribute_daily
WHERE attribute = 'nps';

CREATE OR REPLACE VIEW {db}.v_nps_region_daily AS
SELECT
    r.day AS day,
    r.region AS region,
    g.region_name AS region_name,
    r.sites AS sites,
    r.n AS responses,
    r.top_n AS promoters,
    toUInt64(r.n - r.top_n - r.bottom_n) AS passives,
    r.bottom_n AS detractors,
    r.score AS nps
FROM {db}.v_region_daily AS r
LEFT JOIN (SELECT region, any(region_name) AS region_name FROM {db}.sites FINAL GROUP BY region) AS g
    ON g.region = r.region
WHERE r.attribute = 'nps';

-- Sums per site, attribute and period (current and previous), the base of the two views below.
CREATE OR REPLACE VIEW {db}.v_site_period AS
WITH
    (SELECT max(day) FROM {db}.site_attribute_daily) AS anchor,
    (SELECT groupArray(period_days) FROM (SELECT DISTINCT period_days FROM {db}.periods)) AS lengths
SELECT
    period_days,
    anchor - period_days + 1 AS period_start,
    anchor AS period_end,
    region, attribute, site_id,
    sumIf(d_n, day > anchor - period_days) AS n,
    sumIf(d_sum, day > anchor - period_days) AS sum,
    sumIf(d_bottom, day > anchor - period_days) AS bottom_n,
    sumIf(d_top, day > anchor - period_days) AS top_n,
    sumIf(d_n, day <= anchor - period_days) AS prev_n,
    sumIf(d_sum, day <= anchor - period_days) AS prev_sum,
    sumIf(d_bottom, day <= anchor - period_days) AS prev_bottom_n,
    sumIf(d_top, day <= anchor - period_days) AS prev_top_n,
    if(n = 0, NULL, if(attribute = 'nps', 100 * (toInt64(top_n) - toInt64(bottom_n)) / n, sum / n)) AS score,
    if(prev_n = 0, NULL,
       if(attribute = 'nps', 100 * (toInt64(prev_top_n) - toInt64(prev_bottom_n)) / prev_n, prev_sum / prev_n)) AS prev_score
FROM
(
    SELECT region, attribute, site_id, day, n AS d_n, sum AS d_sum, bottom_n AS d_bottom, top_n AS d_top
    FROM {db}.site_attribute_daily FINAL
    WHERE day > (SELECT max(day) FROM {db}.site_attribute_daily)
                - 2 * (SELECT max(period_days) FROM {db}.periods)
) AS d
ARRAY JOIN arrayFilter(p -> d.day > anchor - 2 * p, lengths) AS period_days
GROUP BY period_days, region, attribute, site_id;

CREATE OR REPLACE VIEW {db}.v_peer_comparison AS
SELECT
    period_days, period_start, period_end,
    site_id, if(s.name = '', c.site_id, s.name) AS site_name, c.region AS region, s.region_name AS region_name,
    s.kind AS kind, attribute, n, mean, bottom_share, top_share, score,
    region_sites,
    if(region_sites > 1, region_median, NULL) AS region_peer_median,
    if(region_sites > 1, 1.4826 * region_mad, NULL) AS region_peer_spread,
    region_rank,
    if(region_sites > 1, 100 * region_lower / (region_sites - 1), NULL) AS region_percentile,
    if(region_sites > 1 AND region_mad > 0, (score - region_median) / (1.4826 * region_mad), NULL) AS robust_z,
    kind_sites,
    if(kind_sites > 1, kind_median, NULL) AS kind_peer_median,
    if(kind_sites > 1, 1.4826 * kind_mad, NULL) AS kind_peer_spread,
    kind_rank,
    if(kind_sites > 1, 100 * kind_lower / (kind_sites - 1), NULL) AS kind_percentile,
    if(kind_sites > 1 AND kind_mad > 0, (score - kind_median) / (1.4826 * kind_mad), NULL) AS kind_robust_z
FROM
(
    SELECT
        *,
        quantileExactInclusive(0.5)(abs(score - region_median)) OVER region AS region_mad,
        quantileExactInclusive(0.5)(abs(score - kind_median)) OVER peer_kind AS kind_mad
    FROM
    (
        SELECT
            p.*,
            p.sum / p.n AS mean,
            p.bottom_n / p.n AS bottom_share,
            p.top_n / p.n AS top_share,
            count() OVER region AS region_sites,
            quantileExactInclusive(0.5)(score) OVER region AS region_median,
            rank() OVER (region ORDER BY score DESC) AS region_rank,
            rank() OVER (region ORDER BY score ASC) - 1 AS region_lower,
            count() OVER peer_kind AS kind_sites,
            quantileExactInclusive(0.5)(score) OVER peer_kind AS kind_median,
            rank() OVER (peer_kind ORDER BY score DESC) AS kind_rank,
            rank() OVER (peer_kind ORDER BY score ASC) - 1 AS kind_lower
        FROM
        (
            SELECT v.*, k.kind AS peer_kind_key
            FROM {db}.v_site_period AS v
            LEFT JOIN (SELECT site_id, kind FROM {db}.sites FINAL) AS k ON k.site_id = v.site_id
            WHERE v.n > 0
        ) AS p
        WINDOW
            region AS (PARTITION BY period_days, region, attribute),
            peer_kind AS (PARTITION BY period_days, region, peer_kind_key, attribute)
    )
    WINDOW
        region AS (PARTITION BY period_days, region, attribute),
        peer_kind AS (PARTITION BY period_days, region, peer_kind_key, attribute)
) AS c
LEFT JOIN (SELECT * FROM {db}.sites FINAL) AS s ON s.site_id = c.site_id;

CREATE OR REPLACE VIEW {db}.v_leaderboard AS
SELECT
    period_days, period_start, period_end,
    site_id, if(s.name = '', b.site_id, s.name) AS site_name, b.region AS region, s.region_name AS region_name,
    s.kind AS kind, attribute,
    n, score, prev_n, prev_score AS previous_score,
    delta,
    region_median_delta,
    delta - region_median_delta AS delta_vs_region,
    progress_rank,
    level_rank,
    region_sites
FROM
(
    SELECT
        *,
        score - prev_score AS delta,
        count() OVER region AS region_sites,
        quantileExactInclusive(0.5)(score - prev_score) OVER region AS region_median_delta,
        rank() OVER (region ORDER BY score - prev_score DESC) AS progress_rank,
        rank() OVER (region ORDER BY score DESC) AS level_rank
    FROM {db}.v_site_period
    WHERE n > 0 AND prev_n > 0
    WINDOW region AS (PARTITION BY period_days, region, attribute)
) AS b
LEFT JOIN (SELECT * FROM {db}.sites FINAL) AS s ON s.site_id = b.site_id;

CREATE OR REPLACE VIEW {db}.v_journey AS
SELECT
    f.day AS day, f.region AS region, f.channel AS channel, f.journey_stage AS journey_stage,
    f.attribute AS attribute,
    count() AS n,
    avg(f.value) AS mean,
    countIf(f.value <= q.bottom_max) AS bottom_n,
    countIf(f.value >= q.top_min) AS top_n,
    bottom_n / n AS bottom_share,
    top_n / n AS top_share,
    if(attribute = 'nps', 100 * (toInt64(top_n) - toInt64(bottom_n)) / n, mean) AS score,
    countIf(f.late = 1) AS late_n
FROM
(
    SELECT toDate(occurred_at) AS day, region, channel, journey_stage, late, kv.1 AS attribute, kv.2 AS value
    FROM {db}.feedback FINAL
    ARRAY JOIN arrayConcat(arrayZip(mapKeys(scores), mapValues(scores)),
                           arrayZip(mapKeys(attributes), mapValues(attributes))) AS kv
) AS f
LEFT JOIN (SELECT attribute, bottom_max, top_min FROM {db}.questions FINAL) AS q ON q.attribute = f.attribute
GROUP BY day, region, channel, journey_stage, attribute;

CREATE OR REPLACE VIEW {db}.v_alerts AS
SELECT
    a.alert_id AS alert_id, a.kind AS kind, a.status AS status, a.severity AS severity,
    a.site_id AS site_id, if(s.name = '' AND a.site_id != '', a.site_id, s.name) AS site_name,
    a.region AS region, a.attribute AS attribute, a.triggers AS triggers, a.message AS message, a.owner AS owner,
    a.first_event_time AS first_event_time, a.event_time AS event_time,
    a.opened_at AS opened_at, a.updated_at AS updated_at, a.resolved_at AS resolved_at, a.updates AS updates
FROM
(
    SELECT
        alert_id,
        argMax(a_kind, version) AS kind,
        argMax(a_status, version) AS status,
        argMax(a_severity, version) AS severity,
        argMax(a_site_id, version) AS site_id,
        argMax(a_region, version) AS region,
        argMax(a_attribute, version) AS attribute,
        argMax(a_triggers, version) AS triggers,
        argMax(a_message, version) AS message,
        argMax(a_owner, version) AS owner,
        min(a_event_time) AS first_event_time,
        max(a_event_time) AS event_time,
        min(a_detected_at) AS opened_at,
        max(a_detected_at) AS updated_at,
        if(countIf(a_status = 'resolved') > 0, minIf(a_detected_at, a_status = 'resolved'), NULL) AS resolved_at,
        count() AS updates
    FROM
    (
        SELECT
            alert_id, kind AS a_kind, toString(status) AS a_status, severity AS a_severity, site_id AS a_site_id,
            region AS a_region, attribute AS a_attribute, triggers AS a_triggers, message AS a_message,
            owner AS a_owner, event_time AS a_event_time, detected_at AS a_detected_at,
            (detected_at, event_time, indexOf(['open', 'updated', 'resolved'], toString(status))) AS version
        FROM {db}.alerts FINAL
    )
    GROUP BY alert_id
) AS a
LEFT JOIN (SELECT * FROM {db}.sites FINAL) AS s ON s.site_id = a.site_id;
