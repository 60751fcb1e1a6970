-- Migration 0001: the fact tables the flow writes. `{db}` is replaced by warehouse.database.
-- Never edit an applied migration: add a new file (see schema.py).
-- Every table is a ReplacingMergeTree whose ORDER BY is the row's natural key, so a replayed batch
-- (bytewax output is at-least-once) collapses onto the rows it repeats; the insert deduplication
-- window also drops byte-identical retried blocks before they are stored.
-- Time columns are DateTime64(3, 'UTC').

CREATE DATABASE IF NOT EXISTS {db};

-- Fields copied unchanged from the event are extracted here from `raw`, the validated event as
-- received (an EPHEMERAL column: used by the DEFAULTs, never stored): parsing JSON in ClickHouse
-- costs far less than converting nested Python dicts to Arrow.
CREATE TABLE IF NOT EXISTS {db}.feedback
(
    raw             String EPHEMERAL COMMENT 'the event as received (not stored)',
    event_id        String,
    occurred_at     DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    site_id         LowCardinality(String),
    region          LowCardinality(String),
    channel         LowCardinality(String) DEFAULT JSONExtractString(raw, 'channel'),
    journey_stage   LowCardinality(String) DEFAULT JSONExtractString(raw, 'journey_stage'),
    scores          Map(LowCardinality(String), UInt8) DEFAULT JSONExtract(raw, 'scores', 'Map(String, UInt8)'),
    attributes      Map(LowCardinality(String), UInt8) DEFAULT JSONExtract(raw, 'attributes', 'Map(String, UInt8)'),
    comment         String COMMENT 'e-mail addresses, phone and card numbers masked',
    language        LowCardinality(String) DEFAULT JSONExtractString(raw, 'language'),
    customer_id     String,
    consent_contact UInt8,
    late            UInt8 COMMENT '1 when later than windows.allowed_lateness: kept raw, not in attribute_scores',
    origin          String COMMENT 'source:partition:offset of the original message'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (site_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.attribute_scores
(
    site_id       LowCardinality(String),
    region        LowCardinality(String),
    attribute     LowCardinality(String) COMMENT 'a headline score (nps, csat, ces) or an attribute',
    window_length UInt32 COMMENT 'seconds',
    window_start  DateTime64(3, 'UTC'),
    n             UInt32,
    sum           UInt64,
    bottom_n      UInt32 COMMENT 'ratings <= bottom_max (detractors for nps)',
    top_n         UInt32 COMMENT 'ratings >= top_min (promoters for nps)',
    -- Derived here rather than sent: fewer values cross from Python to ClickHouse.
    window_end    DateTime64(3, 'UTC') DEFAULT window_start + toIntervalSecond(window_length),
    mean          Float64 DEFAULT sum / n,
    bottom_share  Float64 DEFAULT bottom_n / n,
    top_share     Float64 DEFAULT top_n / n
)
ENGINE = ReplacingMergeTree(n)  -- a window re-emitted after a resume has grown: keep the largest
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, attribute, window_length, window_start)
SETTINGS non_replicated_deduplication_window = 1000;

-- An alert is sent as its published JSON; the columns are extracted from it.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    payload     String COMMENT 'the alert as published (JSON, see schemas/alert.schema.json)',
    alert_id    String DEFAULT JSONExtractString(payload, 'alert_id'),
    kind        LowCardinality(String) DEFAULT JSONExtractString(payload, 'kind'),
    status      LowCardinality(String) DEFAULT JSONExtractString(payload, 'status'),
    severity    LowCardinality(String) DEFAULT JSONExtractString(payload, 'severity'),
    site_id     LowCardinality(String) DEFAULT JSONExtractString(payload, 'site_id'),
    region      LowCardinality(String) DEFAULT JSONExtractString(payload, 'region'),
    attribute   LowCardinality(String) DEFAULT JSONExtractString(payload, 'attribute'),
    triggers    Array(String) DEFAULT JSONExtract(payload, 'triggers', 'Array(String)'),
    message     String DEFAULT JSONExtractString(payload, 'message'),
    owner       String DEFAULT JSONExtractString(payload, 'owner'),
    event_time  DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffort(JSONExtractString(payload, 'event_time'), 3, 'UTC'),
    detected_at DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffort(JSONExtractString(payload, 'detected_at'), 3, 'UTC')
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (alert_id, status, event_time)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    origin      String COMMENT 'source name (simulator, file path, kafka topic)',
    partition   Int32,
    offset      Int64,
    received_at DateTime64(3, 'UTC'),
    reason_code LowCardinality(String),
    reason      String,
    raw         String COMMENT 'the original bytes'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (origin, partition, offset)
SETTINGS non_replicated_deduplication_window = 1000;
