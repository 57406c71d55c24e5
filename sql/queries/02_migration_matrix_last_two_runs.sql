-- How many customers moved from each segment to each segment when the job's current run last
-- changed (its last two current runs; after a rollback, the run rolled back from and to)?
-- Parameters: :job
SELECT
    from_segment_id,
    to_segment_id,
    customers
FROM segment_migration
WHERE job = :job
  AND promotion_id = (SELECT MAX(promotion_id) FROM segment_migration WHERE job = :job)
ORDER BY from_segment_id, to_segment_id;
