/*
 * attribution.h — one prediction explained by several methods side by side,
 * each with its faithfulness.
 *
 * Methods: Grad-CAM (gradcam.h), Integrated Gradients
 * (integrated_gradients.h), occlusion (occlusion.h), LIME (explain.h: each
 * pixel takes its superpixel's weight), and a random map (uniform noise on a
 * grid of an eighth of the side, upsampled bilinearly: the yardstick a real
 * explanation must beat). Every map is a float per pixel of
 * the image resized to the model's input size, positive where the pixels
 * pushed the model towards the class; each is scored by the deletion and
 * insertion curves of faithfulness.h. All work on strata's own models and on
 * imported ones: the gradient methods through model_grad.h.
 */
#ifndef STRATA_ATTRIBUTION_H
#define STRATA_ATTRIBUTION_H

#include <stdint.h>

#include "faithfulness.h"
#include "image.h"
#include "integrated_gradients.h"
#include "lime.h"
#include "model.h"

enum attribution_method {
    ATTR_GRADCAM,
    ATTR_IG,
    ATTR_OCCLUSION,
    ATTR_LIME,
    ATTR_RANDOM,
    ATTR_N_METHODS
};

/* "gradcam", "ig", "occlusion", "lime", "random". */
const char *attribution_method_name(enum attribution_method method);

/* Parses a comma-separated list of method names, or "all" (every method but
 * random), into a bit mask (1 << method). Returns 0 or STRATA_E_ARG with a
 * message naming the methods there are. */
int attribution_parse_methods(const char *list, unsigned *mask, char *err);

struct attribution_params {
    unsigned methods;      /* bit mask of enum attribution_method */
    int label;             /* class explained; -1: the predicted one */
    const char *layer;     /* Grad-CAM's layer; NULL: the last spatial one */
    int ig_steps;          /* 32 */
    int ig_blurred;        /* baseline: 0 black, 1 the blurred image */
    int occlusion_patch;   /* 0: occlusion_default_patch */
    int occlusion_stride;  /* 0: half the patch */
    struct lime_params lime;
    uint64_t seed;         /* the random map's (LIME's is in lime) */
    int faithfulness;      /* compute the deletion and insertion curves (1) */
    int batch;             /* images per forward pass (32) */
};

/* The defaults above. Can't fail. */
void attribution_params_default(struct attribution_params *p);

struct attribution_map {
    int done;                  /* this method was run */
    float *map;                /* [h × w] owned */
    float scale;               /* max |map|: the colour scale's ends */
    double ms;                 /* time to make the map */
    struct faith_result faith; /* when faithfulness was asked */
    double ms_faith;
    /* method details */
    char layer[128];           /* Grad-CAM: the value looked at */
    int layer_h, layer_w;      /* its resolution */
    struct ig_result ig;       /* Integrated Gradients */
    int steps;
    int patch, stride;         /* occlusion */
    double lime_score;         /* LIME's weighted R² */
    int lime_segments;
};

struct attribution_result {
    struct image resized;      /* the image at the model's input size (owned) */
    int label;                 /* the class explained */
    int predicted;
    float *probs;              /* [n_classes] on the image (owned) */
    struct attribution_map maps[ATTR_N_METHODS];
    int best;                  /* the method whose map the model's behaviour supports
                                  best: largest insertion − deletion AUC among those
                                  run (random excluded); -1 without faithfulness */
    double ms_gradient_setup;  /* the graph with gradients that Grad-CAM and IG share
                                  (strata's own models: written as ONNX and read back) */
    double ms_total;
};

/* Explains img (any size) as p asks. Fails with STRATA_E_ARG for bad
 * parameters, STRATA_E_NOTFOUND for a Grad-CAM layer that is not there, and
 * as the methods do; *r is then left empty. Free with attribution_result_free. */
int attribution_explain(struct model *m, const struct image *img,
                        const struct attribution_params *p, struct attribution_result *r,
                        char *err);
void attribution_result_free(struct attribution_result *r);

#endif
