-- Migration 0009: the loop reaches people (issue 17) and history replayed as history (issue 16).
--   * cases.outcome_unknown: a replayed case whose deadline passed before the run started, with no
--     action known in time: neither treated nor untreated (not sla_decided), no case_sla alert.
--   * v_alerts: a hot alert now follows its case (open -> updated -> resolved, same alert_id); the
--     latest state is the resolved one once there is one (resolved is final: a republished open
--     state after a resume does not reopen it), else the last detected_at, then event_time, then
--     open < updated < resolved. `is_open` = 1 until resolved.
--   * v_site_alert_days: alerts opened per site and day (UTC), and hot alerts held back by the
--     per-site rate cap (hot_digest), to tune the rules.

ALTER TABLE {db}.cases ADD COLUMN IF NOT EXISTS outcome_unknown UInt8 DEFAULT 0
    COMMENT 'replay: deadline passed before the run started, no action known in time (history)';

CREATE OR REPLACE VIEW {db}.v_alerts AS
SELECT
    a.alert_id AS alert_id, a.kind AS kind, a.status AS status, a.severity AS severity,
    a.site_id AS site_id, if(s.name = '' AND a.site_id != '', a.site_id, s.name) AS site_name,
    a.region AS region, a.attribute AS attribute, a.triggers AS triggers, a.message AS message, a.owner AS owner,
    a.first_event_time AS first_event_time, a.event_time AS event_time,
    a.opened_at AS opened_at, a.updated_at AS updated_at, a.resolved_at AS resolved_at, a.updates AS updates,
    toUInt8(a.status != 'resolved') AS is_open
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
            (toString(status) = 'resolved', detected_at, event_time,
             indexOf(['open', 'updated', 'resolved'], toString(status))) AS version
        FROM {db}.alerts FINAL
    )
    GROUP BY alert_id
) AS a
LEFT JOIN (SELECT * FROM {db}.sites FINAL) AS s ON s.site_id = a.site_id;

CREATE OR REPLACE VIEW {db}.v_site_alert_days AS
SELECT
    toDate(event_time) AS day,
    site_id,
    any(region) AS region,
    countIf(status = 'open' AND kind = 'hot') AS hot_alerts,
    sumIf(JSONExtractUInt(payload, 'evidence', 'held'), status = 'open' AND kind = 'hot_digest') AS hot_held,
    countIf(status = 'open' AND kind NOT IN ('hot', 'hot_digest')) AS other_alerts,
    countIf(status = 'open') AS alerts_opened
FROM {db}.alerts FINAL
WHERE site_id != ''
GROUP BY day, site_id;

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
    countIf(c.sla_decided = 0 AND c.outcome_unknown = 0 AND c.first_action_at = toDateTime64(0, 3, 'UTC')) AS pending_cases,
    countIf(c.outcome_unknown = 1) AS history_cases
FROM {db}.cases AS c FINAL
LEFT JOIN (SELECT site_id, name FROM {db}.sites FINAL) AS s ON s.site_id = c.site_id
GROUP BY c.site_id;
