-- Migration 0007: importance says when it knows (issue #14).
-- status: 'learnt' (the region's own evidence), 'network' (fewer than attribute_alerts.importance_min_n
-- responses: the network's pooled statistic carries it) or 'not_enough_data' (no weight is known: the
-- row's weight is 0, not an equal share). answered: decayed responses that answered the attribute and
-- the target. Rows written before this migration were all taken as learnt.
ALTER TABLE {db}.attribute_importance ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT 'learnt'
    COMMENT 'learnt | network | not_enough_data' AFTER n;
ALTER TABLE {db}.attribute_importance ADD COLUMN IF NOT EXISTS answered Float64 DEFAULT 0
    COMMENT 'decayed responses that answered both the attribute and the target' AFTER status;

-- The latest weights per region with their status, plus region 'all': the known regions' weights
-- averaged by their n ('not_enough_data' when no region knows).
CREATE OR REPLACE VIEW {db}.v_attribute_importance AS
WITH latest AS
(
    SELECT region, attribute, target,
           argMax(weight, updated_at) AS weight,
           argMax(correlation, updated_at) AS correlation,
           argMax(n, updated_at) AS decayed_n,
           argMax(status, updated_at) AS latest_status,
           argMax(answered, updated_at) AS latest_answered,
           max(updated_at) AS last_update
    FROM {db}.attribute_importance
    GROUP BY region, attribute, target
)
SELECT region, attribute, target, weight, correlation, decayed_n AS n, latest_status AS status,
       latest_answered AS answered, last_update AS updated_at
FROM latest
UNION ALL
SELECT 'all' AS region, attribute, target,
       if(sumIf(decayed_n, latest_status != 'not_enough_data') > 0,
          sumIf(weight * decayed_n, latest_status != 'not_enough_data')
              / sumIf(decayed_n, latest_status != 'not_enough_data'), 0) AS weight,
       sum(correlation * decayed_n) / sum(decayed_n) AS correlation,
       sum(decayed_n) AS n,
       if(countIf(latest_status != 'not_enough_data') > 0, 'learnt', 'not_enough_data') AS status,
       sum(latest_answered) AS answered,
       max(last_update) AS updated_at
FROM latest
GROUP BY attribute, target
HAVING sum(decayed_n) > 0;
