-- Which runs had a clearly worse silhouette than the job's previous succeeded run that has one?
-- (Score runs without a silhouette are skipped.)
-- Parameters: :job, :min_drop (e.g. 0.05)
WITH succeeded AS (
    SELECT
        run_id,
        started_at,
        k,
        silhouette,
        LAG(run_id) OVER (ORDER BY run_id) AS previous_run_id,
        LAG(silhouette) OVER (ORDER BY run_id) AS previous_silhouette
    FROM run_summary
    WHERE job = :job AND status = 'succeeded' AND silhouette IS NOT NULL
)
SELECT
    run_id,
    started_at,
    k,
    previous_run_id,
    previous_silhouette,
    silhouette,
    previous_silhouette - silhouette AS drop_in_silhouette
FROM succeeded
WHERE previous_silhouette - silhouette >= :min_drop
ORDER BY run_id;
