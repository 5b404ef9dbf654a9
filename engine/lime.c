/*
 * lime.c — LIME for images: superpixels, perturbed samples, batched
 * classification, weighted ridge surrogates, and the overlay renderings
 * (see lime.h for the method and the reference's choices it follows).
 *
 * Everything is allocated once per call before the sample loop: the
 * segments' horizontal runs, the fully hidden image, the masks, one batch
 * buffer the callback reads, and the probability matrix. A perturbed image is
 * assembled run by run from the photo or the hidden image, so each sample
 * costs one pass of sequential copies over the image.
 *
 * A classifier that also offers a mask classifier (lime_classifier) is asked
 * first, with all the masks and what they stand for (the segments and their
 * hiding colours): one that knows its model's structure can answer much
 * faster than by classifying rendered images (lime_local.h). Only when it
 * declines is the batch buffer allocated and filled.
 */
#include "lime.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heatmap.h"
#include "rng.h"
#include "slic.h"

#define LIME_MIN_SIDE 8
/* The batch buffer is batch_size whole images; past this, ask for a smaller
 * batch or image rather than let the allocation take the machine's memory. */
#define LIME_MAX_BATCH_BYTES ((size_t)512 << 20)

/* A horizontal stretch of pixels of one segment. */
struct run {
    int start; /* first pixel, y*w + x */
    int len;
    int seg;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void lime_params_default(struct lime_params *p)
{
    assert(p);
    *p = (struct lime_params){
        .num_samples = 1000,
        .n_segments = 50,
        .compactness = 10.0f,
        .seed = 0,
        .batch_size = 100,
        .hide_mode = LIME_HIDE_MEAN,
        .hide_rgb = {0, 0, 0},
        .kernel_width = 0.25f,
        .num_features = 100000,
        .selection = FEATURE_SELECTION_AUTO,
        .top_labels = 1,
    };
}

void lime_result_free(struct lime_result *res)
{
    if (!res)
        return;
    free(res->segments);
    free(res->probs);
    if (res->classes)
        for (int i = 0; i < res->n_explained; i++)
            free(res->classes[i].features);
    free(res->classes);
    memset(res, 0, sizeof *res);
}

const struct lime_class *lime_result_class(const struct lime_result *res, int label)
{
    assert(res);
    for (int i = 0; i < res->n_explained; i++)
        if (res->classes[i].label == label)
            return &res->classes[i];
    return NULL;
}

static int check_params(int w, int h, const struct lime_params *p, int n_classes,
                        const int *labels, int n_labels, char *err)
{
    if (w < LIME_MIN_SIDE || h < LIME_MIN_SIDE)
        return strata_fail(err, STRATA_E_ARG,
                           "LIME: the image is %dx%d; it must be at least %dx%d pixels", w, h,
                           LIME_MIN_SIDE, LIME_MIN_SIDE);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (long)w * h > IMAGE_MAX_PIXELS)
        return strata_fail(err, STRATA_E_LIMIT,
                           "LIME: the image is %dx%d, over the %d-pixel side or %ld-pixel limit; "
                           "resize it to the model's input first",
                           w, h, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
    if (p->batch_size > 0 && (size_t)p->batch_size * w * h * 3 > LIME_MAX_BATCH_BYTES)
        return strata_fail(err, STRATA_E_LIMIT,
                           "LIME: a batch of %d %dx%d images needs %zu MiB, over the %zu MiB "
                           "limit; lower batch_size or resize the image",
                           p->batch_size, w, h, ((size_t)p->batch_size * w * h * 3) >> 20,
                           LIME_MAX_BATCH_BYTES >> 20);
    if (p->n_segments < 2)
        return strata_fail(err, STRATA_E_ARG,
                           "LIME: n_segments is %d; an explanation needs at least 2 superpixels",
                           p->n_segments);
    if (p->num_samples < 2)
        return strata_fail(err, STRATA_E_ARG,
                           "LIME: num_samples is %d; at least 2 samples are needed (1000 is usual)",
                           p->num_samples);
    if (p->batch_size < 1)
        return strata_fail(err, STRATA_E_ARG, "LIME: batch_size is %d; it must be >= 1",
                           p->batch_size);
    if (!(p->kernel_width > 0) || !isfinite(p->kernel_width))
        return strata_fail(err, STRATA_E_ARG, "LIME: kernel_width is %g; it must be > 0",
                           (double)p->kernel_width);
    if (p->num_features < 1)
        return strata_fail(err, STRATA_E_ARG, "LIME: num_features is %d; it must be >= 1",
                           p->num_features);
    if ((int)p->selection < FEATURE_SELECTION_AUTO || p->selection > FEATURE_SELECTION_NONE)
        return strata_fail(err, STRATA_E_ARG, "LIME: unknown feature selection %d",
                           (int)p->selection);
    if (p->hide_mode != LIME_HIDE_MEAN && p->hide_mode != LIME_HIDE_COLOR)
        return strata_fail(err, STRATA_E_ARG, "LIME: unknown hide mode %d", (int)p->hide_mode);
    if (n_classes < 1)
        return strata_fail(err, STRATA_E_ARG, "LIME: the model has %d classes", n_classes);
    if (labels && n_labels > 0) {
        for (int i = 0; i < n_labels; i++)
            if (labels[i] < 0 || labels[i] >= n_classes)
                return strata_fail(err, STRATA_E_ARG,
                                   "LIME: label %d is not a class of this model (0..%d)",
                                   labels[i], n_classes - 1);
    } else if (p->top_labels < 1 || p->top_labels > n_classes) {
        return strata_fail(err, STRATA_E_ARG, "LIME: top_labels is %d; the model has %d classes",
                           p->top_labels, n_classes);
    }
    return STRATA_OK;
}

double lime_kernel_weight(const uint8_t *mask, int n, double kernel_width)
{
    assert(mask && n > 0 && kernel_width > 0);
    /* The cosine similarity of a mask with k ones and the all-ones vector is
     * k/(sqrt(k)·sqrt(n)) = sqrt(k/n). */
    int k = 0;
    for (int s = 0; s < n; s++)
        k += mask[s] != 0;
    double d = k > 0 ? 1.0 - sqrt((double)k / n) : 1.0;
    if (d < 0)
        d = 0;
    return sqrt(exp(-(d * d) / (kernel_width * kernel_width)));
}

/* Classes by probability, highest first, ties to the lower index. */
static void top_classes(const float *prob, int n_classes, int *order, int k)
{
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int c = 0; c < n_classes; c++) {
            int taken = 0;
            for (int j = 0; j < i; j++)
                taken |= order[j] == c;
            if (!taken && (best < 0 || prob[c] > prob[best]))
                best = c;
        }
        order[i] = best;
    }
}

