-- What segments has one customer been in, run after run, and for how long?
-- valid_from / valid_to bound each stretch the customer spent in one segment (valid_to NULL:
-- still there in the latest run).
-- Parameters: :job, :customer_key
SELECT
    run_id,
    run_started_at,
    segment_id,
    segment_label,
    previous_segment_id,
    changed,
    valid_from,
    valid_to
FROM customer_segment_history
WHERE job = :job
  AND customer_key = :customer_key
ORDER BY run_id;
