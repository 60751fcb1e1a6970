-- Migration 0005: closing the loop. Cases (what the frontline did about each hot alert), survey
-- invitations (response rates, non-respondents), comment themes, NPS segments, and a token index
-- that makes feedback.comment searchable. KPI definitions (README.md, "Closing the loop"):
--   contacted_share        = cases with a contact (contacted or resolved) / cases
--   hours_to_first_contact = mean (and median) hours from the response to the first contact
--   fcr_rate               = cases resolved at the first contact / cases contacted
--   untreated_rate         = cases with no action (contact, resolution, escalation) by their SLA
--                            deadline / cases whose deadline has passed (sla_decided)
--   escalation_rate        = cases escalated / cases
--   response_rate          = invitations answered / invitations

-- One row per hot alert, re-sent whenever its case changes; `version` only grows (events seen,
-- SLA decided, SLA alerted), so the latest state wins and a replay collapses onto it.
-- Times that did not happen are 1970-01-01 (their flag column is 0).
CREATE TABLE IF NOT EXISTS {db}.cases
(
    alert_id         String,
    site_id          LowCardinality(String),
    region           LowCardinality(String),
    severity         LowCardinality(String) COMMENT 'of the hot alert',
    opened_at        DateTime64(3, 'UTC') COMMENT 'the response''s event time',
    due_at           DateTime64(3, 'UTC') COMMENT 'opened_at + cases.sla',
    status           LowCardinality(String) COMMENT 'open | contacted | escalated | resolved',
    first_action_at  DateTime64(3, 'UTC'),
    first_contact_at DateTime64(3, 'UTC'),
    resolved_at      DateTime64(3, 'UTC'),
    escalated_at     DateTime64(3, 'UTC'),
    contacted        UInt8,
    resolved         UInt8,
    escalated        UInt8,
    fcr              UInt8 COMMENT 'resolved at the first contact',
    sla_decided      UInt8 COMMENT 'the SLA deadline has passed (event time)',
    untreated        UInt8 COMMENT 'no action by the deadline',
    sla_alerted      UInt8 COMMENT 'a case_sla alert went to the site manager',
    contacts         UInt16,
    notes            UInt16,
    root_cause       LowCardinality(String),
    last_by          String,
    events           UInt16,
    version          UInt32
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(opened_at)
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.invitations
(
    invitation_id   String,
    sent_at         DateTime64(3, 'UTC'),
    site_id         LowCardinality(String),
    region          LowCardinality(String),
    channel         LowCardinality(String),
    customer_id     String,
    consent_contact UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(sent_at)
ORDER BY (site_id, customer_id, sent_at, invitation_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Complaint themes per site and event-time window: n comments with the theme among `comments`.
CREATE TABLE IF NOT EXISTS {db}.comment_themes
(
    site_id       LowCardinality(String),
    region        LowCardinality(String),
    window_length UInt32 COMMENT 'seconds',
    window_start  DateTime64(3, 'UTC'),
    theme         LowCardinality(String),
    n             UInt32,
    comments      UInt32 COMMENT 'comments of the site in the window'
)
ENGINE = ReplacingMergeTree(comments)
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, theme, window_length, window_start)
SETTINGS non_replicated_deduplication_window = 1000;

-- Search in comments: `WHERE hasToken(lower(comment), 'attente')` skips granules without the word.
ALTER TABLE {db}.feedback ADD INDEX IF NOT EXISTS comment_tokens lower(comment) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1;

CREATE OR REPLACE VIEW {db}.v_case_kpis AS
SELECT
    c.site_id AS site_id,
    if(any(s.name) = '', c.site_id, any(s.name)) AS site_name,
    any(c.region) AS region,
    count() AS cases,
    countIf(c.contacted = 1) AS contacted_cases,
    contacted_cases / cases AS contacted_share,
    avgIf(dateDiff('second', c.opened_at, c.first_contact_at) / 3600, c.contacted = 1) AS hours_to_first_contact,
    medianIf(dateDiff('second', c.opened_at, c.first_contact_at) / 3600, c.contacted = 1) AS median_hours_to_first_contact,
    countIf(c.fcr = 1) AS fcr_cases,
    if(contacted_cases = 0, nan, fcr_cases / contacted_cases) AS fcr_rate,
    countIf(c.sla_decided = 1) AS decided_cases,
    countIf(c.untreated = 1) AS untreated_cases,
    if(decided_cases = 0, nan, untreated_cases / decided_cases) AS untreated_rate,
    countIf(c.escalated = 1) AS escalated_cases,
    escalated_cases / cases AS escalation_rate,
    countIf(c.resolved = 1) AS resolved_cases,
    countIf(c.sla_decided = 0 AND c.first_action_at = toDateTime64(0, 3, 'UTC')) AS pending_cases
FROM {db}.cases AS c FINAL
LEFT JOIN (SELECT site_id, name FROM {db}.sites FINAL) AS s ON s.site_id = c.site_id
GROUP BY c.site_id;

CREATE OR REPLACE VIEW {db}.v_case_kpis_region AS
SELECT
    region,
    count() AS cases,
    countIf(contacted = 1) AS contacted_cases,
    contacted_cases / cases AS contacted_share,
    avgIf(dateDiff('second', opened_at, first_contact_at) / 3600, contacted = 1) AS hours_to_first_contact,
    countIf(fcr = 1) AS fcr_cases,
    if(contacted_cases = 0, nan, fcr_cases / contacted_cases) AS fcr_rate,
    countIf(sla_decided = 1) AS decided_cases,
    countIf(untreated = 1) AS untreated_cases,
    if(decided_cases = 0, nan, untreated_cases / decided_cases) AS untreated_rate,
    countIf(escalated = 1) AS escalated_cases,
    escalated_cases / cases AS escalation_rate
FROM {db}.cases FINAL
GROUP BY region;

-- Each invitation with its response, if any: the first response of the same customer at the same
-- site at or after sent_at. `days_waiting` counts from sent_at to the warehouse clock (the latest
-- response stored), so a replayed history reads as it did then.
CREATE OR REPLACE VIEW {db}.v_invitations AS
WITH (SELECT max(occurred_at) FROM {db}.feedback) AS clock
SELECT
    i.invitation_id AS invitation_id,
    i.sent_at AS sent_at,
    i.site_id AS site_id,
    i.region AS region,
    i.channel AS channel,
    i.customer_id AS customer_id,
    i.consent_contact AS consent_contact,
    f.event_id AS response_event_id,
    f.occurred_at AS responded_at,
    f.event_id != '' AS responded,
    dateDiff('second', i.sent_at, clock) / 86400 AS days_waiting
FROM (SELECT * FROM {db}.invitations FINAL) AS i
ASOF LEFT JOIN
    (SELECT event_id, site_id, customer_id, occurred_at FROM {db}.feedback WHERE customer_id != '') AS f
    ON f.site_id = i.site_id AND f.customer_id = i.customer_id AND f.occurred_at >= i.sent_at;

CREATE OR REPLACE VIEW {db}.v_response_rates AS
SELECT site_id, any(region) AS region, channel, count() AS invitations, countIf(responded) AS responses,
       responses / invitations AS response_rate
FROM {db}.v_invitations
GROUP BY site_id, channel;

-- Invitations still unanswered 3 days after they were sent (`boucle cases non-respondents --after`
-- picks another delay from v_invitations).
CREATE OR REPLACE VIEW {db}.v_non_respondents AS
SELECT invitation_id, sent_at, site_id, region, channel, customer_id, consent_contact, days_waiting
FROM {db}.v_invitations
WHERE NOT responded AND days_waiting >= 3;

-- NPS segments per site, by ISO week and by month (period_start = its first day).
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
    ARRAY JOIN [('week', toMonday(occurred_at)), ('month', toStartOfMonth(occurred_at))] AS p
    WHERE mapContains(scores, 'nps')
)
GROUP BY site_id, period, period_start;

-- Promoters who consented to be contacted: thank them, ask for a referral or a review.
CREATE OR REPLACE VIEW {db}.v_promoters AS
SELECT event_id, occurred_at, site_id, region, channel, customer_id, scores['nps'] AS nps, comment
FROM {db}.feedback FINAL
WHERE consent_contact = 1 AND customer_id != '' AND mapContains(scores, 'nps') AND scores['nps'] >= 9;

CREATE OR REPLACE VIEW {db}.v_theme_daily AS
SELECT site_id, region, toDate(window_start) AS day, theme, n, comments, n / comments AS share
FROM {db}.comment_themes FINAL
WHERE window_length = 86400;
