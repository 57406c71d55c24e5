-- Each customer's current segment beside their own attributes, when your customer table's id is
-- an integer. customer_key is text (any id type fits it), and an integer column does not compare
-- with text (PostgreSQL: "operator does not exist: bigint = text"), so compare the id cast to
-- text. CAST(... AS TEXT) works on PostgreSQL and SQLite. Replace customers / customer_id with
-- your table and its id column.
-- Parameters: :job
SELECT
    c.*,
    s.segment_id,
    s.segment_label,
    s.distance
FROM current_segment AS s
JOIN customers AS c
    ON CAST(c.customer_id AS TEXT) = s.customer_key
WHERE s.job = :job
ORDER BY s.segment_id, c.customer_id;
