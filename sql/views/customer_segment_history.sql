-- customer_segment_history: each customer's segment in every run (fit or score) of a job each
-- time it became current, in the order dashboards showed them: an ordinary run when it
-- succeeded, a candidate run when `segjob promote` made it current, and an earlier run again when
-- `segjob promote --previous` rolled back to it (the run then appears once more, with the
-- rollback's promotion_id). previous_segment_id is the customer's segment in the previous current
-- run they appeared in (NULL the first time).
-- Slowly-changing dimension type 2: valid_from is when this row's run became current, valid_to
-- when the next run of the job became current (NULL while it is still current), so the rows with
-- valid_to IS NULL are exactly current_segment's, and each moment falls in one row per customer.
-- segment_since is when the contiguous stretch of current runs in which the customer has sat in
-- this segment began (a customer not segmented by a run ends the stretch).
CREATE VIEW customer_segment_history AS
WITH steps AS (
    SELECT
        p.job,
        p.promotion_id,
        p.run_id,
        p.promoted_at,
        ROW_NUMBER() OVER (PARTITION BY p.job ORDER BY p.promotion_id) AS step
    FROM promotion AS p
    JOIN run AS r
        ON r.run_id = p.run_id
    WHERE r.status = 'succeeded'
),
placed AS (
    SELECT
        s.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        s.promotion_id,
        s.promoted_at,
        s.step,
        a.segment_id,
        g.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY s.job, a.customer_key ORDER BY s.step) AS previous_segment_id,
        s.step - ROW_NUMBER() OVER (
            PARTITION BY s.job, a.customer_key, a.segment_id ORDER BY s.step
        ) AS stretch
    FROM steps AS s
    JOIN run AS r
        ON r.run_id = s.run_id
    JOIN assignment AS a
        ON a.run_id = s.run_id
    JOIN segment AS g
        ON g.run_id = a.run_id AND g.segment_id = a.segment_id
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
    h.promoted_at AS valid_from,
    next_step.promoted_at AS valid_to,
    h.promotion_id,
    MIN(h.promoted_at) OVER (PARTITION BY h.job, h.customer_key, h.segment_id, h.stretch) AS segment_since
FROM placed AS h
LEFT JOIN steps AS next_step
    ON next_step.job = h.job AND next_step.step = h.step + 1;
