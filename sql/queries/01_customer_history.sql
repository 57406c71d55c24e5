-- What segments has one customer been in, run after run, and for how long?
-- valid_from / valid_to: when each of these runs was the job's current run (valid_to NULL: it
-- still is); segment_since: since when the customer has sat in that segment without a break.
-- Parameters: :job, :customer_key
SELECT
    run_id,
    run_started_at,
    segment_id,
    segment_label,
    previous_segment_id,
    changed,
    valid_from,
    valid_to,
    segment_since
FROM customer_segment_history
WHERE job = :job
  AND customer_key = :customer_key
ORDER BY promotion_id;
