/*
 * analysis.h — what every layer of a model does to a dataset split, computed
 * once and cached: the analysis bundle.
 *
 * Pipeline (analysis_run):
 *   images of root/<dataset>/<split> -> batched forward with capture ->
 *   each batch's layer outputs reduced at once to one feature row per image
 *   and layer (never all activations of all images) ->
 *   per layer: k-means elbow k = 1..k_max, automatic k (at least 2), silhouette,
 *   PCA to 2 components, purity / ARI / NMI of the clusters against the true
 *   classes, squared distances of the images to their own centre ->
 *   per image: the path (true class, cluster at every layer, predicted class);
 *   predictions, confusion matrix, misclassified images.
 *
 * Features (reduce.h). A layer whose output has a spatial extent (h or w > 1:
 * conv2d, maxpool2d, batch_norm, standalone activations) is average-pooled per
 * channel onto a grid (min(grid, h) x min(grid, w) cells, adaptive pooling),
 * the row laid out [gy][gx][c]; a 1x1 output (dense, global_avg_pool) is
 * taken as it is, d = c. Flatten and dropout do not change values at
 * inference, so they reuse the features of the layer before them:
 * `same_as` holds the index of the layer whose features they share (following
 * chains, so it always names a layer with same_as = -1). Why this reduction is
 * the default: see docs/analysis.md.
 *
 * The bundle keeps every layer's feature matrix (n x d floats) so that a layer
 * can be re-clustered with another k on demand (analysis_recluster) and new
 * images placed (analysis_locate) without touching the data again.
 *
 * Cache. analysis_load_or_run keys a bundle by a 64-bit hash of the model
 * (architecture and every parameter), of the data files (sorted names, sizes,
 * modification times) and of the parameters that change the result, and
 * stores it as <cache_dir>/<model-id>-<key>.analysis (format in analysis.c,
 * versioned, checksummed; a corrupt or truncated file is refused and the
 * bundle recomputed).
 *
 * Threading: a bundle is read-only after analysis_run / analysis_load, and
 * the const functions below may run concurrently on it.
 */
#ifndef STRATA_ANALYSIS_H
#define STRATA_ANALYSIS_H

#include <stdint.h>

#include "dataset.h"
#include "model.h"
#include "status.h"

#define ANALYSIS_FORMAT_VERSION 1
#define ANALYSIS_DEFAULT_GRID 2
#define ANALYSIS_MAX_GRID 16
#define ANALYSIS_DEFAULT_K_MAX 10
#define ANALYSIS_MAX_OVERRIDES MODEL_MAX_LAYERS
#define ANALYSIS_DEFAULT_CACHE "var/cache"

/* Timed stages of analysis_run (seconds[] of a bundle). */
enum analysis_stage {
    ANALYSIS_STAGE_LOAD,       /* decode and resize the images */
    ANALYSIS_STAGE_FORWARD,    /* the model's forward passes */
    ANALYSIS_STAGE_REDUCE,     /* layer outputs -> feature rows */
    ANALYSIS_STAGE_KMEANS,     /* elbow sweep and the chosen fits */
    ANALYSIS_STAGE_SILHOUETTE, /* silhouette of the chosen k */
    ANALYSIS_STAGE_PCA,        /* PCA fit and projections */
    ANALYSIS_STAGE_SCORES,     /* purity, ARI, NMI, distances, paths, confusion */
    ANALYSIS_STAGE_TOTAL,      /* wall time of the whole run */
    ANALYSIS_STAGE_COUNT
};

/* "load", "forward", "reduce", "kmeans", "silhouette", "pca", "scores",
 * "total". Can't fail. */
const char *analysis_stage_name(enum analysis_stage s);

/* A k chosen by the user for one layer: `layer` is a layer name or index. */
struct analysis_k_override {
    char layer[48];
    int k;
};

