-- segment_profile: one row per segment and feature of every succeeded run, in original units
-- (dollars, years, ...). A one-hot feature is named "column=level"; its centroid and mean are
-- the share of the segment's customers at that level. z_score compares the segment mean with
-- the whole population of the run, in population standard deviations. position is the feature's
-- place among the run's model columns (0 first) and kind is "numeric" or "categorical" (one level
-- of a one-hot column); rows come in run, segment and position order. is_current marks the rows of
-- each job's current run (what current_segment shows): dashboards filter on it, so a candidate
-- run (segjob run --candidate) stays out of sight until it is promoted.
CREATE VIEW segment_profile AS
SELECT
    r.job,
    s.run_id,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share,
    c.feature,
    c.centroid,
    c.mean,
    c.median,
    c.z_score,
    f.position,
    f.kind,
    COALESCE(r.run_id = (
        SELECT p.run_id
        FROM promotion AS p
        WHERE p.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
    ), FALSE) AS is_current
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
JOIN segment_centroid AS c
    ON c.run_id = s.run_id AND c.segment_id = s.segment_id
LEFT JOIN run_feature AS f
    ON f.run_id = c.run_id AND f.feature = c.feature
WHERE r.status = 'succeeded'
ORDER BY s.run_id, s.segment_id, f.position;
