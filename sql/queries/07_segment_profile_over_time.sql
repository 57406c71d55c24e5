-- How did one segment's profile (centroid of every feature, in original units) change over runs?
-- Parameters: :job, :segment_id
SELECT
    run_id,
    segment_label,
    size,
    feature,
    centroid,
    mean,
    z_score
FROM segment_profile
WHERE job = :job
  AND segment_id = :segment_id
ORDER BY feature, run_id;
