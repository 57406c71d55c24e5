-- How did the size and share of each segment change over the runs of a job?
-- Parameters: :job
SELECT DISTINCT
    p.run_id,
    r.started_at,
    p.segment_id,
    p.segment_label,
    p.size,
    p.share
FROM segment_profile AS p
JOIN run_summary AS r
    ON r.run_id = p.run_id
WHERE p.job = :job
ORDER BY p.run_id, p.segment_id;
