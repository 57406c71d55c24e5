-- How did the size and share of each segment change over the runs of a job?
-- Parameters: :job
SELECT
    run_id,
    run_started_at,
    segment_id,
    segment_label,
    size,
    share
FROM segment_size_history
WHERE job = :job
ORDER BY run_id, segment_id;
