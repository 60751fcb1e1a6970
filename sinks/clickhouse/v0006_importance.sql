-- Migration 0006: attribute importance (key-driver analysis of the outer loop, issue #4).
-- The region step of the attribute alerts writes, once per event-time day and region, how much
-- each attribute drives the target score (NPS by default): normalised weights (sum to 1 over a
-- region's attributes) and the plain correlation. A replay rewrites the same (region, attribute,
-- day) keys: the latest snapshot of a day wins.
CREATE TABLE IF NOT EXISTS {db}.attribute_importance
(
    region      LowCardinality(String),
    attribute   LowCardinality(String),
    day         Date COMMENT 'event-time day the snapshot describes',
    target      LowCardinality(String) COMMENT 'the score the attributes drive (attribute_alerts.importance_target)',
    weight      Float64 COMMENT 'normalised key-driver weight; sums to 1 over the region''s attributes',
    correlation Float64 COMMENT 'correlation of the attribute with the target',
    n           Float64 COMMENT 'decayed number of responses behind the estimate',
    updated_at  DateTime64(3, 'UTC') COMMENT 'event time of the snapshot'
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(day)
ORDER BY (region, attribute, day)
SETTINGS non_replicated_deduplication_window = 1000;

-- The latest weights per region, plus region 'all': the regions' weights averaged by their n.
CREATE OR REPLACE VIEW {db}.v_attribute_importance AS
WITH latest AS
(
    SELECT region, attribute, target,
           argMax(weight, updated_at) AS weight,
           argMax(correlation, updated_at) AS correlation,
           argMax(n, updated_at) AS decayed_n,
           max(updated_at) AS last_update
    FROM {db}.attribute_importance
    GROUP BY region, attribute, target
)
SELECT region, attribute, target, weight, correlation, decayed_n AS n, last_update AS updated_at FROM latest
UNION ALL
SELECT 'all' AS region, attribute, target,
       sum(weight * decayed_n) / sum(decayed_n) AS weight,
       sum(correlation * decayed_n) / sum(decayed_n) AS correlation,
       sum(decayed_n) AS n,
       max(last_update) AS updated_at
FROM latest
GROUP BY attribute, target
HAVING sum(decayed_n) > 0;
