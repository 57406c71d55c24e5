-- How stable is each segment: of the customers it had in one run, what share kept the same
-- segment id in the next current run (averaged over the changes of the job's current run)?
-- Parameters: :job
WITH per_pair AS (
    SELECT
        promotion_id,
        from_segment_id AS segment_id,
        SUM(CASE WHEN to_segment_id = from_segment_id THEN customers ELSE 0 END) * 1.0 / SUM(customers) AS stayed
    FROM segment_migration
    WHERE job = :job
    GROUP BY promotion_id, from_segment_id
)
SELECT
    segment_id,
    COUNT(*) AS run_pairs,
    AVG(stayed) AS average_share_stayed,
    MIN(stayed) AS worst_share_stayed
FROM per_pair
GROUP BY segment_id
ORDER BY segment_id;
