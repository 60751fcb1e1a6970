-- Migration 0002: dimension tables for BI, filled from the configuration (entity registry and
-- question catalogue) by `boucle db init` / `boucle db migrate` and at the start of every run.
-- Only changed rows are inserted, so a second sync is a no-op; a site removed from the config is
-- kept (its history still refers to it).

CREATE TABLE IF NOT EXISTS {db}.sites
(
    site_id     LowCardinality(String),
    name        String,
    region      LowCardinality(String),
    region_name String,
    country     LowCardinality(String),
    kind        LowCardinality(String) COMMENT 'peer group within a region (hypermarket, city, ...)',
    language    LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY site_id;

CREATE TABLE IF NOT EXISTS {db}.questions
(
    attribute  LowCardinality(String) COMMENT 'nps, csat, ces or an attribute name',
    is_score   UInt8 COMMENT '1 for a headline score (nps, csat, ces)',
    label_fr   String,
    label_en   String,
    min        UInt8,
    max        UInt8,
    bottom_max UInt8,
    top_min    UInt8
)
ENGINE = ReplacingMergeTree
ORDER BY attribute;

-- The comparison periods of v_peer_comparison and v_leaderboard, in days. Add one with
-- INSERT INTO periods VALUES (14).
CREATE TABLE IF NOT EXISTS {db}.periods
(
    period_days UInt16
)
ENGINE = ReplacingMergeTree
ORDER BY period_days;

INSERT INTO {db}.periods SELECT arrayJoin([7, 30, 90]) WHERE (SELECT count() FROM {db}.periods) = 0;
