-- customer_segment_history: each customer's segment in every run (fit or score) of a job that
-- became current (every ordinary succeeded run; a candidate run only once promoted), with the
-- segment the customer had in the previous such run it appeared in (NULL the first time).
-- valid_from / valid_to bound the contiguous stretch of runs in which the customer stayed in this
-- segment (slowly-changing-dimension type 2): valid_from is the start of the stretch's first run,
-- valid_to the start of the first later run in which the customer was not in this segment (moved,
-- or not segmented at all); valid_to is NULL while the stretch reaches the job's latest such run.
CREATE VIEW customer_segment_history AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        started_at,
        ROW_NUMBER() OVER (PARTITION BY job ORDER BY run_id) AS run_seq
    FROM run
    WHERE status = 'succeeded' AND run_id IN (SELECT run_id FROM promotion)
),
placed AS (
    SELECT
        r.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        r.run_seq,
        a.segment_id,
        s.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY r.job, a.customer_key ORDER BY r.run_seq) AS previous_segment_id,
        r.run_seq - ROW_NUMBER() OVER (
            PARTITION BY r.job, a.customer_key, a.segment_id ORDER BY r.run_seq
        ) AS stretch
    FROM succeeded AS r
    JOIN assignment AS a
        ON a.run_id = r.run_id
    JOIN segment AS s
        ON s.run_id = a.run_id AND s.segment_id = a.segment_id
),
stretched AS (
    SELECT
        job,
        customer_key,
        run_id,
        run_started_at,
        segment_id,
        segment_label,
        previous_segment_id,
        MIN(run_started_at) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS valid_from,
        MAX(run_seq) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS last_seq
    FROM placed
)
SELECT
    h.job,
    h.customer_key,
    h.run_id,
    h.run_started_at,
    h.segment_id,
    h.segment_label,
    h.previous_segment_id,
    (h.previous_segment_id IS NOT NULL AND h.previous_segment_id <> h.segment_id) AS changed,
    h.valid_from,
    after_stretch.started_at AS valid_to
FROM stretched AS h
LEFT JOIN succeeded AS after_stretch
    ON after_stretch.job = h.job AND after_stretch.run_seq = h.last_seq + 1;
