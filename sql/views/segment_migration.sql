-- segment_migration: how many customers went from each segment to each segment each time a
-- job's current run changed (an ordinary run succeeding, `segjob promote`, or a rollback with
-- `segjob promote --previous`): from the run that was current before to the run that became
-- current, identified by that change's promotion_id. Only customers present in both runs are
-- counted.
CREATE VIEW segment_migration AS
WITH steps AS (
    SELECT
        p.job,
        p.promotion_id,
        p.run_id,
        LAG(p.run_id) OVER (PARTITION BY p.job ORDER BY p.promotion_id) AS previous_run_id
    FROM promotion AS p
    JOIN run AS r
        ON r.run_id = p.run_id
    WHERE r.status = 'succeeded'
)
SELECT
    s.job,
    s.previous_run_id AS from_run_id,
    s.run_id AS to_run_id,
    earlier.segment_id AS from_segment_id,
    later.segment_id AS to_segment_id,
    COUNT(*) AS customers,
    s.promotion_id
FROM steps AS s
JOIN assignment AS later
    ON later.run_id = s.run_id
JOIN assignment AS earlier
    ON earlier.run_id = s.previous_run_id AND earlier.customer_key = later.customer_key
WHERE s.previous_run_id <> s.run_id
GROUP BY s.job, s.promotion_id, s.previous_run_id, s.run_id, earlier.segment_id, later.segment_id;
