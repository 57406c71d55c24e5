-- current_segment: every customer's segment in the current run of each job: the latest run that
-- became current (an ordinary run when it succeeds, a candidate run only once `segjob promote`
-- makes it current; `segjob promote --previous` goes back). run_summary.is_current marks it.
-- distance is the Euclidean distance to the segment's centroid in scaled units. Segment 0,
-- labelled "Outliers", holds the customers DBSCAN counts as noise. probability is a Gaussian
-- mixture's membership probability of the customer's segment (NULL for other algorithms).
CREATE VIEW current_segment AS
SELECT
    r.job,
    a.run_id,
    a.customer_key,
    a.segment_id,
    s.label AS segment_label,
    a.distance,
    a.probability
FROM run AS r
JOIN assignment AS a
    ON a.run_id = r.run_id
JOIN segment AS s
    ON s.run_id = a.run_id AND s.segment_id = a.segment_id
WHERE r.run_id = (
    SELECT p.run_id
    FROM promotion AS p
    WHERE p.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
);