/* Stable sort of (segment, weight) by |weight| descending, as Python's sorted
 * with key=abs, reverse=True keeps equal keys in input order. */
static void sort_features(struct lime_feature *f, int n)
{
    for (int i = 1; i < n; i++) {
        struct lime_feature cur = f[i];
        int j = i - 1;
        while (j >= 0 && fabs(f[j].weight) < fabs(cur.weight)) {
            f[j + 1] = f[j];
            j--;
        }
        f[j + 1] = cur;
    }
}

/* Has the caller asked to stop? (lime_params.cancel) */
static int cancelled(const struct lime_params *p)
{
    return p->cancel && atomic_load_explicit(p->cancel, memory_order_relaxed);
}

/* Fails with STRATA_E_FORMAT at the first non-finite value among the
 * probabilities of samples [first, first + n). */
static int check_finite(const float *probs, int first, int n, int n_classes, char *err)
{
    for (size_t q = (size_t)first * n_classes; q < (size_t)(first + n) * n_classes; q++)
        if (!isfinite(probs[q]))
            return strata_fail(err, STRATA_E_FORMAT,
                               "LIME: the classifier returned a non-finite probability for "
                               "sample %d, class %d",
                               (int)(q / n_classes), (int)(q % n_classes));
    return STRATA_OK;
}

int lime_explain(const uint8_t *rgb, int w, int h, const struct lime_params *p,
                 lime_classify_fn classify, void *user, int n_classes, const int *labels,
                 int n_labels, struct lime_result *res, char *err)
{
    assert(classify);
    const struct lime_classifier clf = {.classify = classify, .user = user};
    return lime_explain_with(rgb, w, h, p, &clf, n_classes, labels, n_labels, res, err);
}

