-- segment_size_history: the size and share of each segment in every run (fit or score) of a job
-- that became current (a candidate run only once promoted), over time. Segment ids are stable
-- across fit runs (matched by centroid), so one segment_id is one segment's trajectory.
CREATE VIEW segment_size_history AS
SELECT
    r.job,
    s.run_id,
    r.started_at AS run_started_at,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
WHERE r.status = 'succeeded' AND r.run_id IN (SELECT run_id FROM promotion);