struct analysis_params {
    char split[32];     /* dataset split, "test" */
    int grid;           /* pooling grid side for spatial outputs, 1..ANALYSIS_MAX_GRID (2) */
    int k_max;          /* elbow sweep k = 1..k_max (10; capped at the image count) */
    int n_init;         /* k-means restarts (10) */
    int max_iter;       /* Lloyd iterations (300) */
    double tol;         /* k-means relative tolerance (1e-4) */
    uint64_t seed;      /* k-means seed (0) */
    int n_threads;      /* k-means worker threads, 0 = automatic; not part of the result */
    int batch;          /* forward batch size (32); not part of the result */
    int n_overrides;
    struct analysis_k_override overrides[ANALYSIS_MAX_OVERRIDES];
};

/* Fills p with the defaults above. Can't fail. */
void analysis_params_default(struct analysis_params *p);

/* Adds a "LAYER=K" override (K in 1..KMEANS_MAX_K; a later override of the
 * same LAYER replaces the earlier one). The layer is resolved against the
 * model only when the analysis runs. Returns 0, or STRATA_E_ARG with a
 * message when spec is malformed or there are too many overrides. */
int analysis_params_add_k(struct analysis_params *p, const char *spec, char *err);

/* Summary of the squared distances of a cluster's members to its centre, for
 * scoring how unusual a new image's distance is. Quantiles interpolate
 * linearly between order statistics (numpy's default). All 0 for an empty
 * cluster. */
struct analysis_dist_stats {
    int count;
    float mean, q50, q90, q95, max;
};

/* Everything that depends on the choice of k for one layer. */
struct analysis_clustering {
    int k;
    float *centers;          /* [k * d] row-major, owned */
    int *labels;             /* [n] cluster of each image, owned */
    int *sizes;              /* [k] images per cluster (may be 0), owned */
    double inertia;          /* sum of squared distances to the own centre */
    double silhouette;       /* mean silhouette; NAN when undefined (< 2 non-empty clusters) */
    double purity, ari, nmi; /* clusters against true classes */
    double *cluster_purity;  /* [k] majority share (0 for an empty cluster), owned */
    int *cluster_majority;   /* [k] majority class (-1 for an empty cluster), owned */
    float *center_points;    /* [k * 2] centres in the layer's PCA plane, owned */
    float *dist2;            /* [n] squared distance of each image to its centre, owned */
    struct analysis_dist_stats *dist_stats; /* [k], owned */
};

/* Frees what a clustering owns and empties it. NULL-safe. */
void analysis_clustering_free(struct analysis_clustering *c);

struct analysis_layer {
    char name[48];
    char type[24];           /* model.json type, "conv2d" */
    struct shape out;        /* output shape of one image */
    int d;                   /* feature size */
    int grid;                /* pooling grid asked for (0 when the 1x1 output was taken as is) */
    int same_as;             /* -1, or the layer whose features these are */
    int k_override;          /* the user's k for this layer, 0 = automatic */
    float *features;         /* [n * d]; owned when same_as = -1, else borrowed */
    double *elbow;           /* [k_max] inertia for k = 1..k_max, owned */
    int k_auto;              /* max(2, elbow_choose_k(elbow)) */
    /* PCA of the features: x -> ((x - mean) . comp[0], (x - mean) . comp[1]). */
    float *pca_mean;         /* [d], owned */
    float *pca_components;   /* [2 * d] unit rows (the second is 0 when d = 1), owned */
    double pca_ratio[2];     /* explained variance ratios of PC1 and PC2 */
    float *points;           /* [n * 2] every image in the PCA plane, owned */
    struct analysis_clustering c; /* with k = k_override if set, else k_auto */
};

/* One misclassified image. */
struct analysis_miss {
    int index;      /* into the bundle's images */
    int truth, pred;
    float prob;     /* probability of the predicted class */
    float prob_true; /* probability of the true class */
};

