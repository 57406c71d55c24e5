-- segment_validation: segments checked against later behaviour, one row per segment of every
-- succeeded run. A purchase-history fit run has a "next period" when --validate-days N moved its
-- as-of date back N days (the next period is those N days), or when --as-of was given and later
-- transactions exist (the next period runs to the latest transaction); validation_start and
-- validation_end are its first and last day. For the segment's customers in that period:
--   next_purchase_rate: share with at least one purchase (amount > 0);
--   next_spend_mean: net spend (returns included) per customer, customers who bought nothing as 0;
--   next_revenue_share: the segment's part of the net next-period spend of all the run's customers.
-- next_spend_explained (the same on every row of a run): share of the variance of per-customer
-- next-period spend explained by the segments (eta squared, 0 to 1). Customers who first bought in
-- the next period belong to no segment and are not counted. All NULL when the run has no next
-- period (other runs, score runs).
CREATE VIEW segment_validation AS
SELECT
    r.job,
    s.run_id,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share,
    r.validation_start,
    r.validation_end,
    s.next_purchase_rate,
    s.next_spend_mean,
    s.next_revenue_share,
    r.next_spend_explained
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
WHERE r.status = 'succeeded';
