/*
 * doubt_json.h — the JSON of a doubt result (doubt_score.h) and of a doubt
 * evaluation (doubt_eval.h): the one shape `strata predict --json`, `strata
 * doubt-eval --json` and the API answer with.
 *
 * Each function returns a new jansson value the caller owns (json_decref),
 * or NULL when out of memory; the result, the report and the model are only
 * read.
 */
#ifndef STRATA_DOUBT_JSON_H
#define STRATA_DOUBT_JSON_H

struct json_t;
struct doubt_result;
struct doubt_report;
struct model;

/* The JSON of one result (the "doubt" of `strata predict --json` and of
 * POST /api/models/{id}/predict):
 *   {"score", "level", "credibility", "thresholds": {"medium", "high"},
 *    "nonconformity", "terms": {"distance", "disagreement", "energy"},
 *    "msp", "energy", "explanation",
 *    "layers": [{"index", "name", "cluster", "cluster_class",
 *                "neighbour_class", "agreement", "agrees", "distance",
 *                "dist_percentile", "in_distance"}]}
 * Each is the doubt_result field of the same name, except "score" (doubt),
 * "terms" (distance, disagreement, energy_excess) and a layer's "distance"
 * (dist). "neighbour_class" and "cluster_class" are class names; "cluster"
 * and "cluster_class" are null without an analysis ("cluster_class" also
 * for an empty cluster); a number that is not finite is null. */
struct json_t *doubt_result_json(const struct doubt_result *r, const struct model *m);

/* The JSON of a report: {"model", "n_id", "n_ood", "accuracy", "sources":
 * [{"name", "ood", "n"}], "auroc", "fpr95", "auroc_errors" (each {"doubt",
 * "msp", "energy"}, null when undefined), "levels": {"medium", "high"},
 * "histogram": {"edges": [bins + 1], "id": [bins], "ood": [bins]}} — the
 * doubt of the in- and out-of-distribution images counted in `bins` equal
 * bins over [0, 1] (the last bin includes 1); bins in 1..100. */
struct json_t *doubt_report_json(const struct doubt_report *r, int bins);

#endif
