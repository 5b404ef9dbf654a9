/*
 * lime.h — LIME explanations of an image classifier's prediction (Ribeiro et
 * al., "Why Should I Trust You?", KDD 2016), matching the reference library's
 * lime_image.LimeImageExplainer.explain_instance and
 * ImageExplanation.get_image_and_mask.
 *
 * The pipeline, with the reference's choices:
 *   1. segment the image into superpixels (SLIC here; the reference defaults to
 *      quickshift, whose segment count varies — 50 SLIC segments is a similar
 *      granularity on a 150×150 image);
 *   2. draw num_samples binary masks over the segments: row 0 all ones (the
 *      image itself), the others uniform 0/1 per segment;
 *   3. render each mask as an image — kept segments from the photo, hidden ones
 *      painted with the segment's mean colour (the reference's hide_color=None)
 *      or a fixed colour — in batches into one buffer, and classify each batch
 *      (or hand all the masks to a mask classifier, which computes the same
 *      probabilities without rendering: lime_explain_with);
 *   4. weight each sample by the kernel sqrt(exp(−d²/width²)), d the cosine
 *      distance between its mask and the all-ones mask (1 − sqrt(k/n) for a
 *      mask of k ones among n segments, 1 for the empty mask);
 *   5. per explained class: select features (auto: forward selection when
 *      num_features <= 6, else highest weights), fit Ridge(alpha=1) with those
 *      weights on the selected mask columns, rank segments by |coefficient|.
 *
 * The model is reached through a callback, so LIME knows nothing of CNNs. The
 * images it receives have the explained image's size; give lime_explain an
 * image already at the model's input size so that no per-sample resize is
 * needed.
 */
#ifndef STRATA_LIME_H
#define STRATA_LIME_H

#include <stdatomic.h>
#include <stdint.h>

#include "image.h"
#include "ridge.h"
#include "status.h"

/* Classifies n RGB8 images (n×h×w×3, the explained image's size), writing
 * n×n_classes probabilities into probs. Returns 0, or a negative enum
 * strata_status with a message in err (STRATA_ERR_LEN bytes). */
typedef int (*lime_classify_fn)(void *user, const uint8_t *rgb_batch, int n, float *probs,
                                char *err);

/* What every perturbed sample is made of, for a classifier that works from
 * the masks rather than from rendered images. Sample i is the image whose
 * pixel q is rgb[q] when masks[i·n_segments + segments[q]] is 1 and
 * hide_rgb[segments[q]] when it is 0 — exactly the image the rendering path
 * would hand to a lime_classify_fn. Everything is borrowed for one call. */
struct lime_perturbation {
    const uint8_t *rgb;      /* w×h×3, the explained image */
    int w, h;
    const int *segments;     /* w*h segment ids, 0..n_segments-1 */
    int n_segments;
    const uint8_t *hide_rgb; /* n_segments×3: the colour of each segment when hidden */
};

/* A lime_classify_masks_fn returns this (positive, so never a status) when it
 * will not classify these samples — it does not apply to this model or image,
 * or would not be faster; LIME then renders the images and uses the image
 * classifier instead. */
#define LIME_DECLINED 1

/* Classifies the n samples described by pert and masks (n × n_segments
 * bytes, each 0 or 1), writing n×n_classes probabilities into probs, which
 * must equal (up to float rounding) what the image classifier gives on the
 * rendered samples. Returns 0, LIME_DECLINED (probs untouched), or a negative
 * enum strata_status with a message in err (STRATA_ERR_LEN bytes). */
typedef int (*lime_classify_masks_fn)(void *user, const struct lime_perturbation *pert,
                                      const uint8_t *masks, int n, float *probs, char *err);

/* A model as LIME reaches it: the image classifier, and optionally a mask
 * classifier tried first. */
struct lime_classifier {
    lime_classify_fn classify;             /* required */
    lime_classify_masks_fn classify_masks; /* NULL: always render images */
    void *user;                            /* passed to both */
};

enum lime_hide {
    LIME_HIDE_MEAN,  /* a hidden superpixel takes its own mean colour */
    LIME_HIDE_COLOR, /* a hidden superpixel takes hide_rgb */
};

struct lime_params {
    int num_samples;   /* perturbed samples, including the unperturbed one (1000) */
    int n_segments;    /* SLIC superpixels asked for (50) */
    float compactness; /* SLIC compactness m (10) */
    uint64_t seed;     /* masks come from rng_seed(seed) (0) */
    int batch_size;    /* images per classify call (100) */
    enum lime_hide hide_mode; /* LIME_HIDE_MEAN */
    uint8_t hide_rgb[3];      /* colour for LIME_HIDE_COLOR ({0, 0, 0}) */
    float kernel_width;       /* 0.25 */
    int num_features;         /* features per explanation; 100000 means all */
    enum feature_selection selection; /* FEATURE_SELECTION_AUTO */
    int top_labels;           /* classes explained when none are given (1) */
    const atomic_int *cancel; /* NULL (default), or a flag that, once non-zero,
                                 stops the call between classify batches */
};

/* One segment's weight in an explanation. */
struct lime_feature {
    int segment;
    double weight;
};

/* The explanation of one class. */
struct lime_class {
    int label;
    double intercept;
    double score;       /* weighted R² of the surrogate on the samples */
    double local_pred;  /* the surrogate's prediction for the all-on mask */
    float prob;         /* the model's probability of label on the image */
    int n_features;
    struct lime_feature *features; /* ranked by |weight| descending */
};

