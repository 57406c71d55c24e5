-- segment_migration: how many customers went from each segment to each segment between two
-- consecutive runs (fit or score) of a job that became current (a candidate run only once
-- promoted). Only customers present in both runs are counted.
CREATE VIEW segment_migration AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        LAG(run_id) OVER (PARTITION BY job ORDER BY run_id) AS previous_run_id
    FROM run
    WHERE status = 'succeeded' AND run_id IN (SELECT run_id FROM promotion)
)
SELECT
    s.job,
    s.previous_run_id AS from_run_id,
    s.run_id AS to_run_id,
    earlier.segment_id AS from_segment_id,
    later.segment_id AS to_segment_id,
    COUNT(*) AS customers
FROM succeeded AS s
JOIN assignment AS later
    ON later.run_id = s.run_id
JOIN assignment AS earlier
    ON earlier.run_id = s.previous_run_id AND earlier.customer_key = later.customer_key
GROUP BY s.job, s.previous_run_id, s.run_id, earlier.segment_id, later.segment_id;
