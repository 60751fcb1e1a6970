-- Migration 0007: what the attribute alerts watch (issue #14, "say what is watched").
-- Each (site, question) series is either watched (its detectors have the history their tests need)
-- or warming up, with about how many more responses it needs. The site step writes a row when a
-- series' status changes and once per event-time day of the series; the latest row per series wins.
CREATE TABLE IF NOT EXISTS {db}.series_status
(
    site_id     LowCardinality(String),
    region      LowCardinality(String),
    question    LowCardinality(String) COMMENT 'a headline score or an attribute',
    watched     UInt8 COMMENT '1: watched; 0: warming up (no local test can fire yet)',
    needs       Float64 COMMENT 'about how many more responses before it is watched (0 once it is)',
    n_history   Float64 COMMENT 'decayed responses behind its level',
    responses   UInt64 COMMENT 'responses seen',
    per_day     Float64 COMMENT 'the series'' own rate (responses a day): its detectors'' clock follows it',
    updated_at  DateTime64(3, 'UTC') COMMENT 'event time of the newest response'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (site_id, question)
SETTINGS non_replicated_deduplication_window = 1000;

-- The status of every series as it stands: one row per site and question.
CREATE OR REPLACE VIEW {db}.v_series_status AS
WITH latest AS
(
    SELECT site_id, question,
           argMax(region, updated_at) AS last_region,
           argMax(watched, updated_at) AS last_watched,
           argMax(needs, updated_at) AS last_needs,
           argMax(n_history, updated_at) AS last_n_history,
           argMax(responses, updated_at) AS last_responses,
           argMax(per_day, updated_at) AS last_per_day,
           max(updated_at) AS last_update
    FROM {db}.series_status
    GROUP BY site_id, question
)
SELECT site_id, last_region AS region, question, if(last_watched = 1, 'watched', 'warming up') AS status,
       last_needs AS needs, last_n_history AS n_history, last_responses AS responses, last_per_day AS per_day,
       last_update AS updated_at
FROM latest;