struct analysis {
    uint64_t key;            /* cache key (0 when not computed through the cache) */
    char model_id[64];
    char dataset[64];
    char split[32];
    int grid, k_max, n_init, max_iter;
    double tol;
    uint64_t seed;
    int n_threads;           /* for analysis_recluster; not stored in the cache */
    int n, n_classes, n_layers;
    char **classes;          /* [n_classes], owned */
    char **image_ids;        /* [n] "class/file", owned */
    int *labels;             /* [n] true classes, owned */
    int *pred;               /* [n] predicted classes, owned */
    float *probs;            /* [n * n_classes], owned */
    long *confusion;         /* [n_classes²] rows = true, columns = predicted, owned */
    double accuracy;
    int n_missed;
    struct analysis_miss *missed; /* [n_missed] in image order, owned */
    int n_paths;             /* distinct sequences of clusters over all layers */
    int *path_id;            /* [n] 0..n_paths-1, numbered by first appearance, owned */
    int *path_count;         /* [n_paths] images per path, owned */
    struct analysis_layer *layers; /* [n_layers], owned */
    double seconds[ANALYSIS_STAGE_COUNT]; /* of the run that computed the bundle */
    int cached;              /* 1 when analysis_load_or_run read it from the cache */
    double load_seconds;     /* time to read the cache file when cached */
    char cache_path[1024];   /* the cache file used or written ("" without cache) */
    char cache_note[STRATA_ERR_LEN]; /* why a cache file was refused or could not be
                                        written ("" when nothing went wrong) */
};

/* Progress: called with a stage label ("loading images", "forward",
 * "clustering"), done and total; returning non-zero stops the run with
 * STRATA_E_INTERRUPTED. */
typedef int (*analysis_progress_fn)(void *user, const char *stage, long done, long total);

/* Lists root/<m->dataset>/<split> (root as given) into *ds (dataset_free)
 * and checks that its classes are the model's, in order. Fails with the
 * dataset's errors, or STRATA_E_ARG naming both class lists. */
int analysis_open_split(const struct model *m, const char *data_root, const char *split,
                        struct dataset *ds, char *err);

/* Decodes every image of ds at the model's input size into a new RGB8
 * array *pixels (n x h x w x 3; free() it), reporting the stage "loading
 * images" to progress (may be NULL). Returns the number of images kept
 * (dataset_load_images), or a negative status with *pixels NULL. */
int analysis_load_pixels(const struct model *m, struct dataset *ds, uint8_t **pixels,
                         analysis_progress_fn progress, void *user, char *err);

/* Runs the whole pipeline for model m on root/<m->dataset>/<p->split> (root
 * as given; see dataset_root). The dataset's classes must be the model's.
 * On success fills *out (free with analysis_free) and returns 0; out->key is
 * 0. Fails with the dataset's errors (STRATA_E_IO, STRATA_E_NOTFOUND), with
 * STRATA_E_ARG for a class mismatch, fewer than 2 images, an override naming
 * no layer or asking more clusters than images, STRATA_E_NOMEM, or
 * STRATA_E_INTERRUPTED; *out is then empty. progress may be NULL. */
int analysis_run(struct model *m, const struct analysis_params *p, const char *data_root,
                 struct analysis *out, analysis_progress_fn progress, void *user, char *err);

/* Same on images already decoded (pixels: n x input.h x input.w x 3 RGB8,
 * ids[n] "class/file", labels[n]); used by analysis_run and by tests. */
int analysis_run_images(struct model *m, const struct analysis_params *p, const uint8_t *pixels,
                        char *const *ids, const int *labels, int n, struct analysis *out,
                        analysis_progress_fn progress, void *user, char *err);

/* The cache folder: the flag if given, else $STRATA_CACHE, else
 * ANALYSIS_DEFAULT_CACHE. Borrowed string. */
const char *analysis_cache_dir(const char *flag);

/* Creates the cache folder and its parents (mkdir -p); the doubt cache
 * shares it. Returns 0 or STRATA_E_IO / STRATA_E_ARG with err. */
int analysis_cache_create(const char *dir, char *err);

/* The cache key of (model, listed dataset split, parameters): FNV-1a 64-bit
 * over the model's canonical JSON and parameter slab, the sorted data files
 * (name, size, mtime) and the resolved parameters. Fails with STRATA_E_IO if
 * a data file cannot be stat'ed, STRATA_E_ARG for a bad override. */
int analysis_cache_key(const struct model *m, const struct analysis_params *p,
                       const struct dataset *ds, uint64_t *key, char *err);

