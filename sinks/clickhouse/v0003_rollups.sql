-- Migration 0003: daily rollups kept up to date by materialized views on attribute_scores.
-- Both are built from the one-day windows (window_length = 86400, in windows.lengths by default).
--
-- Idempotent under any replay, not only byte-identical retries: a window re-emitted after a resume
-- has the same or larger n, sum, bottom_n and top_n (counts only grow), so
--  * site_attribute_daily is a ReplacingMergeTree(n) on the natural key, like its source;
--  * region_daily keeps, per region x attribute x day, a map site -> value for each count, merged
--    with maxMap: a repeated row can never be counted twice (a SummingMergeTree would).
-- Existing rows are copied once when the migration runs.

CREATE TABLE IF NOT EXISTS {db}.site_attribute_daily
(
    region    LowCardinality(String),
    attribute LowCardinality(String),
    day       Date,
    site_id   LowCardinality(String),
    n         UInt32,
    sum       UInt64,
    bottom_n  UInt32,
    top_n     UInt32
)
ENGINE = ReplacingMergeTree(n)
PARTITION BY toYYYYMM(day)
ORDER BY (region, attribute, day, site_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_site_attribute_daily TO {db}.site_attribute_daily AS
SELECT region, attribute, toDate(window_start) AS day, site_id, n, sum, bottom_n, top_n
FROM {db}.attribute_scores
WHERE window_length = 86400;

INSERT INTO {db}.site_attribute_daily
SELECT region, attribute, toDate(window_start) AS day, site_id, n, sum, bottom_n, top_n
FROM {db}.attribute_scores
WHERE window_length = 86400;

CREATE TABLE IF NOT EXISTS {db}.region_daily
(
    region    LowCardinality(String),
    attribute LowCardinality(String),
    day       Date,
    n         SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(UInt64))) COMMENT 'site_id -> n',
    sum       SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(UInt64))),
    bottom_n  SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(UInt64))),
    top_n     SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (region, attribute, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_region_daily TO {db}.region_daily AS
SELECT
    region, attribute, toDate(window_start) AS day,
    maxMap(([toString(site_id)], [toUInt64(n)])) AS n,
    maxMap(([toString(site_id)], [toUInt64(sum)])) AS sum,
    maxMap(([toString(site_id)], [toUInt64(bottom_n)])) AS bottom_n,
    maxMap(([toString(site_id)], [toUInt64(top_n)])) AS top_n
FROM {db}.attribute_scores
WHERE window_length = 86400
GROUP BY region, attribute, day;

INSERT INTO {db}.region_daily
SELECT
    region, attribute, toDate(window_start) AS day,
    maxMap(([toString(site_id)], [toUInt64(n)])),
    maxMap(([toString(site_id)], [toUInt64(sum)])),
    maxMap(([toString(site_id)], [toUInt64(bottom_n)])),
    maxMap(([toString(site_id)], [toUInt64(top_n)]))
FROM {db}.attribute_scores
WHERE window_length = 86400
GROUP BY region, attribute, day;
