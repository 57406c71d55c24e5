-- What segments has one customer been in, run after run, and for how long?
-- Parameters: :job, :customer_key
SELECT
    run_id,
    run_started_at,
    segment_id,
    segment_label,
    previous_segment_id,
    changed
FROM customer_segment_history
WHERE job = :job
  AND customer_key = :customer_key
ORDER BY run_id;
