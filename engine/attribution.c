/*
 * attribution.c — every explanation method on one prediction (see
 * attribution.h).
 */
#include "attribution.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "explain.h"
#include "gradcam.h"
#include "heatmap.h"
#include "infer.h"
#include "model_grad.h"
#include "occlusion.h"
#include "rng.h"

#define GRADIENT_BUDGET ((size_t)64 << 20)

static const char *const method_names[ATTR_N_METHODS] = {"gradcam", "ig", "occlusion", "lime",
                                                         "random"};

const char *attribution_method_name(enum attribution_method method)
{
    return method >= 0 && method < ATTR_N_METHODS ? method_names[method] : "?";
}

int attribution_parse_methods(const char *list, unsigned *mask, char *err)
{
    *mask = 0;
    const char *s = list;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        if (len == 3 && strncmp(s, "all", 3) == 0) {
            *mask |= (1u << ATTR_N_METHODS) - 1 - (1u << ATTR_RANDOM);
            found = 1;
        }
        for (int k = 0; k < ATTR_N_METHODS && !found; k++)
            if (strlen(method_names[k]) == len && strncmp(s, method_names[k], len) == 0) {
                *mask |= 1u << k;
                found = 1;
            }
        if (!found)
            return strata_fail(err, STRATA_E_ARG,
                               "unknown explanation method '%.*s'; the methods are gradcam, ig, "
                               "occlusion, lime, random, or all",
                               (int)(len > 40 ? 40 : len), s);
        s += len;
        if (*s == ',')
            s++;
    }
    if (!*mask)
        return strata_fail(err, STRATA_E_ARG, "no explanation method given");
    return 0;
}

