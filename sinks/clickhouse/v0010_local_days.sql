-- Migration 0010: days are each site's local business days.
-- The flow now sends `day`, the site's local day (its registry time zone, see Settings.site_zones),
-- with every window row, theme row, alert row and feedback row; daily windows start at the site's local midnight.
-- Rows written before keep their UTC day (the DEFAULT), which is what they were counted on.
-- The daily rollups and the views that grouped on toDate(<UTC time>) group on `day` instead.
-- `window_end` stays window_start + window_length: on a day the clocks change it is an hour off
-- the local midnight that really ends the window; `day` is exact.

ALTER TABLE {db}.attribute_scores
    ADD COLUMN IF NOT EXISTS day Date DEFAULT toDate(window_start) COMMENT 'the site''s local day the window starts in';

ALTER TABLE {db}.feedback
    ADD COLUMN IF NOT EXISTS day Date DEFAULT toDate(occurred_at) COMMENT 'the site''s local day of occurred_at';

ALTER TABLE {db}.alerts
    ADD COLUMN IF NOT EXISTS day Date DEFAULT toDate(event_time) COMMENT 'the site''s local day of event_time (a regional incident: UTC)';

ALTER TABLE {db}.comment_themes
    ADD COLUMN IF NOT EXISTS day Date DEFAULT toDate(window_start) COMMENT 'the site''s local day the window starts in';

DROP VIEW IF EXISTS {db}.mv_site_attribute_daily;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_site_attribute_daily TO {db}.site_attribute_daily AS
SELECT region, attribute, day, site_id, n, sum, bottom_n, top_n
FROM {db}.attribute_scores
WHERE window_length = 86400;

DROP VIEW IF EXISTS {db}.mv_region_daily;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_region_daily TO {db}.region_daily AS
SELECT
    region, attribute, day,
    maxMap(([toString(site_id)], [toUInt64(n)])) AS n,
    maxMap(([toString(site_id)], [toUInt64(sum)])) AS sum,
    maxMap(([toString(site_id)], [toUInt64(bottom_n)])) AS bottom_n,
    maxMap(([toString(site_id)], [toUInt64(top_n)])) AS top_n
FROM {db}.attribute_scores
WHERE window_length = 86400
GROUP BY region, attribute, day;

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
    SELECT day, region, channel, journey_stage, late, kv.1 AS attribute, kv.2 AS value
    FROM {db}.feedback FINAL
    ARRAY JOIN arrayConcat(arrayZip(mapKeys(scores), mapValues(scores)),
                           arrayZip(mapKeys(attributes), mapValues(attributes))) AS kv
) AS f
LEFT JOIN (SELECT attribute, bottom_max, top_min FROM {db}.questions FINAL) AS q ON q.attribute = f.attribute
GROUP BY day, region, channel, journey_stage, attribute;


-- NPS segments per site, by ISO week and by month of the site's local days (period_start = its first day).
CREATE OR REPLACE VIEW {db}.v_segments AS
SELECT site_id, any(region) AS region, period, period_start,
       count() AS responses,
       countIf(rating >= 9) AS promoters,
       countIf(rating BETWEEN 7 AND 8) AS passives,
       countIf(rating <= 6) AS detractors,
       100 * (promoters - detractors) / responses AS nps
FROM
(
    SELECT site_id, region, scores['nps'] AS rating, p.1 AS period, p.2 AS period_start
    FROM {db}.feedback FINAL
    ARRAY JOIN [('week', toMonday(day)), ('month', toStartOfMonth(day))] AS p
    WHERE mapContains(scores, 'nps')
)
GROUP BY site_id, period, period_start;

CREATE OR REPLACE VIEW {db}.v_theme_daily AS
SELECT site_id, region, day, theme, n, comments, n / comments AS share
FROM {db}.comment_themes FINAL
WHERE window_length = 86400;

CREATE OR REPLACE VIEW {db}.v_site_alert_days AS
SELECT
    day,
    site_id,
    any(region) AS region,
    countIf(status = 'open' AND kind = 'hot') AS hot_alerts,
    sumIf(JSONExtractUInt(payload, 'evidence', 'held'), status = 'open' AND kind = 'hot_digest') AS hot_held,
    countIf(status = 'open' AND kind NOT IN ('hot', 'hot_digest')) AS other_alerts,
    countIf(status = 'open') AS alerts_opened
FROM {db}.alerts FINAL
WHERE site_id != ''
GROUP BY day, site_id;
