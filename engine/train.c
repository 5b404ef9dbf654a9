/* train.c — minibatch training with validation and early stopping (see train.h). */
#include "train.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer.h"
#include "model_graph.h"
#include "parallel.h"
#include "train_graph.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- configuration ------------------------------------------------------ */

/* Reads an optional number field; 0 if absent, an error if not a number or
 * out of [lo, hi]. */
static int get_number(const json_t *obj, const char *key, double lo, double hi, double *out,
                      const char *what, const char *path, char *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s.%s: expected a number", what, path, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return strata_fail(err, STRATA_E_ARG, "%s: %s.%s: %g is out of range [%g, %g]", what, path,
                           key, x, lo, hi);
    *out = x;
    return 0;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *what,
                      const char *path, char *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, key) == 0;
        if (!ok)
            return strata_fail(err, STRATA_E_FORMAT, "%s: %s.%s: unknown field", what, path, key);
    }
    return 0;
}

static int get_object(const json_t *obj, const char *key, json_t **out, const char *what,
                      const char *path, char *err)
{
    *out = json_object_get(obj, key);
    if (*out && !json_is_object(*out))
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s.%s: expected an object", what, path, key);
    return 0;
}

static int get_bool(const json_t *obj, const char *key, int *out, const char *what,
                    const char *path, char *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s.%s: expected true or false", what, path, key);
    *out = json_is_true(v);
    return 0;
}