void attribution_params_default(struct attribution_params *p)
{
    memset(p, 0, sizeof *p);
    p->methods = (1u << ATTR_N_METHODS) - 1 - (1u << ATTR_RANDOM);
    p->label = -1;
    p->ig_steps = 32;
    lime_params_default(&p->lime);
    p->lime.batch_size = 32;
    p->faithfulness = 1;
    p->batch = 32;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

void attribution_result_free(struct attribution_result *r)
{
    image_free(&r->resized);
    free(r->probs);
    for (int k = 0; k < ATTR_N_METHODS; k++)
        free(r->maps[k].map);
    memset(r, 0, sizeof *r);
}

/* Grad-CAM and Integrated Gradients: one graph with gradients for both. */
static int gradient_methods(struct model *m, const struct attribution_params *p,
                            const uint8_t *blurred, struct attribution_result *r, char *err)
{
    struct model_grad mg;
    const double t_setup = now_ms();
    const size_t HW = (size_t)m->input.h * m->input.w;
    float *x = malloc(3 * HW * sizeof *x), *base = malloc(3 * HW * sizeof *base);
    /* As many images per run as Integrated Gradients has points and the
     * batch allows, within GRADIENT_BUDGET bytes of activations and their
     * gradients (tens of MB per image for ResNet-18 at 224×224). Smaller runs
     * also stay in cache: with a 256 MB budget, IG on `felines` took 122 ms,
     * with 64 MB 68 ms; and a server's memory after a few explanations was
     * 450 MB instead of 210–270. */
    int rc = x && base ? model_grad_init(&mg, m, 1, err)
                       : strata_fail(err, STRATA_E_NOMEM, "out of memory for the gradients");
    if (rc == 0) {
        size_t per_image = model_grad_activation_bytes(&mg);
        int batch = p->ig_steps + 1 < p->batch ? p->ig_steps + 1 : p->batch;
        if (per_image > 0 && (size_t)batch > GRADIENT_BUDGET / per_image)
            batch = (int)(GRADIENT_BUDGET / per_image);
        if (batch > 1 && (p->methods & (1u << ATTR_IG))) {
            model_grad_deinit(&mg);
            rc = model_grad_init(&mg, m, batch, err);
        }
    }
    if (rc < 0) {
        if (x && base)
            model_grad_deinit(&mg);
        free(x);
        free(base);
        return rc;
    }
    r->ms_gradient_setup = now_ms() - t_setup;
    model_grad_image(&mg, r->resized.rgb, x);
    struct attribution_map *gc = &r->maps[ATTR_GRADCAM], *ig = &r->maps[ATTR_IG];
    if (p->methods & (1u << ATTR_GRADCAM)) {
        double t0 = now_ms();
        int layer = model_grad_find_layer(&mg, p->layer, err);
        rc = layer;
        if (layer >= 0 && (rc = gradcam_compute(&mg, x, r->label, layer, gc->map, err)) == 0) {
            const struct tview *a = model_grad_value(&mg, layer);
            snprintf(gc->layer, sizeof gc->layer, "%s", mg.g->values[layer].name);
            gc->layer_h = (int)a->dims[2];
            gc->layer_w = (int)a->dims[3];
            gc->done = 1;
            gc->ms = now_ms() - t0;
        }
    }
    if (rc >= 0 && (p->methods & (1u << ATTR_IG))) {
        double t0 = now_ms();
        if (p->ig_blurred)
            model_grad_image(&mg, blurred, base);
        else {
            uint8_t *black = calloc(3 * HW, 1);
            if (!black)
                rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the baseline");
            else
                model_grad_image(&mg, black, base);
            free(black);
        }
        if (rc >= 0 && (rc = ig_compute(&mg, x, base, r->label, p->ig_steps, ig->map, &ig->ig, err)) == 0) {
            ig->steps = p->ig_steps;
            ig->done = 1;
            ig->ms = now_ms() - t0;
        }
    }
    model_grad_deinit(&mg);
    free(x);
    free(base);
    return rc < 0 ? rc : 0;
}

static int lime_map(struct model *m, const struct image *img, const struct attribution_params *p,
                    struct attribution_result *r, char *err)
{
    double t0 = now_ms();
    struct lime_result res = {0};
    struct image resized = {0};
    int rc = explain_image(m, img, &p->lime, &r->label, 1, &res, &resized, err);
    if (rc < 0)
        return rc;
    image_free(&resized);
    struct attribution_map *am = &r->maps[ATTR_LIME];
    const struct lime_class *lc = &res.classes[0];
    double *weight = calloc((size_t)res.n_segments, sizeof *weight);
    if (!weight) {
        lime_result_free(&res);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the LIME map");
    }
    for (int i = 0; i < lc->n_features; i++)
        weight[lc->features[i].segment] = lc->features[i].weight;
    for (int q = 0; q < res.w * res.h; q++)
        am->map[q] = (float)weight[res.segments[q]];
    am->lime_score = lc->score;
    am->lime_segments = res.n_segments;
    am->done = 1;
    free(weight);
    lime_result_free(&res);
    am->ms = now_ms() - t0;
    return 0;
}

int attribution_explain(struct model *m, const struct image *img,
                        const struct attribution_params *p, struct attribution_result *r,
                        char *err)
{
    memset(r, 0, sizeof *r);
    r->best = -1;
    if (p->ig_steps < 1 || p->ig_steps > 1024 || p->batch < 1 || p->occlusion_patch < 0 ||
        p->occlusion_stride < 0 || !p->methods)
        return strata_fail(err, STRATA_E_ARG,
                           "explanation: steps must be 1 to 1024, the batch and patch positive");
    if (p->label >= m->n_classes)
        return strata_fail(err, STRATA_E_NOTFOUND, "class %d is not one of the %d classes of %s",
                           p->label, m->n_classes, m->id);
    const double t0 = now_ms();
    const int H = m->input.h, W = m->input.w, K = m->n_classes;
    struct model_workspace ws = {0};
    struct image blurred = {0};
    int rc = image_resize(img, W, H, &r->resized, err);
    if (rc == 0)
        rc = image_blur(&r->resized, faith_blur_sigma(H > W ? H : W), &blurred, err);
    if (rc == 0)
        rc = model_workspace_init(&ws, m, p->batch, err);
    if (rc == 0 && !(r->probs = malloc((size_t)K * sizeof *r->probs)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int k = 0; rc == 0 && k < ATTR_N_METHODS; k++)
        if ((p->methods & (1u << k)) && !(r->maps[k].map = calloc((size_t)H * W, sizeof(float))))
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the maps");
    if (rc == 0)
        rc = infer_images(m, &ws, r->resized.rgb, 1, r->probs, NULL, NULL);
    if (rc < 0)
        goto done;
    r->predicted = infer_argmax(r->probs, K);
    r->label = p->label >= 0 ? p->label : r->predicted;

    if (p->methods & ((1u << ATTR_GRADCAM) | (1u << ATTR_IG)))
        if ((rc = gradient_methods(m, p, blurred.rgb, r, err)) < 0)
            goto done;
    if (p->methods & (1u << ATTR_OCCLUSION)) {
        struct attribution_map *am = &r->maps[ATTR_OCCLUSION];
        double t = now_ms();
        int side = H < W ? H : W;
        am->patch = p->occlusion_patch ? p->occlusion_patch : occlusion_default_patch(side);
        am->stride = p->occlusion_stride ? p->occlusion_stride : (am->patch + 1) / 2;
        if ((rc = occlusion_compute(m, &ws, r->resized.rgb, r->label, am->patch, am->stride,
                                    am->map, err)) < 0)
            goto done;
        am->done = 1;
        am->ms = now_ms() - t;
    }
    if (p->methods & (1u << ATTR_LIME))
        if ((rc = lime_map(m, img, p, r, err)) < 0)
            goto done;
    if (p->methods & (1u << ATTR_RANDOM)) {
        /* noise on a coarse grid, upsampled: blobs about as large as a
         * Grad-CAM map's, so that it is compared at the same granularity
         * (scattered pixels would make any map's deletion curve fall) */
        struct rng g;
        rng_seed(&g, p->seed);
        int gh = H / 8 > 2 ? H / 8 : 2, gw = W / 8 > 2 ? W / 8 : 2;
        float *grid = malloc((size_t)gh * gw * sizeof *grid);
        if (!grid) {
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the random map");
            goto done;
        }
        for (int q = 0; q < gh * gw; q++)
            grid[q] = (float)rng_uniform(&g);
        gradcam_upsample(grid, gh, gw, r->maps[ATTR_RANDOM].map, H, W);
        free(grid);
        r->maps[ATTR_RANDOM].done = 1;
    }
    double best = -INFINITY;
    for (int k = 0; k < ATTR_N_METHODS; k++) {
        struct attribution_map *am = &r->maps[k];
        if (!am->done)
            continue;
        am->scale = heatmap_scale(am->map, H * W);
        if (!p->faithfulness)
            continue;
        double t = now_ms();
        if ((rc = faith_compute(m, &ws, r->resized.rgb, blurred.rgb, r->label, am->map, &am->faith,
                                err)) < 0)
            goto done;
        am->ms_faith = now_ms() - t;
        double score = am->faith.insertion_auc - am->faith.deletion_auc;
        if (k != ATTR_RANDOM && score > best) {
            best = score;
            r->best = k;
        }
    }
    r->ms_total = now_ms() - t0;
done:
    model_workspace_free(&ws);
    image_free(&blurred);
    if (rc < 0)
        attribution_result_free(r);
    return rc;
}