int lime_explain_with(const uint8_t *rgb, int w, int h, const struct lime_params *p,
                      const struct lime_classifier *clf, int n_classes, const int *labels,
                      int n_labels, struct lime_result *res, char *err)
{
    assert(rgb && p && clf && clf->classify && res);
    memset(res, 0, sizeof *res);
    int rc = check_params(w, h, p, n_classes, labels, n_labels, err);
    if (rc)
        return rc;
    if (!labels)
        n_labels = 0;

    const double t_start = now_ms();
    const int npix = w * h, ns = p->num_samples, bs = p->batch_size < ns ? p->batch_size : ns;
    const size_t img_bytes = (size_t)npix * 3;
    int nseg = 0;

    int *sel = NULL;
    struct run *runs = NULL;
    uint64_t *sums = NULL;
    uint8_t *fudge = NULL, *hidden = NULL, *masks = NULL, *batch = NULL;
    float *probs = NULL;
    double *x = NULL, *wts = NULL, *y = NULL, *coef = NULL;

    res->segments = malloc((size_t)npix * sizeof(int));
    if (!res->segments) {
        rc = strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory for a %dx%d image", w, h);
        goto fail;
    }
    if (p->n_segments > npix / 4) {
        rc = strata_fail(err, STRATA_E_ARG,
                         "LIME: n_segments is %d; a %dx%d image takes at most %d", p->n_segments,
                         w, h, npix / 4);
        goto fail;
    }
    rc = slic_segment(rgb, w, h, p->n_segments, p->compactness, res->segments, &nseg, err);
    if (rc)
        goto fail;
    if (nseg < 2) {
        rc = strata_fail(err, STRATA_E_UNSUPPORTED,
                         "LIME: the image forms a single superpixel (is it blank?); there is "
                         "nothing to explain");
        goto fail;
    }
    if (cancelled(p)) {
        rc = strata_fail(err, STRATA_E_INTERRUPTED, "LIME: cancelled after the segmentation");
        goto fail;
    }
    res->w = w;
    res->h = h;
    res->n_segments = nseg;
    res->n_classes = n_classes;
    res->num_samples = ns;
    const double t_seg = now_ms();
    res->ms_segment = t_seg - t_start;

    runs = malloc((size_t)npix * sizeof(struct run));
    sums = calloc((size_t)nseg * 4, sizeof(uint64_t));
    fudge = malloc((size_t)nseg * 3);
    hidden = malloc(img_bytes);
    masks = malloc((size_t)ns * nseg);
    probs = malloc((size_t)ns * n_classes * sizeof(float));
    x = malloc((size_t)ns * nseg * sizeof(double));
    wts = malloc((size_t)ns * sizeof(double));
    y = malloc((size_t)ns * sizeof(double));
    coef = malloc((size_t)nseg * sizeof(double));
    sel = malloc((size_t)nseg * sizeof(int));
    res->probs = malloc((size_t)n_classes * sizeof(float));
    if (!runs || !sums || !fudge || !hidden || !masks || !probs || !x || !wts || !y ||
        !coef || !sel || !res->probs) {
        rc = strata_fail(err, STRATA_E_NOMEM,
                         "LIME: out of memory for %d samples of a %dx%d image (batch %d)", ns, w,
                         h, bs);
        goto fail;
    }

    /* The image as horizontal runs of one segment, in raster order, and the
     * fully hidden image (every segment in its hiding colour). A sample is
     * then the photo with its hidden segments' runs copied over from the
     * hidden image: one large memcpy and a few hundred short ones, instead of
     * a write per hidden pixel. */
    int nruns = 0;
    for (int q = 0; q < npix; q++) {
        int sg = res->segments[q];
        uint64_t *sm = sums + 4 * (size_t)sg;
        sm[0] += rgb[3 * (size_t)q];
        sm[1] += rgb[3 * (size_t)q + 1];
        sm[2] += rgb[3 * (size_t)q + 2];
        sm[3]++;
        if (q % w == 0 || res->segments[q - 1] != sg)
            runs[nruns++] = (struct run){q, 0, sg};
        runs[nruns - 1].len++;
    }
    for (int sg = 0; sg < nseg; sg++) {
        const uint64_t *sm = sums + 4 * (size_t)sg;
        for (int c = 0; c < 3; c++)
            fudge[3 * sg + c] = p->hide_mode == LIME_HIDE_COLOR
                                    ? p->hide_rgb[c]
                                    : (uint8_t)((sm[c] + sm[3] / 2) / sm[3]); /* rounded mean */
    }
    for (int q = 0; q < npix; q++)
        memcpy(hidden + 3 * (size_t)q, fudge + 3 * res->segments[q], 3);

    /* Masks: uniform bits, row 0 then set to all ones (the photo itself). */
    struct rng r;
    rng_seed(&r, p->seed);
    {
        uint64_t bits = 0;
        int left = 0;
        for (size_t q = 0; q < (size_t)ns * nseg; q++) {
            if (left == 0) {
                bits = rng_next(&r);
                left = 64;
            }
            masks[q] = (uint8_t)(bits & 1);
            bits >>= 1;
            left--;
        }
        memset(masks, 1, (size_t)nseg);
    }
    /* Kernel weights, and the masks as the regression's design matrix. */
    for (int i = 0; i < ns; i++) {
        const uint8_t *m = masks + (size_t)i * nseg;
        double *xi = x + (size_t)i * nseg;
        for (int s = 0; s < nseg; s++)
            xi[s] = m[s];
        wts[i] = lime_kernel_weight(m, nseg, p->kernel_width);
    }

    /* The mask classifier first: it sees every mask at once (so that it can
     * plan its work for this image) and renders nothing here. */
    double ms_classify = 0;
    if (clf->classify_masks) {
        const struct lime_perturbation pert = {.rgb = rgb, .w = w, .h = h,
                                               .segments = res->segments,
                                               .n_segments = nseg, .hide_rgb = fudge};
        char cerr[STRATA_ERR_LEN] = "";
        double tc = now_ms();
        int crc = clf->classify_masks(clf->user, &pert, masks, ns, probs, cerr);
        ms_classify += now_ms() - tc;
        if (crc == STRATA_OK) {
            rc = check_finite(probs, 0, ns, n_classes, err);
            if (rc)
                goto fail;
            res->mask_path = 1;
        } else if (crc != LIME_DECLINED) {
            rc = strata_fail(err, crc < 0 ? crc : STRATA_E_IO,
                             "LIME: the mask classifier failed on %d samples: %s", ns,
                             cerr[0] ? cerr : "(no message)");
            goto fail;
        }
    }
    if (!res->mask_path) {
        batch = malloc((size_t)bs * img_bytes);
        if (!batch) {
            rc = strata_fail(err, STRATA_E_NOMEM,
                             "LIME: out of memory for a batch of %d %dx%d images", bs, w, h);
            goto fail;
        }
    }
    /* Otherwise perturbed images, batch by batch, into the one buffer. */
    for (int b0 = 0; b0 < ns && !res->mask_path; b0 += bs) {
        if (cancelled(p)) {
            rc = strata_fail(err, STRATA_E_INTERRUPTED,
                             "LIME: cancelled after %d of %d samples", b0, ns);
            goto fail;
        }
        int nb = ns - b0 < bs ? ns - b0 : bs;
        for (int i = 0; i < nb; i++) {
            uint8_t *dst = batch + (size_t)i * img_bytes;
            const uint8_t *m = masks + (size_t)(b0 + i) * nseg;
            memcpy(dst, rgb, img_bytes);
            for (int k = 0; k < nruns; k++) {
                if (m[runs[k].seg])
                    continue;
                size_t off = 3 * (size_t)runs[k].start;
                memcpy(dst + off, hidden + off, 3 * (size_t)runs[k].len);
            }
        }
        char cerr[STRATA_ERR_LEN] = "";
        double tc = now_ms();
        int crc = clf->classify(clf->user, batch, nb, probs + (size_t)b0 * n_classes, cerr);
        ms_classify += now_ms() - tc;
        if (crc != 0) {
            rc = strata_fail(err, crc < 0 ? crc : STRATA_E_IO,
                             "LIME: the classifier failed on samples %d..%d: %s", b0,
                             b0 + nb - 1, cerr[0] ? cerr : "(no message)");
            goto fail;
        }
        rc = check_finite(probs, b0, nb, n_classes, err);
        if (rc)
            goto fail;
    }
    if (cancelled(p)) {
        rc = strata_fail(err, STRATA_E_INTERRUPTED, "LIME: cancelled after the samples");
        goto fail;
    }
    memcpy(res->probs, probs, (size_t)n_classes * sizeof(float));
    const double t_samples = now_ms();
    res->ms_classify = ms_classify;
    res->ms_perturb = t_samples - t_seg - ms_classify;

    /* The classes to explain. */
    int nexp = n_labels > 0 ? n_labels : p->top_labels;
    res->classes = calloc((size_t)nexp, sizeof(struct lime_class));
    if (!res->classes) {
        rc = strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory");
        goto fail;
    }
    res->n_explained = nexp;
    if (n_labels > 0) {
        for (int i = 0; i < nexp; i++)
            res->classes[i].label = labels[i];
    } else {
        int *order = malloc((size_t)nexp * sizeof(int));
        if (!order) {
            rc = strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory");
            goto fail;
        }
        top_classes(res->probs, n_classes, order, nexp);
        for (int i = 0; i < nexp; i++)
            res->classes[i].label = order[i];
        free(order);
    }

    /* Surrogates. Highest-weights selection of at least as many features as
     * there are segments keeps all of them whatever the fit says, so that fit
     * is skipped. */
    enum feature_selection method = p->selection;
    if (method == FEATURE_SELECTION_AUTO)
        method = p->num_features <= 6 ? FEATURE_SELECTION_FORWARD : FEATURE_SELECTION_HIGHEST;
    if (method == FEATURE_SELECTION_HIGHEST && p->num_features >= nseg)
        method = FEATURE_SELECTION_NONE;
    for (int e = 0; e < nexp; e++) {
        struct lime_class *cl = &res->classes[e];
        for (int i = 0; i < ns; i++)
            y[i] = probs[(size_t)i * n_classes + cl->label];
        int k = 0;
        rc = ridge_select_features(x, ns, nseg, y, wts, method, p->num_features, sel, &k, err);
        if (rc == STRATA_OK)
            rc = ridge_fit(x, ns, nseg, sel, k, y, wts, 1.0, coef, &cl->intercept, err);
        if (rc)
            goto fail;
        cl->score = ridge_score(x, ns, nseg, sel, k, y, wts, coef, cl->intercept);
        double lp = cl->intercept; /* row 0 is all ones */
        for (int j = 0; j < k; j++)
            lp += coef[j];
        cl->local_pred = lp;
        cl->prob = res->probs[cl->label];
        cl->features = malloc((size_t)k * sizeof(struct lime_feature));
        if (!cl->features) {
            rc = strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory");
            goto fail;
        }
        cl->n_features = k;
        for (int j = 0; j < k; j++)
            cl->features[j] = (struct lime_feature){sel[j], coef[j]};
        sort_features(cl->features, k);
    }
    const double t_end = now_ms();
    res->ms_regression = t_end - t_samples;
    res->ms_total = t_end - t_start;
    rc = STRATA_OK;
    goto done;

fail:
    lime_result_free(res);
done:
    free(runs);
    free(sums);
    free(fudge);
    free(hidden);
    free(masks);
    free(batch);
    free(probs);
    free(x);
    free(wts);
    free(y);
    free(coef);
    free(sel);
    return rc;
}

