-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric. algorithm is the clustering algorithm; k_criterion says
-- what decided k (silhouette, elbow, davies-bouldin, calinski-harabasz, stability, fixed, dbscan).
-- model_run_id: the fit run whose model a score run used (NULL for fit runs).
-- Drift against compared_run_id, the job's current run when this run published: common_customers
-- (in both runs), changed_share (share of them in another segment), ari (adjusted Rand index on them),
-- max_psi (largest population stability index of a feature), max_centroid_shift (largest
-- distance a segment's centroid moved, in the compared run's scaled units).
-- Purchase-history runs checked against later behaviour (see segment_validation):
-- validation_start / validation_end, the first and last day of the next period (NULL without
-- one); next_spend_explained, the share of the variance of next-period spend per customer that
-- the segments explain (eta squared, 0 to 1).
-- Which run is current (the one current_segment shows): is_current, since current_since, and
-- current_reason: "succeeded" (an ordinary run becomes current when it succeeds), "promoted"
-- (segjob promote RUN_ID) or "rolled back" (segjob promote --job J --previous). candidate is true
-- for a run made with --candidate, which becomes current only when promoted. features: the
-- source columns the run used (numeric, then categorical), as a JSON array in text.
CREATE VIEW run_summary AS
SELECT
    r.run_id,
    r.job,
    r.kind,
    r.status,
    r.started_at,
    r.finished_at,
    r.k,
    r.rows_read,
    r.rows_used,
    r.rows_dropped,
    MAX(CASE WHEN m.name = 'silhouette' THEN m.value END) AS silhouette,
    MAX(CASE WHEN m.name = 'davies_bouldin' THEN m.value END) AS davies_bouldin,
    MAX(CASE WHEN m.name = 'calinski_harabasz' THEN m.value END) AS calinski_harabasz,
    MAX(CASE WHEN m.name = 'inertia' THEN m.value END) AS inertia,
    r.run_key,
    r.error,
    r.algorithm,
    r.k_criterion,
    MAX(CASE WHEN m.name = 'stability' THEN m.value END) AS stability,
    r.model_run_id,
    r.compared_run_id,
    r.common_customers,
    r.changed_share,
    r.ari,
    (SELECT MAX(f.psi) FROM run_feature AS f WHERE f.run_id = r.run_id) AS max_psi,
    (SELECT MAX(g.centroid_shift) FROM segment AS g WHERE g.run_id = r.run_id) AS max_centroid_shift,
    r.validation_start,
    r.validation_end,
    r.next_spend_explained,
    r.candidate,
    (cur.promotion_id IS NOT NULL) AS is_current,
    cur.promoted_at AS current_since,
    cur.reason AS current_reason,
    r.features
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
LEFT JOIN promotion AS cur
    ON cur.run_id = r.run_id
    AND cur.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error, r.algorithm, r.k_criterion,
    r.model_run_id, r.compared_run_id, r.common_customers, r.changed_share, r.ari,
    r.validation_start, r.validation_end, r.next_spend_explained,
    r.candidate, cur.promotion_id, cur.promoted_at, cur.reason, r.features;