int train_config_parse(struct train_config *c, const void *training, const char *what, char *err)
{
    *c = (struct train_config){
        .epochs = 20,
        .batch_size = 32,
        .seed = 1,
        .optim = {.kind = OPTIM_ADAM, .lr = 1e-3f, .momentum = 0.9f, .beta1 = 0.9f,
                  .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0},
        .schedule = SCHEDULE_COSINE,
        .warmup_epochs = 0,
        .step_epochs = 10,
        .step_gamma = 0.1f,
        .validation_split = 0.1f,
        .patience = 0,
    };
    const json_t *t = training;
    if (!t)
        return 0;
    if (!json_is_object(t))
        return strata_fail(err, STRATA_E_FORMAT, "%s: training: expected an object", what);
    static const char *const top[] = {"epochs", "batch_size", "seed", "optimizer", "schedule",
                                      "augment", "validation_split", "early_stopping",
                                      "class_weight", "label_smoothing", "rotation_labels",
                                      "notes", NULL};
    int rc = check_keys(t, top, what, "training", err);
    double x;
    if (rc)
        return rc;
#define NUM(obj, key, lo, hi, path, dst)                                                   \
    do {                                                                                   \
        x = (dst);                                                                         \
        if ((rc = get_number(obj, key, lo, hi, &x, what, path, err)))                      \
            return rc;                                                                     \
        (dst) = x;                                                                         \
    } while (0)
    NUM(t, "epochs", 1, 100000, "training", c->epochs);
    NUM(t, "batch_size", 2, 4096, "training", c->batch_size);
    x = (double)c->seed;
    if ((rc = get_number(t, "seed", 0, 9007199254740992.0, &x, what, "training", err)))
        return rc;
    c->seed = (uint64_t)x;
    NUM(t, "validation_split", 0, 0.9, "training", c->validation_split);
    NUM(t, "label_smoothing", 0, 0.5, "training", c->label_smoothing);
    NUM(t, "rotation_labels", 0, 3, "training", c->rotation_labels);

    json_t *o;
    if ((rc = get_object(t, "optimizer", &o, what, "training", err)))
        return rc;
    if (o) {
        static const char *const keys[] = {"type", "lr", "momentum", "beta1", "beta2", "eps",
                                           "weight_decay", "nesterov", NULL};
        if ((rc = check_keys(o, keys, what, "training.optimizer", err)))
            return rc;
        json_t *type = json_object_get(o, "type");
        if (type) {
            const char *s = json_string_value(type);
            if (s && strcmp(s, "adam") == 0)
                c->optim.kind = OPTIM_ADAM;
            else if (s && strcmp(s, "sgd") == 0)
                c->optim.kind = OPTIM_SGD;
            else
                return strata_fail(err, STRATA_E_FORMAT,
                                   "%s: training.optimizer.type: expected \"adam\" or \"sgd\"", what);
        }
        NUM(o, "lr", 1e-7, 10, "training.optimizer", c->optim.lr);
        NUM(o, "momentum", 0, 0.9999, "training.optimizer", c->optim.momentum);
        NUM(o, "beta1", 0, 0.9999, "training.optimizer", c->optim.beta1);
        NUM(o, "beta2", 0, 0.999999, "training.optimizer", c->optim.beta2);
        NUM(o, "eps", 1e-12, 1, "training.optimizer", c->optim.eps);
        NUM(o, "weight_decay", 0, 1, "training.optimizer", c->optim.weight_decay);
        if ((rc = get_bool(o, "nesterov", &c->optim.nesterov, what, "training.optimizer", err)))
            return rc;
    }

    if ((rc = get_object(t, "schedule", &o, what, "training", err)))
        return rc;
    if (o) {
        static const char *const keys[] = {"type", "warmup_epochs", "step_epochs", "gamma", NULL};
        if ((rc = check_keys(o, keys, what, "training.schedule", err)))
            return rc;
        json_t *type = json_object_get(o, "type");
        if (type) {
            const char *s = json_string_value(type);
            if (s && strcmp(s, "cosine") == 0)
                c->schedule = SCHEDULE_COSINE;
            else if (s && strcmp(s, "step") == 0)
                c->schedule = SCHEDULE_STEP;
            else if (s && strcmp(s, "constant") == 0)
                c->schedule = SCHEDULE_CONSTANT;
            else
                return strata_fail(err, STRATA_E_FORMAT,
                                   "%s: training.schedule.type: expected \"cosine\", \"step\" or "
                                   "\"constant\"", what);
        }
        NUM(o, "warmup_epochs", 0, 1000, "training.schedule", c->warmup_epochs);
        NUM(o, "step_epochs", 1, 100000, "training.schedule", c->step_epochs);
        NUM(o, "gamma", 0, 1, "training.schedule", c->step_gamma);
    }

    if ((rc = get_object(t, "augment", &o, what, "training", err)))
        return rc;
    if (o) {
        static const char *const keys[] = {"flip", "zoom", "translate", "brightness",
                                           "contrast", "saturation", "erase", "cutmix", NULL};
        if ((rc = check_keys(o, keys, what, "training.augment", err)))
            return rc;
        if ((rc = get_bool(o, "flip", &c->augment.flip, what, "training.augment", err)))
            return rc;
        NUM(o, "zoom", 0, 1, "training.augment", c->augment.zoom);
        NUM(o, "translate", 0, 0.5, "training.augment", c->augment.translate);
        NUM(o, "brightness", 0, 0.9, "training.augment", c->augment.brightness);
        NUM(o, "contrast", 0, 0.9, "training.augment", c->augment.contrast);
        NUM(o, "saturation", 0, 1, "training.augment", c->augment.saturation);
        NUM(o, "erase", 0, 1, "training.augment", c->augment.erase);
        NUM(o, "cutmix", 0, 1, "training.augment", c->augment.cutmix);
    }

    if ((rc = get_object(t, "early_stopping", &o, what, "training", err)))
        return rc;
    if (o) {
        static const char *const keys[] = {"patience", "keep", NULL};
        if ((rc = check_keys(o, keys, what, "training.early_stopping", err)))
            return rc;
        NUM(o, "patience", 0, 100000, "training.early_stopping", c->patience);
        json_t *keep = json_object_get(o, "keep");
        if (keep) {
            const char *s = json_string_value(keep);
            if (s && strcmp(s, "best") == 0)
                c->keep_last = 0;
            else if (s && strcmp(s, "last") == 0)
                c->keep_last = 1;
            else
                return strata_fail(err, STRATA_E_FORMAT,
                                   "%s: training.early_stopping.keep: expected \"best\" or \"last\"", what);
        }
    }
#undef NUM

    json_t *cw = json_object_get(t, "class_weight");
    if (cw) {
        const char *s = json_string_value(cw);
        if (s && strcmp(s, "balanced") == 0)
            c->balanced_classes = 1;
        else if (s && strcmp(s, "none") == 0)
            c->balanced_classes = 0;
        else
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: training.class_weight: expected \"balanced\" or \"none\"", what);
    }
    return 0;
}