struct lime_result {
    int w, h;
    int n_segments;
    int *segments; /* w*h segment ids, 0..n_segments-1, each 4-connected */
    int n_classes;
    float *probs;  /* n_classes: the model's output on the unperturbed image */
    int num_samples;
    int n_explained;
    struct lime_class *classes; /* in the order asked (top labels: most probable first) */
    int mask_path;  /* 1 when the mask classifier classified the samples, 0 when
                       they were rendered as images */
    /* Wall time per stage, milliseconds. */
    double ms_segment;    /* SLIC */
    double ms_perturb;    /* masks, weights and perturbed images */
    double ms_classify;   /* inside the classify callbacks (a declining
                             mask classifier's time included) */
    double ms_regression; /* feature selection and ridge, all classes */
    double ms_total;
};

/* The defaults listed beside each field of struct lime_params. */
void lime_params_default(struct lime_params *p);

/* Explains the classifier's prediction on the w×h RGB8 image rgb. The model
 * has n_classes outputs. labels[0..n_labels-1] are the classes to explain;
 * with labels NULL (or n_labels 0) the p->top_labels most probable classes
 * on the unperturbed image are explained, most probable first. Fills *res
 * (free with lime_result_free; on failure it is left empty).
 * Memory: batch_size images, num_samples × segments masks (bytes and
 * doubles) and num_samples × n_classes floats, all freed before returning.
 * Reentrant: concurrent calls share nothing (if the callback allows it).
 * Fails with STRATA_E_ARG for an image under 8×8, n_segments < 2 or over
 * w*h/4, num_samples < 2, batch_size < 1, kernel_width <= 0,
 * num_features < 1, or a label outside 0..n_classes-1; STRATA_E_UNSUPPORTED when the image yields
 * fewer than 2 superpixels; STRATA_E_LIMIT for an image over image.h's
 * limits or a batch buffer over 512 MiB; the callback's own code when it
 * fails, and STRATA_E_FORMAT when it returns a non-finite probability;
 * STRATA_E_INTERRUPTED when p->cancel was raised (it is read after the
 * segmentation, before each batch of rendered samples and after the mask
 * classifier; a classify call in progress is not interrupted);
 * STRATA_E_NOMEM. */
int lime_explain(const uint8_t *rgb, int w, int h, const struct lime_params *p,
                 lime_classify_fn classify, void *user, int n_classes, const int *labels,
                 int n_labels, struct lime_result *res, char *err);

/* lime_explain with a lime_classifier: when clf->classify_masks is set it is
 * called once with all num_samples masks (and nothing is rendered); if it
 * returns LIME_DECLINED the samples are rendered in batches for
 * clf->classify as lime_explain does. The result is the same either way (up
 * to the classifiers' rounding); res->mask_path says which was used. The
 * mask classifier needs no batch buffer, so the batch_size images are only
 * allocated when it declines. Fails as lime_explain does, with the mask
 * classifier's own negative code when it fails. */
int lime_explain_with(const uint8_t *rgb, int w, int h, const struct lime_params *p,
                      const struct lime_classifier *clf, int n_classes, const int *labels,
                      int n_labels, struct lime_result *res, char *err);

void lime_result_free(struct lime_result *res);

/* The weight LIME gives a sample with the 0/1 mask[0..n-1]: the kernel
 * sqrt(exp(−d²/kernel_width²)) of its cosine distance d to the all-ones
 * mask (d = 1 for the all-zero mask, as scikit-learn's cosine distance gives
 * a zero vector similarity 0). Can't fail. */
double lime_kernel_weight(const uint8_t *mask, int n, double kernel_width);

/* The explanation of class label in res, or NULL (borrowed). */
const struct lime_class *lime_result_class(const struct lime_result *res, int label);

/* The options of get_image_and_mask. */
struct lime_overlay_opts {
    int positive_only; /* only segments with weight > min_weight (1) */
    int negative_only; /* only segments with weight < -min_weight (0) */
    int hide_rest;     /* black out everything not selected (0) */
    int num_features;  /* at most this many segments, best first (5) */
    double min_weight; /* (0) */
};

void lime_overlay_opts_default(struct lime_overlay_opts *o);

/* get_image_and_mask followed by mark_boundaries: selects segments of the
 * explanation of label as the reference does, writes the mask (w*h, values
 * 1 selected / 0 not, or +1 positive / -1 negative when neither *_only is
 * set) into mask if it is not NULL, and renders into *out (allocated here,
 * w×h, free with image_free): the photo, or black outside the selection with
 * hide_rest; with neither *_only set, positive segments get their green
 * channel and negative ones their red channel raised to the photo's maximum;
 * finally the outlines of the mask's regions are drawn in yellow (255, 255,
 * 0) — the pixels just outside each region and those where two regions
 * touch, as skimage's mark_boundaries(mode="outer").
 * rgb must be the w×h image that was explained. Fails with STRATA_E_NOTFOUND
 * when label was not explained, STRATA_E_ARG when both positive_only and
 * negative_only are set, STRATA_E_NOMEM. */
int lime_render_overlay(const struct lime_result *res, const uint8_t *rgb, int label,
                        const struct lime_overlay_opts *o, struct image *out, int8_t *mask,
                        char *err);

/* A heat map of the explanation of label: each segment painted with its
 * weight on a diverging map (blue negative, white zero, red positive, scaled
 * by the largest |weight|), blended over a grey copy of the photo — more
 * opaque the larger |weight| — with every superpixel outlined in dark grey.
 * *out is allocated here (w×h, free with image_free). Fails with
 * STRATA_E_NOTFOUND when label was not explained, STRATA_E_NOMEM. */
int lime_render_heatmap(const struct lime_result *res, const uint8_t *rgb, int label,
                        struct image *out, char *err);

#endif
