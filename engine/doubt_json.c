/*
 * doubt_json.c — doubt results and evaluations as JSON (doubt_json.h).
 */
#include "doubt_json.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>

#include "doubt_eval.h"
#include "doubt_score.h"
#include "model.h"

/* A number, or null when it is not finite (an undefined AUROC). */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *doubt_result_json(const struct doubt_result *r, const struct model *m)
{
    json_t *layers = json_array();
    for (int l = 0; layers && l < r->n_layers; l++) {
        const struct doubt_layer_view *v = &r->layers[l];
        json_t *j = json_pack(
            "{s:i, s:s, s:o, s:o, s:s, s:o, s:b, s:o, s:o, s:b}", "index", v->layer, "name",
            v->name, "cluster", v->cluster >= 0 ? json_integer(v->cluster) : json_null(),
            "cluster_class",
            v->cluster_class >= 0 ? json_string(m->classes[v->cluster_class]) : json_null(),
            "neighbour_class", m->classes[v->neighbour_class], "agreement", num(v->agreement),
            "agrees", v->agrees, "distance", num(v->dist), "dist_percentile",
            num(v->dist_percentile), "in_distance", v->in_distance);
        if (!j || json_array_append_new(layers, j) < 0) {
            json_decref(layers);
            return NULL;
        }
    }
    if (!layers)
        return NULL;
    return json_pack("{s:o, s:s, s:o, s:{s:f, s:f}, s:o, s:{s:o, s:o, s:o}, s:o, s:o, s:s, s:o}",
                     "score", num(r->doubt), "level", doubt_level_name(r->level), "credibility",
                     num(r->credibility), "thresholds", "medium", (double)DOUBT_MEDIUM, "high",
                     (double)DOUBT_HIGH, "nonconformity", num(r->nonconformity), "terms",
                     "distance", num(r->distance), "disagreement", num(r->disagreement), "energy",
                     num(r->energy_excess), "msp", num(r->msp), "energy", num(r->energy),
                     "explanation", r->explanation, "layers", layers);
}

static json_t *by_method(const double *v)
{
    json_t *o = json_object();
    for (int k = 0; o && k < DOUBT_N_METHODS; k++)
        json_object_set_new(o, doubt_method_name(k), num(v[k]));
    return o;
}

static json_t *histogram(const float *v, int n, int bins)
{
    long count[100] = {0};
    for (int i = 0; i < n; i++) {
        int b = (int)(v[i] * bins);
        count[b < 0 ? 0 : b >= bins ? bins - 1 : b]++;
    }
    json_t *a = json_array();
    for (int b = 0; a && b < bins; b++)
        json_array_append_new(a, json_integer(count[b]));
    return a;
}

json_t *doubt_report_json(const struct doubt_report *r, int bins)
{
    assert(bins >= 1 && bins <= 100);
    json_t *src = json_array(), *edges = json_array();
    for (int i = 0; src && i < r->n_sources; i++)
        json_array_append_new(src, json_pack("{s:s, s:b, s:i}", "name", r->sources[i].name, "ood",
                                             r->sources[i].ood, "n", r->sources[i].n));
    for (int b = 0; edges && b <= bins; b++)
        json_array_append_new(edges, json_real((double)b / bins));
    return json_pack("{s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:{s:f, s:f}, s:{s:o, s:o, s:o}}",
                     "model", r->model_id, "n_id", r->n_id, "n_ood", r->n_ood, "accuracy",
                     num(r->accuracy), "sources", src, "auroc", by_method(r->auroc), "fpr95",
                     by_method(r->fpr95), "auroc_errors", by_method(r->auroc_errors), "levels",
                     "medium", (double)DOUBT_MEDIUM, "high", (double)DOUBT_HIGH, "histogram",
                     "edges", edges, "id", histogram(r->id_score[DOUBT_METHOD_DOUBT], r->n_id, bins),
                     "ood", histogram(r->ood_score[DOUBT_METHOD_DOUBT], r->n_ood, bins));
}
