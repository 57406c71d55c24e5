-- How many customers moved from each segment to each segment between the last two runs of a job?
-- Parameters: :job
SELECT
    from_segment_id,
    to_segment_id,
    customers
FROM segment_migration
WHERE job = :job
  AND to_run_id = (SELECT MAX(to_run_id) FROM segment_migration WHERE job = :job)
ORDER BY from_segment_id, to_segment_id;
