-- Which customers are new in the latest run (absent from the previous one), and in which segments?
-- Parameters: :job
WITH runs AS (
    SELECT run_id, ROW_NUMBER() OVER (ORDER BY run_id DESC) AS age
    FROM run_summary
    WHERE job = :job AND status = 'succeeded'
)
SELECT
    latest.segment_id,
    latest.segment_label,
    COUNT(*) AS new_customers
FROM customer_segment_history AS latest
WHERE latest.job = :job
  AND latest.run_id = (SELECT run_id FROM runs WHERE age = 1)
  AND NOT EXISTS (
      SELECT 1
      FROM customer_segment_history AS earlier
      WHERE earlier.job = latest.job
        AND earlier.customer_key = latest.customer_key
        AND earlier.run_id = (SELECT run_id FROM runs WHERE age = 2)
  )
GROUP BY latest.segment_id, latest.segment_label
ORDER BY latest.segment_id;