/* ------------------------------------------------------------ rendering */

void lime_overlay_opts_default(struct lime_overlay_opts *o)
{
    assert(o);
    *o = (struct lime_overlay_opts){
        .positive_only = 1,
        .negative_only = 0,
        .hide_rest = 0,
        .num_features = 5,
        .min_weight = 0.0,
    };
}

int lime_render_overlay(const struct lime_result *res, const uint8_t *rgb, int label,
                        const struct lime_overlay_opts *o, struct image *out, int8_t *mask,
                        char *err)
{
    assert(res && rgb && o && out);
    out->w = out->h = 0;
    out->rgb = NULL;
    const struct lime_class *cl = lime_result_class(res, label);
    if (!cl)
        return strata_fail(err, STRATA_E_NOTFOUND, "LIME: class %d was not explained", label);
    if (o->positive_only && o->negative_only)
        return strata_fail(err, STRATA_E_ARG,
                           "LIME: positive_only and negative_only cannot both be set");
    const int w = res->w, h = res->h, npix = w * h, nseg = res->n_segments;
    int8_t *segval = calloc((size_t)nseg, 1);
    int8_t *m = mask ? mask : malloc((size_t)npix);
    if (!segval || !m) {
        free(segval);
        if (!mask)
            free(m);
        return strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory for the overlay");
    }
    int rc = image_alloc(out, w, h, err);
    if (rc)
        goto done;

    const int tint = !o->positive_only && !o->negative_only;
    if (!tint) {
        /* Filter, then keep the first num_features of what passed. */
        int taken = 0;
        for (int j = 0; j < cl->n_features && taken < o->num_features; j++) {
            double wt = cl->features[j].weight;
            int ok = o->positive_only ? wt > 0 && wt > o->min_weight
                                      : wt < 0 && fabs(wt) > o->min_weight;
            if (ok) {
                segval[cl->features[j].segment] = 1;
                taken++;
            }
        }
    } else {
        /* The first num_features, skipping (but counting) the weak ones. */
        for (int j = 0; j < cl->n_features && j < o->num_features; j++) {
            double wt = cl->features[j].weight;
            if (fabs(wt) < o->min_weight)
                continue;
            segval[cl->features[j].segment] = wt < 0 ? -1 : 1;
        }
    }
    uint8_t vmax = 0;
    if (tint)
        for (size_t q = 0; q < (size_t)npix * 3; q++)
            vmax = rgb[q] > vmax ? rgb[q] : vmax;
    for (int q = 0; q < npix; q++) {
        int8_t v = segval[res->segments[q]];
        m[q] = v;
        uint8_t *dst = out->rgb + 3 * (size_t)q;
        if (o->hide_rest && v == 0) {
            dst[0] = dst[1] = dst[2] = 0;
            continue;
        }
        memcpy(dst, rgb + 3 * (size_t)q, 3);
        if (tint && v != 0)
            dst[v < 0 ? 0 : 1] = vmax;
    }
    /* Outer boundaries: a pixel with a 4-neighbour of another mask value,
     * when it is outside every region or that neighbour is another region. */
    for (int yy = 0; yy < h; yy++) {
        for (int xx = 0; xx < w; xx++) {
            int q = yy * w + xx;
            int8_t v = m[q];
            int nb[4] = {xx > 0 ? q - 1 : -1, xx < w - 1 ? q + 1 : -1, yy > 0 ? q - w : -1,
                         yy < h - 1 ? q + w : -1};
            int edge = 0;
            for (int k = 0; k < 4 && !edge; k++)
                edge = nb[k] >= 0 && m[nb[k]] != v && (v == 0 || m[nb[k]] != 0);
            if (edge) {
                uint8_t *dst = out->rgb + 3 * (size_t)q;
                dst[0] = 255;
                dst[1] = 255;
                dst[2] = 0;
            }
        }
    }
done:
    free(segval);
    if (!mask)
        free(m);
    return rc;
}

