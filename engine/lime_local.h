/*
 * lime_local.h — exact, fast LIME sampling for CNNs whose leading layers are
 * spatially local, through the receptive fields of those layers.
 *
 * A LIME sample is the photo with some superpixels replaced by their hiding
 * colour, chosen by a 0/1 mask over the segments. The leading layers of a CNN
 * that compute each output position from a bounded input window — conv2d,
 * maxpool2d, batch_norm and dropout at inference, relu / sigmoid / softmax
 * over channels — are its "local prefix". Output position p of the prefix
 * depends on the input only through its receptive field, hence on the mask
 * only through the bits of the j_p segments that field meets (1 to 4 for
 * the seed architecture at 150×150 with 50 superpixels). So the prefix's
 * output at p takes at most 2^j_p values, which are computed once per image
 * by running the model's own graph on the receptive-field window of p
 * rendered with each pattern of those bits (many windows per batch, through
 * a view of the graph's prefix planned on one window). Every sample's prefix
 * output is then a gather from that table, and only the rest of the model
 * (flatten, dense, ...) runs per sample, batched through GEMM. The result is
 * the brute-force result up to float rounding: same kernels, same inputs,
 * only the GEMM blocking differs.
 *
 * When the prefix is followed (after flatten or dropout, identities at
 * inference) by a dense layer, that layer is linear before its activation:
 * z = b + Σ_p W_pᵀ x_p, W_p the C rows of its kernel that read position p.
 * So each table row x_p is stored already multiplied, as W_pᵀ x_p (units
 * floats), and a sample's z is a sum of one row per position — P·units adds
 * instead of 2·P·C·units flops of GEMM. Only the order of the additions
 * changes, so this too equals brute force up to rounding.
 *
 * It applies when the prefix is non-empty and every layer in it pads
 * nothing (padding "valid", or "same" that happens to need no padding):
 * a window cropped from the image then sees exactly what the whole-image
 * forward sees. The prefix is a chain (each layer reads the one before)
 * that no later layer reads into except at its last layer (a skip
 * connection ends it earlier), a dense layer is folded only when nothing
 * after it reads what comes before it, and the model must end in a vector
 * of class scores (a 1×1 output). Per image it declines (LIME_DECLINED, and LIME renders
 * images as usual) when a receptive field meets more than max_bits segments
 * (deep models), when the tables would exceed max_table_bytes, or when its
 * estimated cost is not min_speedup times below brute force.
 */
#ifndef STRATA_LIME_LOCAL_H
#define STRATA_LIME_LOCAL_H

#include "lime.h"
#include "model.h"

/* The local prefix of a model. */
struct lime_local_geom {
    int n_prefix;               /* leading local layers (0: none) */
    int rf_h, rf_w;             /* input pixels one prefix output position sees */
    int stride_h, stride_w;     /* input pixels between neighbouring positions */
    struct shape out;           /* the prefix's output, one sample */
    double prefix_flops;        /* per image, whole input */
    double window_flops;        /* per receptive-field window */
    double tail_flops;          /* the layers after the prefix, per image */
};

/* Finds m's local prefix and fills *g. Returns 1 when the fast path can
 * apply to m, else 0 with the reason in why (STRATA_ERR_LEN bytes; may be
 * NULL). Can't fail. */
int lime_local_analyse(const struct model *m, struct lime_local_geom *g, char *why);

struct lime_local_opts {
    int max_bits;           /* at most this many segments per receptive field (10) */
    size_t max_table_bytes; /* tables of all positions together (256 MiB) */
    double min_speedup;     /* estimated brute-force / fast cost to go fast (2);
                               0 takes the fast path whenever the caps allow */
    int prefix_layers;      /* 0: cut the prefix where the estimated cost is
                               lowest (0); k: exactly after the first k layers */
    int fold_dense;         /* fold a dense layer right after the prefix into
                               the tables (1; see the file comment) */
};

/* The defaults given beside each field. Can't fail. */
void lime_local_opts_default(struct lime_local_opts *o);

/* What the last lime_local_classify_masks call did. */
struct lime_local_stats {
    int used;               /* 1 fast path, 0 declined */
    int prefix_layers;      /* the cut: layers run through the tables */
    int folded;             /* 1 when a dense layer was folded into them */
    int positions;          /* prefix output positions */
    int groups;             /* table row groups (positions with a folded dense
                               layer merged by segment set; else positions) */
    int max_bits;           /* largest j_p */
    long windows;           /* Σ_p 2^j_p window evaluations */
    double est_speedup;     /* estimated brute-force / fast cost */
    double ms_plan;         /* segments per position, decision */
    double ms_tables;       /* window evaluations */
    double ms_samples;      /* gathers and the rest of the model */
    char reason[160];       /* why it declined ("" when used) */
};

struct lime_local;

/* Prepares the fast path for m (borrowed: it must outlive the object and
 * keep its weights) with batches of up to max_batch samples through the
 * layers after the prefix. The windows' and the tail's workspaces are
 * allocated by the first call (and again when a later image is best cut
 * elsewhere). opts NULL means the defaults; otherwise 1 <= max_bits <= 20,
 * min_speedup >= 0 and prefix_layers >= 0 (asserted). On success *out is
 * the object (lime_local_free); when m has no usable local prefix
 * (lime_local_analyse) fails with STRATA_E_UNSUPPORTED and the reason;
 * STRATA_E_NOMEM. */
int lime_local_new(const struct model *m, int max_batch, const struct lime_local_opts *opts,
                   struct lime_local **out, char *err);

/* Frees everything the object holds (not the model); NULL is a no-op. */
void lime_local_free(struct lime_local *ll);

/* A lime_classify_masks_fn (user is the struct lime_local): the model's
 * probabilities on the n samples that pert and masks describe, as
 * n×n_classes floats in probs. pert must be at the model's input size.
 * Returns 0; LIME_DECLINED with the reason in err when this image is not
 * worth it (see the file comment); STRATA_E_ARG when pert is not at the
 * input size; STRATA_E_NOMEM. Memory: the tables (at most max_table_bytes),
 * per-position segment lists and the image normalised twice (photo and
 * fully hidden), all freed before returning. Not reentrant on
 * one object; separate objects may run concurrently. */
int lime_local_classify_masks(void *user, const struct lime_perturbation *pert,
                              const uint8_t *masks, int n, float *probs, char *err);

/* Statistics of the last lime_local_classify_masks call. Can't fail. */
void lime_local_last_stats(const struct lime_local *ll, struct lime_local_stats *st);

#endif