/* ---- loss ---------------------------------------------------------------- */

double train_softmax_xent_mixed(const float *p, const int *labels, const struct cutmix_pair *pairs,
                                int n, int C, const float *class_weight, float smoothing,
                                float *dlogits)
{
    double wsum = 0, loss = 0;
    for (int i = 0; i < n; i++) {
        int y = labels[i], z = pairs ? labels[pairs[i].partner] : y;
        double keep = pairs ? pairs[i].keep : 1.0;
        wsum += class_weight ? keep * class_weight[y] + (1 - keep) * class_weight[z] : 1.0;
    }
    float off = smoothing / (float)C, on = 1.0f - smoothing + off;
    for (int i = 0; i < n; i++) {
        int y = labels[i], z = pairs ? labels[pairs[i].partner] : y;
        float keep = pairs ? pairs[i].keep : 1.0f;
        double w = (class_weight ? keep * class_weight[y] + (1 - keep) * class_weight[z] : 1.0) / wsum;
        const float *pi = p + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            float t = keep * (c == y ? on : off) + (1 - keep) * (c == z ? on : off);
            if (t > 0)
                loss -= w * t * log((double)pi[c] + 1e-12);
            if (dlogits)
                dlogits[(size_t)i * C + c] = (float)(w * (pi[c] - t));
        }
    }
    return loss;
}

double train_softmax_xent(const float *p, const int *labels, int n, int C,
                          const float *class_weight, float smoothing, float *dlogits)
{
    return train_softmax_xent_mixed(p, labels, NULL, n, C, class_weight, smoothing, dlogits);
}

/* ---- the loop ------------------------------------------------------------ */

static double schedule_lr(const struct train_config *c, double epoch_progress)
{
    /* epoch_progress counts epochs from 0 as a real number. */
    double base = c->optim.lr;
    if (c->warmup_epochs > 0 && epoch_progress < c->warmup_epochs)
        return base * (epoch_progress + 1e-3) / c->warmup_epochs;
    switch (c->schedule) {
    case SCHEDULE_COSINE: {
        double span = c->epochs - c->warmup_epochs;
        double t = span > 0 ? (epoch_progress - c->warmup_epochs) / span : 1;
        return base * 0.5 * (1 + cos(M_PI * (t > 1 ? 1 : t)));
    }
    case SCHEDULE_STEP:
        return base * pow(c->step_gamma, floor(epoch_progress / c->step_epochs));
    case SCHEDULE_CONSTANT:
        break;
    }
    return base;
}

/* Splits indices into train and validation, per class, seeded. */
static void stratified_split(const int *labels, int n, int C, float fraction, struct rng *r,
                             int *train_idx, int *n_train, int *val_idx, int *n_val)
{
    int *order = malloc((size_t)n * sizeof *order);
    assert(order);
    for (int i = 0; i < n; i++)
        order[i] = i;
    rng_shuffle_int(r, order, n);
    *n_train = *n_val = 0;
    for (int c = 0; c < C; c++) {
        int count = 0;
        for (int i = 0; i < n; i++)
            count += labels[i] == c;
        int hold = (int)lround(count * (double)fraction);
        int taken = 0;
        for (int i = 0; i < n; i++) {
            if (labels[order[i]] != c)
                continue;
            if (taken++ < hold)
                val_idx[(*n_val)++] = order[i];
            else
                train_idx[(*n_train)++] = order[i];
        }
    }
    free(order);
}

/* Loss and accuracy (inference mode) on the listed images of the model's
 * first C outputs, renormalised when the model has more (a rotation-labels
 * model judged as the C-class model it is cut back to). in holds max_batch
 * images, probs max_batch × C floats. */