int lime_render_heatmap(const struct lime_result *res, const uint8_t *rgb, int label,
                        struct image *out, char *err)
{
    assert(res && rgb && out);
    out->w = out->h = 0;
    out->rgb = NULL;
    const struct lime_class *cl = lime_result_class(res, label);
    if (!cl)
        return strata_fail(err, STRATA_E_NOTFOUND, "LIME: class %d was not explained", label);
    const int w = res->w, h = res->h, nseg = res->n_segments;
    float *seg_rgba = calloc((size_t)nseg * 4, sizeof(float));
    if (!seg_rgba)
        return strata_fail(err, STRATA_E_NOMEM, "LIME: out of memory for the heat map");
    int rc = image_alloc(out, w, h, err);
    if (rc) {
        free(seg_rgba);
        return rc;
    }
    double wmax = 0;
    for (int j = 0; j < cl->n_features; j++)
        wmax = fmax(wmax, fabs(cl->features[j].weight));
    /* Colour and opacity per segment (heatmap.h's scale): segments outside
     * the explanation count as weight 0. */
    for (int s = 0; s < nseg; s++)
        heatmap_colour(0.0f, seg_rgba + 4 * (size_t)s, seg_rgba + 4 * (size_t)s + 3);
    for (int j = 0; j < cl->n_features; j++) {
        float *c = seg_rgba + 4 * (size_t)cl->features[j].segment;
        heatmap_colour(wmax > 0 ? (float)(cl->features[j].weight / wmax) : 0.0f, c, c + 3);
    }
    for (int yy = 0; yy < h; yy++) {
        for (int xx = 0; xx < w; xx++) {
            int q = yy * w + xx, s = res->segments[q];
            const uint8_t *src = rgb + 3 * (size_t)q;
            uint8_t *dst = out->rgb + 3 * (size_t)q;
            int right = xx < w - 1 && res->segments[q + 1] != s;
            int down = yy < h - 1 && res->segments[q + w] != s;
            if (right || down) {
                dst[0] = dst[1] = dst[2] = 48;
                continue;
            }
            const float *c = seg_rgba + 4 * (size_t)s;
            heatmap_blend(src, c, c[3], dst);
        }
    }
    free(seg_rgba);
    return STRATA_OK;
}