/* Loads the bundle for (m, p, data) from cache_dir if a valid one is there;
 * otherwise runs the analysis and writes it there (temporary file, then
 * rename; the folder is created). A refused cache file (corrupt, truncated,
 * another version, another key) is recomputed and its reason left in
 * out->cache_note; failing to write the cache is not an error either (the
 * reason goes to cache_note). cache_dir NULL disables the cache (same as
 * analysis_run, but out->key is set). Fails like analysis_run. */
int analysis_load_or_run(struct model *m, const struct analysis_params *p, const char *data_root,
                         const char *cache_dir, struct analysis *out,
                         analysis_progress_fn progress, void *user, char *err);

/* Writes the bundle to path (the format described in analysis.c), through a
 * temporary file in the same folder renamed over path. Returns 0 or
 * STRATA_E_IO with the path and the reason. */
int analysis_save(const struct analysis *a, const char *path, char *err);

/* Reads a bundle written by analysis_save, checking magic, version, length,
 * checksum and every count and index inside. On success fills *out (free
 * with analysis_free; cached = 1) and returns 0. Fails with STRATA_E_IO
 * (cannot read), STRATA_E_FORMAT (not a bundle, truncated, corrupt,
 * inconsistent), STRATA_E_UNSUPPORTED (another format version) or
 * STRATA_E_NOMEM; *out is then empty. When expect_key is not 0, a bundle with
 * another key is refused (STRATA_E_FORMAT). */
int analysis_load(const char *path, uint64_t expect_key, struct analysis *out, char *err);

/* Frees everything a bundle owns and empties it. NULL-safe. */
void analysis_free(struct analysis *a);

/* Index of the layer named `name_or_index` (a name, or an index written as
 * analysis_parse_index accepts it), or -1. */
int analysis_layer_index(const struct analysis *a, const char *name_or_index);

/* s as an index 0..n-1 written in plain decimal digits: no sign, no spaces,
 * no leading zeros ("0" itself is fine), nothing after. -1 for anything
 * else ("+1", " 1", "01", "1x", "", an index >= n). Can't fail. */
int analysis_parse_index(const char *s, int n);

/* Image index of an id "class/file", or -1 (linear search). */
int analysis_image_index(const struct analysis *a, const char *id);

/* Where a new image falls at one layer. */
struct analysis_point {
    int cluster;    /* nearest centre */
    float dist2;    /* squared distance to it (exact, in double then rounded) */
    float x, y;     /* position in the layer's PCA plane */
};

/* Places sample b of the batch last run through model_forward(m, ws, ...)
 * at every layer: the same feature reduction as the bundle, the nearest
 * centre and the PCA projection; out[a->n_layers]. m must be the model the
 * bundle was computed from (checked: layer count and shapes). Returns 0,
 * STRATA_E_ARG for another model, or STRATA_E_NOMEM (one scratch row). */
int analysis_locate(const struct analysis *a, const struct model *m,
                    const struct model_workspace *ws, int b, struct analysis_point *out,
                    char *err);

/* Clusters layer `layer` again with k clusters (same k-means parameters and
 * seed as the bundle) and fills *out with everything that depends on k
 * (free with analysis_clustering_free); a is not modified. Fails with
 * STRATA_E_ARG (layer out of range, k not in 1..min(n, KMEANS_MAX_K)) or
 * STRATA_E_NOMEM. */
/* Where sample b of the batch last run through model_forward falls in the
 * clustering c of layer `layer` (another k: analysis_recluster's): the
 * nearest of c's centres, into *cluster. Returns 0 or STRATA_E_NOMEM (one
 * scratch row). */
int analysis_locate_in(const struct analysis *a, const struct model *m,
                       const struct model_workspace *ws, int b, int layer,
                       const struct analysis_clustering *c, int *cluster, char *err);

int analysis_recluster(const struct analysis *a, int layer, int k,
                       struct analysis_clustering *out, char *err);

/* The feature matrix [n * d] of a layer (following same_as). Borrowed. */
const float *analysis_features(const struct analysis *a, int layer);

/* Writes the clusters of image i at every layer into clusters[n_layers]. */
void analysis_path(const struct analysis *a, int i, int *clusters);

#endif