static int evaluate(const struct model *m, struct train_graph *tg, int C, const uint8_t *pixels,
                    const int *labels, const int *idx, int n, float *in, int *batch_labels,
                    float *probs, double *loss, double *acc, char *err)
{
    size_t in_size = shape_size(m->input);
    int K = tg->n_classes, correct = 0;
    double total = 0;
    for (int first = 0; first < n; first += tg->max_batch) {
        int b = n - first < tg->max_batch ? n - first : tg->max_batch;
        for (int i = 0; i < b; i++) {
            model_normalise(m, pixels + (size_t)idx[first + i] * in_size, in + (size_t)i * in_size);
            batch_labels[i] = labels[idx[first + i]];
        }
        const float *p = train_graph_forward(tg, in, b, 0, err);
        if (!p)
            return STRATA_E_ARG;
        if (K != C) {
            for (int i = 0; i < b; i++) {
                double sum = 1e-30; /* all mass on turned outputs: probabilities 0, not NaN */
                for (int c = 0; c < C; c++)
                    sum += p[(size_t)i * K + c];
                for (int c = 0; c < C; c++)
                    probs[(size_t)i * C + c] = (float)(p[(size_t)i * K + c] / sum);
            }
            p = probs;
        }
        total += train_softmax_xent(p, batch_labels, b, C, NULL, 0, NULL) * b;
        for (int i = 0; i < b; i++)
            correct += infer_argmax(p + (size_t)i * C, C) == batch_labels[i];
    }
    *loss = n ? total / n : 0;
    *acc = n ? (double)correct / n : 0;
    return 0;
}

void train_report_free(struct train_report *r)
{
    free(r->epochs);
    memset(r, 0, sizeof *r);
}

/* ---- augmentation on the pool --------------------------------------------- */

struct augment_job {
    const struct augment_config *a;
    const struct model *m;
    const uint8_t *pixels;
    const int *idx;     /* the batch's image indices */
    const int *turns;   /* the batch's quarter turns, NULL = all upright */
    float *scratch;     /* a batch of inputs before their turn (with turns) */
    float *dst;
    struct rng start;   /* the rng as the first image of the batch finds it */
};

/* Advances r past one image's draws. augment_sample draws the same values
 * whatever the image (how many depends only on the configuration), so
 * augmenting a 1×1 image moves the rng exactly as a real one does; the test
 * suite checks this (test_parallel). */
static void augment_skip(const struct augment_job *j, struct rng *r)
{
    const uint8_t px[3] = {0, 0, 0};
    float out[3];
    augment_sample(j->a, px, 1, 1, j->m->mean, j->m->std, out, r);
}

/* Images [b, e) of the batch, each with the rng state it gets in a serial
 * loop: the piece starts from the batch's state and skips b images. A turn
 * comes after the augmentation, which draws the same whatever the turn. */
static void augment_piece(void *p, int b, int e)
{
    const struct augment_job *j = p;
    const size_t in_size = shape_size(j->m->input);
    struct rng r = j->start;
    for (int i = 0; i < b; i++)
        augment_skip(j, &r);
    for (int i = b; i < e; i++) {
        int turned = j->turns && j->turns[i];
        float *out = (turned ? j->scratch : j->dst) + (size_t)i * in_size;
        augment_sample(j->a, j->pixels + (size_t)j->idx[i] * in_size, j->m->input.w,
                       j->m->input.h, j->m->mean, j->m->std, out, &r);
        if (turned)
            augment_turn(out, j->m->input.w, 3, j->turns[i], j->dst + (size_t)i * in_size);
    }
}

/* dst[i] = augment_sample(image idx[i]) turned turns[i] quarter turns (turns
 * NULL: none; then scratch may be NULL) for the n images of a batch, on the
 * pool, bit-identical to the serial loop with the one rng: each image sees
 * the rng state the serial loop would give it, and *rng ends where the
 * serial loop leaves it. */
