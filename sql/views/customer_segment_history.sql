-- customer_segment_history: each customer's segment in every succeeded run of a job, with the
-- segment the customer had in the previous succeeded run it appeared in (NULL the first time).
CREATE VIEW customer_segment_history AS
SELECT
    h.job,
    h.customer_key,
    h.run_id,
    h.run_started_at,
    h.segment_id,
    h.segment_label,
    h.previous_segment_id,
    (h.previous_segment_id IS NOT NULL AND h.previous_segment_id <> h.segment_id) AS changed
FROM (
    SELECT
        r.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        a.segment_id,
        s.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY r.job, a.customer_key ORDER BY a.run_id) AS previous_segment_id
    FROM run AS r
    JOIN assignment AS a
        ON a.run_id = r.run_id
    JOIN segment AS s
        ON s.run_id = a.run_id AND s.segment_id = a.segment_id
    WHERE r.status = 'succeeded'
) AS h;
