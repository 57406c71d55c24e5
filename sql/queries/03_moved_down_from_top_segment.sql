-- Which customers were in the highest-value segment of the previous current run and are in a lower
-- one now?
-- "Value" is the segment centroid of one feature, e.g. 'Spending Score (1-100)'.
-- Parameters: :job, :value_feature
WITH last_change AS (
    SELECT MAX(promotion_id) AS promotion_id FROM segment_migration WHERE job = :job
),
previous AS (
    SELECT MAX(from_run_id) AS run_id FROM segment_migration
    WHERE job = :job AND promotion_id = (SELECT promotion_id FROM last_change)
),
value AS (
    SELECT run_id, segment_id, centroid
    FROM segment_profile
    WHERE job = :job AND feature = :value_feature
),
top_segment AS (
    SELECT segment_id, centroid
    FROM value
    WHERE run_id = (SELECT run_id FROM previous)
    ORDER BY centroid DESC
    LIMIT 1
)
SELECT
    now_.customer_key,
    before_.segment_id AS previous_segment_id,
    now_.segment_id,
    now_.segment_label,
    top_segment.centroid AS previous_value,
    value.centroid AS value_now
FROM customer_segment_history AS now_
JOIN customer_segment_history AS before_
    ON before_.job = now_.job
   AND before_.customer_key = now_.customer_key
   AND before_.run_id = (SELECT run_id FROM previous)
   AND before_.valid_to = now_.valid_from
JOIN top_segment
    ON top_segment.segment_id = before_.segment_id
JOIN value
    ON value.run_id = now_.run_id AND value.segment_id = now_.segment_id
WHERE now_.job = :job
  AND now_.promotion_id = (SELECT promotion_id FROM last_change)
  AND value.centroid < top_segment.centroid
ORDER BY now_.customer_key;