static void augment_batch(const struct augment_config *a, const struct model *m,
                          const uint8_t *pixels, const int *idx, const int *turns, int n,
                          float *scratch, float *dst, struct rng *rng)
{
    struct augment_job j = {.a = a, .m = m, .pixels = pixels, .idx = idx, .turns = turns,
                            .scratch = scratch, .dst = dst, .start = *rng};
    parallel_for_grain(n, parallel_grain(8 * shape_size(m->input)), augment_piece, &j);
    for (int i = 0; i < n; i++)
        augment_skip(&j, rng);
}

/* ---- rotation labels ----------------------------------------------------- */

enum { TURNS = 4 };

/* The output layer's kernel and bias are the last tensors of the slab. */
static size_t output_offset(const struct model *m)
{
    return (size_t)(m->layers[m->n_layers - 1].w.kernel - m->params);
}

/* *wide = m's definition with TURNS × C output units (unit k·C + c is class
 * c turned k quarter turns), its parameters m's with the output kernel and
 * bias copied into every turn's block. */
static int rotation_model(const struct model *m, struct model *wide, char *err)
{
    const struct layer *out = &m->layers[m->n_layers - 1];
    if (out->cfg.kind != LAYER_DENSE || out->cfg.activation != ACT_SOFTMAX)
        return strata_fail(err, STRATA_E_ARG,
                           "model %s: training.rotation_labels needs the last layer to be dense "
                           "with softmax activation (layer %s is not)", m->id, out->cfg.name);
    if (m->input.h != m->input.w)
        return strata_fail(err, STRATA_E_ARG,
                           "model %s: training.rotation_labels needs a square input (this one is "
                           "%d×%d), so that a turned image has the same size",
                           m->id, m->input.w, m->input.h);
    int C = m->n_classes, rc = STRATA_E_NOMEM;
    if (TURNS * C > MODEL_MAX_CLASSES)
        return strata_fail(err, STRATA_E_ARG,
                           "model %s: training.rotation_labels needs %d × %d outputs, more than the "
                           "%d a model may have; train it without rotation labels",
                           m->id, TURNS, C, MODEL_MAX_CLASSES);
    json_t *def = json_deep_copy(m->json), *classes = json_array();
    char *text = NULL;
    if (!def || !classes)
        goto nomem;
    for (int k = 0; k < TURNS; k++)
        for (int c = 0; c < C; c++) {
            char name[320];
            /* Internal names, never saved; a clash with a real class name
             * ("cat#1" beside "cat") fails the parse below, which says so. */
            snprintf(name, sizeof name, k ? "%s#%d" : "%s", m->classes[c], k);
            if (json_array_append_new(classes, json_string(name)) < 0)
                goto nomem;
        }
    json_t *layers = json_object_get(def, "layers");
    json_t *last = json_array_get(layers, json_array_size(layers) - 1);
    if (json_object_set(def, "classes", classes) < 0 ||
        json_object_set_new(last, "units", json_integer((json_int_t)TURNS * C)) < 0 ||
        !(text = json_dumps(def, JSON_COMPACT)))
        goto nomem;
    if ((rc = model_parse_json(wide, text, m->id, err)) < 0) {
        char why[STRATA_ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        strata_fail(err, rc, "model %s: training.rotation_labels cannot build the %d-output copy "
                    "of the model: %s", m->id, TURNS * C, why);
        goto out;
    }
    size_t prefix = output_offset(m), inputs = shape_size(out->in);
    memcpy(wide->params, m->params, prefix * sizeof(float));
    struct layer *wout = &wide->layers[wide->n_layers - 1];
    for (size_t i = 0; i < inputs; i++)
        for (int k = 0; k < TURNS; k++)
            memcpy(wout->w.kernel + (i * TURNS + k) * C, out->w.kernel + i * C, C * sizeof(float));
    for (int k = 0; k < TURNS && out->w.bias; k++)
        memcpy(wout->w.bias + (size_t)k * C, out->w.bias, C * sizeof(float));
    rc = 0;
    goto out;
nomem:
    strata_fail(err, rc, "out of memory setting up rotation labels");
out:
    free(text);
    json_decref(classes);
    json_decref(def);
    return rc;
}

/* m = the wide model's parameters cut back to the upright outputs. */
static void cut_back(struct model *m, const struct model *wide)
{
    const float *wide_params = wide->params;
    const struct layer *out = &m->layers[m->n_layers - 1];
    size_t prefix = output_offset(m), inputs = shape_size(out->in);
    int C = m->n_classes;
    memcpy(m->params, wide_params, prefix * sizeof(float));
    const struct layer *wout = &wide->layers[wide->n_layers - 1];
    const float *kernel = wide_params + (wout->w.kernel - wide->params);
    for (size_t i = 0; i < inputs; i++)
        memcpy(out->w.kernel + i * C, kernel + i * TURNS * C, C * sizeof(float));
    if (out->w.bias)
        memcpy(out->w.bias, wide_params + (wout->w.bias - wide->params), C * sizeof(float));
}

int train_run(struct model *m, const struct train_config *cfg, const uint8_t *pixels,
              const int *labels, int n, train_progress_fn progress, void *user,
              volatile sig_atomic_t *stop, struct train_report *report, char *err)
{
    memset(report, 0, sizeof *report);
    const struct layer *last = &m->layers[m->n_layers - 1];
    if (!m->onnx[0] && !(last->cfg.kind == LAYER_SOFTMAX || last->cfg.activation == ACT_SOFTMAX))
        return strata_fail(err, STRATA_E_ARG,
                           "model %s: training needs a last layer ending in softmax (layer %s)",
                           m->id, last->cfg.name);
    if (m->onnx[0] && cfg->rotation_labels > 0)
        return strata_fail(err, STRATA_E_ARG,
                           "model %s: training.rotation_labels needs one of strata's own models "
                           "(it widens the output layer); this one is imported from %s",
                           m->id, m->onnx);
    int C = m->n_classes, B = cfg->batch_size;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return strata_fail(err, STRATA_E_ARG, "label %d of image %d is not a class of %s",
                               labels[i], i, m->id);

    /* The model fitted: m itself, or its rotation-labels copy. */
    struct model wide = {0};
    int rc, turns = cfg->rotation_labels > 0 ? TURNS : 1;
    if (turns > 1 && (rc = rotation_model(m, &wide, err)) < 0)
        return rc;
    struct model *fit = turns > 1 ? &wide : m;
    int K = fit->n_classes;
    size_t in_size = shape_size(m->input);

    rc = STRATA_E_NOMEM;
    struct train_graph tg = {0};
    struct optim opt = {0};
    struct optim_tensor *tensors = NULL;
    int *train_idx = malloc((size_t)n * sizeof(int)), *val_idx = malloc((size_t)n * sizeof(int));
    int *order = turns > 1 ? malloc((size_t)n * TURNS * sizeof(int)) : NULL;
    int *turned = turns > 1 ? malloc((size_t)n * (TURNS - 1) * sizeof(int)) : NULL;
    int *batch_labels = malloc((size_t)B * sizeof(int)), *batch_images = malloc((size_t)B * sizeof(int));
    int *batch_turns = malloc((size_t)B * sizeof(int));
    float *dlogits = malloc((size_t)B * K * sizeof(float));
    float *val_probs = malloc((size_t)B * C * sizeof(float));
    float *class_weight = malloc((size_t)K * sizeof(float));
    float *scratch = turns > 1 ? tensor_alloc((size_t)B * in_size) : NULL;
    float *batch_in = tensor_alloc((size_t)B * in_size);
    int cutmix = cfg->augment.cutmix > 0;
    float *cut_copy = cutmix ? tensor_alloc((size_t)B * in_size) : NULL;
    struct cutmix_pair *pairs = cutmix ? malloc((size_t)B * sizeof *pairs) : NULL;
    float *best = NULL;
    report->epochs = calloc((size_t)cfg->epochs, sizeof *report->epochs);
    if (!train_idx || !val_idx || (turns > 1 && (!order || !turned || !scratch)) || !batch_labels ||
        !batch_images || !batch_turns || !dlogits || !val_probs || !class_weight || !batch_in ||
        (cutmix && (!cut_copy || !pairs)) || !report->epochs) {
        strata_fail(err, rc, "out of memory setting up training");
        goto done;
    }
    /* the weights are about to change: a graph one of strata's own models
     * runs inference on would keep the old ones (model_run_on_graph builds it
     * anew); an imported model's graph is the one trained */
    if (!m->onnx[0])
        model_graph_close(m);
    if ((rc = train_graph_init(&tg, fit, B, cfg->seed ^ 0x5eedf00dULL, err)) < 0)
        goto done;
    if (!(tensors = calloc((size_t)tg.n_params + 1, sizeof *tensors)) ||
        !(best = tensor_alloc(tg.state_len + 1))) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory setting up training");
        goto done;
    }
    if ((rc = optim_init_tensors(&opt, tensors, train_graph_optim_tensors(&tg, tensors),
                                 &cfg->optim, err)) < 0)
        goto done;

    struct rng rng;
    rng_seed(&rng, cfg->seed);
    int n_train, n_val;
    stratified_split(labels, n, C, cfg->validation_split, &rng, train_idx, &n_train, val_idx, &n_val);
    report->n_train = n_train;
    report->n_val = n_val;
    if (n_train < 2) {
        rc = strata_fail(err, STRATA_E_ARG, "only %d training images after the validation split", n_train);
        goto done;
    }
    for (int c = 0; c < C; c++) {
        int count = 0;
        for (int i = 0; i < n_train; i++)
            count += labels[train_idx[i]] == c;
        class_weight[c] = cfg->balanced_classes && count ? (float)n_train / ((float)C * count) : 1.0f;
    }
    for (int k = C; k < K; k++)
        class_weight[k] = class_weight[k % C];
    /* With rotation labels, order lists what an epoch shows — training
     * image i in turn t is i·TURNS + t: every i upright, then n_turned of
     * the turned pairs, drawn each epoch from `turned`. */
    int n_turned = turns > 1 ? (int)lround(cfg->rotation_labels * n_train) : 0;
    if (n_turned > n_train * (TURNS - 1))
        n_turned = n_train * (TURNS - 1);
    if (turns > 1 && n_turned < 1)
        n_turned = 1; /* a tiny f still shows turned images */
    int n_fit = n_train + n_turned;
    for (int i = 0; i < n_train && turns > 1; i++)
        for (int t = 1; t < TURNS; t++)
            turned[i * (TURNS - 1) + t - 1] = i * TURNS + t;

    /* A final batch of one would make batch statistics meaningless. */
    int batches = n_fit / B + (n_fit % B >= 2);
    long total_steps = (long)batches * cfg->epochs, steps_done = 0;
    double t_start = now_seconds(), best_acc = -1;
    int since_best = 0;
    train_graph_save(&tg, best);

    for (int epoch = 0; epoch < cfg->epochs && !(stop && *stop); epoch++) {
        double t_epoch = now_seconds(), loss_sum = 0, lr = 0;
        int correct = 0, seen = 0;
        if (turns > 1) {
            if (n_turned < n_train * (TURNS - 1))
                rng_shuffle_int(&rng, turned, n_train * (TURNS - 1));
            for (int i = 0; i < n_train; i++)
                order[i] = i * TURNS;
            memcpy(order + n_train, turned, (size_t)n_turned * sizeof(int));
            rng_shuffle_int(&rng, order, n_fit);
        } else {
            rng_shuffle_int(&rng, train_idx, n_train);
        }
        for (int bi = 0; bi < batches && !(stop && *stop); bi++) {
            int first = bi * B, b = n_fit - first < B ? n_fit - first : B;
            for (int i = 0; i < b; i++) {
                int j = turns > 1 ? order[first + i] : first + i;
                batch_images[i] = train_idx[j / turns];
                batch_turns[i] = j % turns;   /* turns is TURNS or 1 */
                batch_labels[i] = labels[batch_images[i]] + C * batch_turns[i];
            }
            augment_batch(&cfg->augment, fit, pixels, batch_images, turns > 1 ? batch_turns : NULL,
                          b, scratch, batch_in, &rng);
            if (cutmix)
                cutmix_batch(batch_in, cut_copy, b, fit->input.h, fit->input.w, fit->input.c,
                             cfg->augment.cutmix, pairs, &rng);
            const float *p = train_graph_forward(&tg, batch_in, b, 1, err);
            if (!p) {
                rc = STRATA_E_ARG;
                goto done;
            }
            double loss = train_softmax_xent_mixed(p, batch_labels, pairs, b, K, class_weight,
                                                   cfg->label_smoothing, dlogits);
            for (int i = 0; i < b; i++)
                correct += infer_argmax(p + (size_t)i * K, K) % C == batch_labels[i] % C;
            loss_sum += loss * b;
            seen += b;

            if ((rc = train_graph_backward(&tg, dlogits, err)) < 0)
                goto done;
            lr = schedule_lr(cfg, epoch + (double)bi / batches);
            optim_step(&opt, (float)lr);
            steps_done++;

            if (progress) {
                double elapsed = now_seconds() - t_start;
                struct train_progress pr = {
                    .epoch = epoch + 1, .epochs = cfg->epochs, .batch = bi + 1, .batches = batches,
                    .loss = loss_sum / seen, .acc = (double)correct / seen,
                    .images_per_s = seen / (now_seconds() - t_epoch),
                    .eta_s = elapsed / steps_done * (total_steps - steps_done)};
                progress(user, &pr, NULL);
            }
        }
        if (seen == 0)
            break;
        struct train_epoch *e = &report->epochs[report->n_epochs++];
        e->epoch = epoch + 1;
        e->train_loss = loss_sum / seen;
        e->train_acc = (double)correct / seen;
        e->lr = lr;
        if (n_val && (rc = evaluate(fit, &tg, C, pixels, labels, val_idx, n_val, batch_in,
                                    batch_labels, val_probs, &e->val_loss, &e->val_acc, err)) < 0)
            goto done;
        e->seconds = now_seconds() - t_epoch;

        /* Keep the best weights; with no validation split, or when asked,
         * the last ones. */
        double score = n_val && !cfg->keep_last ? e->val_acc : (double)epoch;
        if (score > best_acc) {
            best_acc = score;
            report->best_epoch = e->epoch;
            train_graph_save(&tg, best);
            since_best = 0;
        } else {
            since_best++;
        }
        if (progress) {
            double elapsed = now_seconds() - t_start;
            struct train_progress pr = {
                .epoch = epoch + 1, .epochs = cfg->epochs, .batch = batches, .batches = batches,
                .loss = e->train_loss, .acc = e->train_acc, .images_per_s = seen / e->seconds,
                .eta_s = elapsed / steps_done * (total_steps - steps_done)};
            progress(user, &pr, e);
        }
        if (cfg->patience > 0 && n_val && since_best >= cfg->patience) {
            report->stopped_early = 1;
            break;
        }
    }
    report->interrupted = stop && *stop;
    report->best_val_acc = n_val && !cfg->keep_last ? best_acc
                         : report->n_epochs ? report->epochs[report->n_epochs - 1].val_acc : 0;
    /* the best epoch's weights, or the starting ones when no epoch ended */
    train_graph_restore(&tg, best);
    train_graph_to_model(&tg, fit);
    if (fit != m && report->n_epochs > 0)
        cut_back(m, fit);
    report->seconds = now_seconds() - t_start;
    rc = 0;

done:
    if (rc < 0)
        train_report_free(report);
    optim_free(&opt);
    free(tensors);
    train_graph_free(&tg);
    model_free(&wide);
    free(train_idx);
    free(val_idx);
    free(order);
    free(turned);
    free(batch_labels);
    free(batch_images);
    free(batch_turns);
    free(dlogits);
    free(val_probs);
    free(class_weight);
    tensor_free(scratch);
    tensor_free(batch_in);
    tensor_free(cut_copy);
    free(pairs);
    tensor_free(best);
    return rc;
}
