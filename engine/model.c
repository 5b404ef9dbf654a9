/*
 * model.c — a CNN: model.json parsing and validation, the parameter slab
 * and its safetensors file, and the batch workspace over the graph the model
 * runs on (see model.h and docs/model-format.md).
 *
 * The model knows layers only through the registry (layer_ops): parsing fills
 * a struct layer_config, ops->configure derives each output shape from the
 * previous one, ops->params lists the tensors that are then laid out, in that
 * order, in one slab. Every failure in parsing names the file and the JSON
 * path of the offending value ("models/x/model.json: layers[3].filters: ...")
 * and leaves the struct model empty, so no half-built model escapes.
 */
#include "model.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_graph.h"
#include "safetensors.h"

/* A model.json larger than this is not a model description. */
#define MODEL_JSON_MAX_BYTES (4u << 20)
/* Input sides above this make no sense for these CNNs and would only serve
 * to exhaust memory. */
#define MODEL_INPUT_MAX_SIDE 4096
/* Upper bound for filters / units / kernel and pool sides in model.json; the
 * layers check tighter, shape-dependent limits in configure. */
#define MODEL_FIELD_MAX 1000000

/* ---- messages ------------------------------------------------------------ */

/* "<what>: <path>: <message>" — every parse error has this form. */
__attribute__((format(printf, 5, 6))) static int fail_at(char *err, int code, const char *what,
                                                          const char *path, const char *fmt,
                                                          ...)
{
    char msg[STRATA_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return strata_fail(err, code, "%s: %s: %s", what, path, msg);
}

/* ---- parameter binding ---------------------------------------------------- */

/* Where the tensor named by a param_desc lives in a struct layer_tensors. */
static float **tensor_slot(struct layer_tensors *t, const char *name)
{
    if (strcmp(name, "kernel") == 0)
        return &t->kernel;
    if (strcmp(name, "bias") == 0)
        return &t->bias;
    if (strcmp(name, "gamma") == 0)
        return &t->gamma;
    if (strcmp(name, "beta") == 0)
        return &t->beta;
    if (strcmp(name, "moving_mean") == 0)
        return &t->moving_mean;
    if (strcmp(name, "moving_variance") == 0)
        return &t->moving_var;
    assert(!"layer_ops.params returned an unknown tensor name");
    return NULL;
}

static size_t desc_count(const struct param_desc *d)
{
    size_t n = 1;
    for (int i = 0; i < d->ndim; i++)
        n *= (size_t)d->dims[i];
    return n;
}

static int layer_params(const struct layer *l, struct param_desc *desc)
{
    int k = layer_ops_of(l->cfg.kind)->params(l, desc);
    assert(k >= 0 && k <= LAYER_MAX_PARAMS);
    return k;
}

/* Points every layer's w at consecutive ranges of slab, layer by layer,
 * tensors in params() order. */
static void bind_slab(struct model *m, float *slab)
{
    size_t off = 0;
    for (int i = 0; i < m->n_layers; i++) {
        struct layer *l = &m->layers[i];
        struct layer_tensors *t = &l->w;
        memset(t, 0, sizeof *t);
        struct param_desc desc[LAYER_MAX_PARAMS];
        int k = layer_params(l, desc);
        for (int j = 0; j < k; j++) {
            *tensor_slot(t, desc[j].name) = slab + off;
            off += desc_count(&desc[j]);
        }
    }
    assert(off == m->n_params);
}

/* ---- model.json ----------------------------------------------------------- */

enum field {
    F_FILTERS, F_KERNEL_SIZE, F_STRIDES, F_PADDING, F_ACTIVATION, F_USE_BIAS, F_EPSILON,
    F_MOMENTUM, F_POOL_SIZE, F_UNITS, F_RATE, F_GROUPS, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_FILTERS] = "filters",   [F_KERNEL_SIZE] = "kernel_size", [F_STRIDES] = "strides",
    [F_PADDING] = "padding",   [F_ACTIVATION] = "activation",   [F_USE_BIAS] = "use_bias",
    [F_EPSILON] = "epsilon",   [F_MOMENTUM] = "momentum",       [F_POOL_SIZE] = "pool_size",
    [F_UNITS] = "units",       [F_RATE] = "rate",               [F_GROUPS] = "groups",
};

#define FB(f) (1u << (f))

/* Which fields each layer type takes (besides "type" and "name"), and which
 * of them have no default — the table of docs/model-format.md. */
static const struct {
    unsigned allowed, required;
} layer_fields[LAYER_KIND_COUNT] = {
    [LAYER_CONV2D] = {FB(F_FILTERS) | FB(F_KERNEL_SIZE) | FB(F_STRIDES) | FB(F_PADDING) |
                          FB(F_ACTIVATION) | FB(F_USE_BIAS) | FB(F_GROUPS),
                      FB(F_FILTERS) | FB(F_KERNEL_SIZE)},
    [LAYER_BATCH_NORM] = {FB(F_EPSILON) | FB(F_MOMENTUM) | FB(F_ACTIVATION), 0},
    [LAYER_MAXPOOL2D] = {FB(F_POOL_SIZE) | FB(F_STRIDES) | FB(F_PADDING), 0},
    [LAYER_DENSE] = {FB(F_UNITS) | FB(F_ACTIVATION) | FB(F_USE_BIAS), FB(F_UNITS)},
    [LAYER_DROPOUT] = {FB(F_RATE), FB(F_RATE)},
    [LAYER_ADD] = {FB(F_ACTIVATION), 0},
};

static int field_lookup(const char *key)
{
    for (int f = 0; f < F_COUNT; f++)
        if (strcmp(key, field_names[f]) == 0)
            return f;
    return -1;
}

/* "filters, kernel_size, ..." for the allowed mask, into buf. */
static const char *fields_list(unsigned mask, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "type, name");
    for (int f = 0; f < F_COUNT && k < len; f++)
        if (mask & FB(f))
            k += (size_t)snprintf(buf + k, len - k, ", %s", field_names[f]);
    return buf;
}

static int get_int(const json_t *v, int lo, int hi, int *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static int get_number(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return isfinite(*out) ? 0 : -1;
}

/* Copies a JSON string of 1 to cap-1 bytes into dst. */
static int get_string(const json_t *v, char *dst, size_t cap, const char *what,
                      const char *path, char *err)
{
    if (!json_is_string(v))
        return fail_at(err, STRATA_E_ARG, what, path, "expected a string");
    size_t len = json_string_length(v);
    if (len == 0 || len >= cap)
        return fail_at(err, STRATA_E_ARG, what, path, "expected a string of 1 to %zu bytes",
                       cap - 1);
    const char *s = json_string_value(v);
    if (strlen(s) != len)
        return fail_at(err, STRATA_E_ARG, what, path, "the string contains a NUL character");
    memcpy(dst, s, len + 1);
    return 0;
}

/* Parses one field value into cfg. */
static int parse_field(struct layer_config *cfg, int f, const json_t *v, const char *what,
                       const char *path, char *err)
{
    double x;
    switch (f) {
    case F_FILTERS:
    case F_KERNEL_SIZE:
    case F_STRIDES:
    case F_POOL_SIZE:
    case F_UNITS:
    case F_GROUPS: {
        int n;
        if (get_int(v, 1, MODEL_FIELD_MAX, &n))
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a positive integer (at most %d)", MODEL_FIELD_MAX);
        if (f == F_FILTERS)
            cfg->filters = n;
        else if (f == F_KERNEL_SIZE)
            cfg->kernel = n;
        else if (f == F_STRIDES)
            cfg->stride = n;
        else if (f == F_POOL_SIZE)
            cfg->pool = n;
        else if (f == F_GROUPS)
            cfg->groups = n;
        else
            cfg->units = n;
        return 0;
    }
    case F_PADDING: {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "valid") == 0)
            cfg->padding = PADDING_VALID;
        else if (s && strcmp(s, "same") == 0)
            cfg->padding = PADDING_SAME;
        else
            return fail_at(err, STRATA_E_ARG, what, path, "expected \"valid\" or \"same\"");
        return 0;
    }
    case F_ACTIVATION: {
        const char *s = json_string_value(v);
        if (!s)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a string: \"linear\", \"relu\", \"sigmoid\", "
                           "\"softmax\", \"relu6\" or \"hardswish\"");
        if (activation_parse(s, &cfg->activation))
            return fail_at(err, STRATA_E_UNSUPPORTED, what, path,
                           "unknown activation \"%.40s\" (strata has linear, relu, sigmoid, "
                           "softmax, relu6 and hardswish)",
                           s);
        return 0;
    }
    case F_USE_BIAS:
        if (!json_is_boolean(v))
            return fail_at(err, STRATA_E_ARG, what, path, "expected true or false");
        cfg->use_bias = json_is_true(v);
        return 0;
    case F_EPSILON:
        if (get_number(v, &x) || !(x > 0) || x > 1)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a number in (0, 1] (typically 0.001)");
        cfg->epsilon = (float)x;
        return 0;
    case F_MOMENTUM:
        if (get_number(v, &x) || x < 0 || x > 1)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a number in [0, 1] (typically 0.99)");
        cfg->momentum = (float)x;
        return 0;
    case F_RATE:
        if (get_number(v, &x) || x < 0 || x >= 1)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a number with 0 <= rate < 1");
        cfg->rate = (float)x;
        return 0;
    }
    assert(!"unknown field");
    return STRATA_E_ARG;
}

/* The "inputs" of layers[i] (a list of names of earlier layers, "input"
 * for the image) into l->inputs; without it, the layer before (the image for
 * the first). A layer that joins (add, concat) names 2 … LAYER_MAX_INPUTS,
 * every other one at most one. */
static int parse_inputs(struct model *m, int i, const json_t *v, const struct layer_ops *ops,
                        const char *what, char *err)
{
    struct layer *l = &m->layers[i];
    char path[96];
    snprintf(path, sizeof path, "layers[%d].inputs", i);
    if (!v) {
        if (ops->joins)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "missing: %s joins 2 to %d layers; name them (\"input\" is the "
                           "image)",
                           ops->type, LAYER_MAX_INPUTS);
        l->n_inputs = 1;
        l->inputs[0] = i - 1;
        return 0;
    }
    const int lo = ops->joins ? 2 : 1, hi = ops->joins ? LAYER_MAX_INPUTS : 1;
    if (!json_is_array(v) || (int)json_array_size(v) < lo || (int)json_array_size(v) > hi)
        return fail_at(err, STRATA_E_ARG, what, path,
                       lo == hi ? "expected an array of %d name of an earlier layer (or "
                                  "\"input\", the image)"
                                : "expected an array of %d to %d names of earlier layers (or "
                                  "\"input\", the image)",
                       lo, hi);
    l->n_inputs = (int)json_array_size(v);
    for (int k = 0; k < l->n_inputs; k++) {
        const json_t *name = json_array_get(v, (size_t)k);
        snprintf(path, sizeof path, "layers[%d].inputs[%d]", i, k);
        if (!json_is_string(name))
            return fail_at(err, STRATA_E_ARG, what, path, "expected a layer's name");
        const char *s = json_string_value(name);
        int found = strcmp(s, "input") == 0 ? -1 : -2;
        for (int j = 0; j < i && found == -2; j++)
            if (strcmp(m->layers[j].cfg.name, s) == 0)
                found = j;
        if (found == -2)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "\"%.48s\" is not the name of an earlier layer (a layer reads the "
                           "image, \"input\", or layers listed before it)",
                           s);
        l->inputs[k] = found;
    }
    return 0;
}

/* Which layers give a flat vector (per image) rather than a feature map:
 * global_avg_pool, flatten and dense do, and what reads one stays flat (a
 * join of a flat vector and 1×1 maps is flat too). A convolution or a
 * pooling window needs a map, so one reading a flat vector is refused — it
 * would be a dense layer. */
static int check_flat_inputs(const struct model *m, const char *what, char *err)
{
    uint8_t *flat = calloc((size_t)m->n_layers, 1);
    if (!flat)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
    int rc = 0;
    for (int i = 0; i < m->n_layers && rc == 0; i++) {
        const struct layer *l = &m->layers[i];
        int reads_flat = 0, first = -1;
        for (int k = 0; k < l->n_inputs; k++) {
            if (l->inputs[k] >= 0 && flat[l->inputs[k]]) {
                reads_flat = 1;
                if (first < 0)
                    first = l->inputs[k];
            }
        }
        const enum layer_kind kind = l->cfg.kind;
        if (reads_flat && (kind == LAYER_CONV2D || kind == LAYER_MAXPOOL2D ||
                           kind == LAYER_GLOBAL_AVG_POOL)) {
            char path[48];
            snprintf(path, sizeof path, "layers[%d]", i);
            rc = fail_at(err, STRATA_E_ARG, what, path,
                         "%s needs a feature map, but \"%s\" gives a flat vector (after "
                         "global_avg_pool, flatten or dense); use a dense layer",
                         layer_ops_of(kind)->type, m->layers[first].cfg.name);
        }
        flat[i] = reads_flat || kind == LAYER_GLOBAL_AVG_POOL || kind == LAYER_FLATTEN ||
                  kind == LAYER_DENSE;
    }
    free(flat);
    return rc;
}

/* One entry of "layers": type, name, fields with their defaults, its inputs,
 * then ops->configure with l->ins and l->in set. */
static int parse_layer(struct model *m, int i, const json_t *jl, const char *what, char *err)
{
    struct layer *l = &m->layers[i];
    char path[96];
    snprintf(path, sizeof path, "layers[%d]", i);
    if (!json_is_object(jl))
        return fail_at(err, STRATA_E_ARG, what, path, "expected an object with a \"type\"");

    const json_t *jt = json_object_get(jl, "type");
    snprintf(path, sizeof path, "layers[%d].type", i);
    if (!jt)
        return fail_at(err, STRATA_E_ARG, what, path, "missing (e.g. \"conv2d\", \"dense\")");
    if (!json_is_string(jt))
        return fail_at(err, STRATA_E_ARG, what, path, "expected a string");
    const struct layer_ops *ops = layer_ops_find(json_string_value(jt));
    if (!ops)
        return fail_at(err, STRATA_E_UNSUPPORTED, what, path,
                       "unknown layer type \"%.40s\" (strata has conv2d, batch_norm, "
                       "maxpool2d, global_avg_pool, flatten, dense, dropout, relu, sigmoid, "
                       "softmax, add, concat)",
                       json_string_value(jt));

    struct layer_config *cfg = &l->cfg;
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = ops->kind;
    cfg->activation = ACT_NONE;
    cfg->stride = 1;
    cfg->padding = PADDING_VALID;
    cfg->pool = 2;
    cfg->epsilon = 0.001f;
    cfg->momentum = 0.99f;
    cfg->use_bias = 1;
    cfg->groups = 1;

    unsigned allowed = layer_fields[ops->kind].allowed;
    unsigned seen = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)jl, key, v) {
        if (strcmp(key, "type") == 0 || strcmp(key, "inputs") == 0)
            continue;
        if (strcmp(key, "name") == 0) {
            snprintf(path, sizeof path, "layers[%d].name", i);
            int rc = get_string(v, cfg->name, sizeof cfg->name, what, path, err);
            if (rc)
                return rc;
            for (const char *c = cfg->name; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    return fail_at(err, STRATA_E_ARG, what, path,
                                   "the name contains a control character");
            continue;
        }
        int f = field_lookup(key);
        snprintf(path, sizeof path, "layers[%d].%.40s", i, key);
        if (f < 0 || !(allowed & FB(f))) {
            char list[200];
            return fail_at(err, STRATA_E_ARG, what, path,
                           "unknown key for a %s layer (it takes %s)", ops->type,
                           fields_list(allowed, list, sizeof list));
        }
        int rc = parse_field(cfg, f, v, what, path, err);
        if (rc)
            return rc;
        seen |= FB(f);
    }
    unsigned missing = layer_fields[ops->kind].required & ~seen;
    for (int f = 0; f < F_COUNT; f++)
        if (missing & FB(f)) {
            snprintf(path, sizeof path, "layers[%d].%s", i, field_names[f]);
            return fail_at(err, STRATA_E_ARG, what, path, "missing (required for %s)",
                           ops->type);
        }
    /* A max-pool's stride defaults to its window: non-overlapping pools. */
    if (ops->kind == LAYER_MAXPOOL2D && !(seen & FB(F_STRIDES)))
        cfg->stride = cfg->pool;
    if (!cfg->name[0])
        snprintf(cfg->name, sizeof cfg->name, "%s_%d", ops->type, i);
    snprintf(path, sizeof path, "layers[%d].name", i);
    if (strcmp(cfg->name, "input") == 0)
        return fail_at(err, STRATA_E_ARG, what, path,
                       "\"input\" names the image in \"inputs\"; choose another name");
    for (int j = 0; j < i; j++)
        if (strcmp(m->layers[j].cfg.name, cfg->name) == 0)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "\"%s\" is already the name of layers[%d]; names must be unique",
                           cfg->name, j);

    int rc = parse_inputs(m, i, json_object_get(jl, "inputs"), ops, what, err);
    if (rc)
        return rc;
    for (int k = 0; k < l->n_inputs; k++)
        l->ins[k] = l->inputs[k] < 0 ? m->input : m->layers[l->inputs[k]].out;
    l->in = l->ins[0];
    char msg[STRATA_ERR_LEN];
    rc = ops->configure(l, msg);
    if (rc) {
        snprintf(path, sizeof path, "layers[%d]", i);
        return fail_at(err, rc, what, path, "%s", msg);
    }
    assert(l->out.h >= 1 && l->out.w >= 1 && l->out.c >= 1);
    return 0;
}

static int parse_input(struct model *m, const json_t *v, const char *what, char *err)
{
    if (!v)
        return fail_at(err, STRATA_E_ARG, what, "input",
                       "missing (e.g. {\"height\": 96, \"width\": 96, \"channels\": 3})");
    if (!json_is_object(v))
        return fail_at(err, STRATA_E_ARG, what, "input", "expected an object");
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        char path[64];
        snprintf(path, sizeof path, "input.%.40s", key);
        if (strcmp(key, "height") && strcmp(key, "width") && strcmp(key, "channels"))
            return fail_at(err, STRATA_E_ARG, what, path,
                           "unknown key (input takes height, width and channels)");
        int n;
        if (get_int(x, 1, MODEL_INPUT_MAX_SIDE, &n))
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected a positive integer (at most %d)", MODEL_INPUT_MAX_SIDE);
        if (strcmp(key, "height") == 0)
            m->input.h = n;
        else if (strcmp(key, "width") == 0)
            m->input.w = n;
        else if (n != 3)
            return fail_at(err, STRATA_E_UNSUPPORTED, what, path,
                           "must be 3: strata models take RGB images");
    }
    if (!m->input.h)
        return fail_at(err, STRATA_E_ARG, what, "input.height", "missing");
    if (!m->input.w)
        return fail_at(err, STRATA_E_ARG, what, "input.width", "missing");
    m->input.c = 3;
    return 0;
}

static int parse_normalization(struct model *m, const json_t *v, const char *what, char *err)
{
    for (int c = 0; c < 3; c++) {
        m->mean[c] = 0.0f;
        m->std[c] = 1.0f;
    }
    if (!v)
        return 0;
    if (!json_is_object(v))
        return fail_at(err, STRATA_E_ARG, what, "normalization",
                       "expected an object with mean and std");
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        char path[64];
        snprintf(path, sizeof path, "normalization.%.40s", key);
        int is_std = strcmp(key, "std") == 0;
        if (!is_std && strcmp(key, "mean"))
            return fail_at(err, STRATA_E_ARG, what, path,
                           "unknown key (normalization takes mean and std)");
        if (!json_is_array(x) || json_array_size(x) != 3)
            return fail_at(err, STRATA_E_ARG, what, path,
                           "expected an array of 3 numbers, one per RGB channel");
        for (int c = 0; c < 3; c++) {
            double d;
            snprintf(path, sizeof path, "normalization.%s[%d]", key, c);
            if (get_number(json_array_get(x, (size_t)c), &d) || (is_std && !(d > 0)) ||
                fabs(d) > 1e6)
                return fail_at(err, STRATA_E_ARG, what, path, is_std
                                   ? "expected a positive number"
                                   : "expected a number");
            if (is_std)
                m->std[c] = (float)d;
            else
                m->mean[c] = (float)d;
        }
    }
    return 0;
}

static int parse_classes(struct model *m, const json_t *v, const char *what, char *err)
{
    if (!v)
        return fail_at(err, STRATA_E_ARG, what, "classes",
                       "missing (the class names, in the order of the model's outputs)");
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > MODEL_MAX_CLASSES)
        return fail_at(err, STRATA_E_ARG, what, "classes",
                       "expected an array of 1 to %d class names", MODEL_MAX_CLASSES);
    int n = (int)json_array_size(v);
    m->classes = calloc((size_t)n, sizeof *m->classes);
    if (!m->classes)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < n; i++) {
        char path[32], name[256];
        snprintf(path, sizeof path, "classes[%d]", i);
        int rc = get_string(json_array_get(v, (size_t)i), name, sizeof name, what, path, err);
        if (rc)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(m->classes[j], name) == 0)
                return fail_at(err, STRATA_E_ARG, what, path,
                               "\"%s\" is already classes[%d]; class names must be unique",
                               name, j);
        m->classes[i] = strdup(name);
        if (!m->classes[i])
            return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
        m->n_classes = i + 1;
    }
    return 0;
}

static int id_is_valid(const char *s)
{
    if (!s[0] || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static const char *const root_keys[] = {"id",      "title",   "description", "dataset",
                                        "input",   "normalization", "classes", "layers",
                                        "training", "onnx",    "shown"};

/* Fills m from a parsed model.json; folder_id is the id's default. On
 * failure m holds partial allocations (the caller frees them). */
static int parse_root(struct model *m, json_t *root, const char *what, const char *folder_id,
                      char *err)
{
    if (!json_is_object(root))
        return strata_fail(err, STRATA_E_FORMAT, "%s: expected a JSON object at the top level",
                           what);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t k = 0;
        while (k < sizeof root_keys / sizeof root_keys[0] && strcmp(key, root_keys[k]))
            k++;
        if (k == sizeof root_keys / sizeof root_keys[0])
            return fail_at(err, STRATA_E_ARG, what, key,
                           "unknown key (the top level takes id, title, description, "
                           "dataset, input, normalization, classes, layers, training, onnx "
                           "and shown)");
    }

    int rc;
    if ((v = json_object_get(root, "id"))) {
        if ((rc = get_string(v, m->id, sizeof m->id, what, "id", err)))
            return rc;
        if (!id_is_valid(m->id))
            return fail_at(err, STRATA_E_ARG, what, "id",
                           "\"%s\": use letters, digits, '-', '_' and '.' only", m->id);
    } else {
        if (strlen(folder_id) >= sizeof m->id)
            return fail_at(err, STRATA_E_ARG, what, "id",
                           "missing, and the folder name is too long to serve as the id");
        strcpy(m->id, folder_id);
    }
    if ((v = json_object_get(root, "title"))) {
        if ((rc = get_string(v, m->title, sizeof m->title, what, "title", err)))
            return rc;
    } else {
        strcpy(m->title, m->id);
    }
    if ((v = json_object_get(root, "description")) && !json_is_string(v))
        return fail_at(err, STRATA_E_ARG, what, "description", "expected a string");
    if ((v = json_object_get(root, "dataset"))) {
        if ((rc = get_string(v, m->dataset, sizeof m->dataset, what, "dataset", err)))
            return rc;
    } else {
        /* "felines-seed" trains on the dataset of "felines". */
        strcpy(m->dataset, m->id);
        size_t len = strlen(m->dataset);
        if (len > 5 && strcmp(m->dataset + len - 5, "-seed") == 0)
            m->dataset[len - 5] = 0;
    }
    if ((v = json_object_get(root, "training")) && !json_is_object(v))
        return fail_at(err, STRATA_E_ARG, what, "training", "expected an object");

    if ((rc = parse_input(m, json_object_get(root, "input"), what, err)))
        return rc;
    if ((rc = parse_normalization(m, json_object_get(root, "normalization"), what, err)))
        return rc;
    if ((rc = parse_classes(m, json_object_get(root, "classes"), what, err)))
        return rc;

    json_t *layers = json_object_get(root, "layers");
    if ((v = json_object_get(root, "onnx"))) {
        /* an imported model: its layers come from the ONNX file (model_open) */
        if (layers)
            return fail_at(err, STRATA_E_ARG, what, "layers",
                           "an imported model (with \"onnx\") takes its layers from the file");
        if ((rc = get_string(v, m->onnx, sizeof m->onnx, what, "onnx", err)))
            return rc;
        if (!m->onnx[0] || strchr(m->onnx, '/') || m->onnx[0] == '.')
            return fail_at(err, STRATA_E_ARG, what, "onnx",
                           "expected the name of a file in the model's folder");
        json_t *shown = json_object_get(root, "shown");
        size_t i;
        json_t *name;
        if (shown && (!json_is_array(shown) || json_array_size(shown) < 1 ||
                      json_array_size(shown) > MODEL_MAX_LAYERS))
            return fail_at(err, STRATA_E_ARG, what, "shown",
                           "expected an array of 1 to %d names of the graph's values or nodes",
                           MODEL_MAX_LAYERS);
        json_array_foreach(shown, i, name) if (!json_is_string(name) || !json_string_length(name))
            return fail_at(err, STRATA_E_ARG, what, "shown", "expected names (strings)");
        if (!(m->params = tensor_alloc(1)))
            return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
        return 0;
    }
    if (json_object_get(root, "shown"))
        return fail_at(err, STRATA_E_ARG, what, "shown",
                       "only an imported model (with \"onnx\") chooses the layers shown");
    if (!layers)
        return fail_at(err, STRATA_E_ARG, what, "layers", "missing");
    if (!json_is_array(layers) || json_array_size(layers) < 1 ||
        json_array_size(layers) > MODEL_MAX_LAYERS)
        return fail_at(err, STRATA_E_ARG, what, "layers",
                       "expected an array of 1 to %d layers", MODEL_MAX_LAYERS);
    int n = (int)json_array_size(layers);
    m->layers = calloc((size_t)n, sizeof *m->layers);
    if (!m->layers)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
    m->n_layers = n;
    for (int i = 0; i < n; i++)
        if ((rc = parse_layer(m, i, json_array_get(layers, (size_t)i), what, err)))
            return rc;

    /* Every layer but the last leads somewhere: one that nothing reads is
     * almost always a name mistyped in an "inputs" list. */
    for (int i = 0; i < n - 1; i++) {
        int read = 0;
        for (int j = i + 1; j < n && !read; j++)
            for (int k = 0; k < m->layers[j].n_inputs; k++)
                read |= m->layers[j].inputs[k] == i;
        if (!read) {
            char path[48];
            snprintf(path, sizeof path, "layers[%d]", i);
            return fail_at(err, STRATA_E_ARG, what, path,
                           "no later layer reads \"%s\" (name it in an \"inputs\" list, or "
                           "remove it)",
                           m->layers[i].cfg.name);
        }
    }
    if ((rc = check_flat_inputs(m, what, err)))
        return rc;
    const struct layer *last = &m->layers[n - 1];
    if (shape_size(last->out) != (size_t)m->n_classes) {
        char path[48], sb[48];
        snprintf(path, sizeof path, "layers[%d]%s", n - 1,
                 last->cfg.kind == LAYER_DENSE ? ".units" : "");
        return fail_at(err, STRATA_E_ARG, what, path,
                       "the last layer outputs %zu values (shape %s) but there are %d "
                       "classes; they must match",
                       shape_size(last->out), shape_format(last->out, sb, sizeof sb),
                       m->n_classes);
    }

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        struct param_desc desc[LAYER_MAX_PARAMS];
        int k = layer_params(&m->layers[i], desc);
        for (int j = 0; j < k; j++)
            total += desc_count(&desc[j]);
    }
    m->n_params = total;
    /* One float more than needed, so a model without parameters still has a
     * (non-NULL) slab and every code path stays the same. */
    m->params = tensor_alloc(total + 1);
    if (!m->params)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory for %zu parameters", what,
                           total);
    bind_slab(m, m->params);
    return 0;
}

/* The last component of a folder path ("felines" for "models/felines/"). */
static void last_component(const char *p, char *out, size_t cap)
{
    size_t end = strlen(p);
    while (end > 1 && p[end - 1] == '/')
        end--;
    size_t begin = end;
    while (begin > 0 && p[begin - 1] != '/')
        begin--;
    snprintf(out, cap, "%.*s", (int)(end - begin), p + begin);
}

/* dir part of a path ("." when there is none), into out. */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    snprintf(out, cap, "%.*s", (int)len, path);
}

static int parse_text(struct model *m, const char *text, size_t len, const char *what,
                      const char *folder_id, char *err)
{
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return strata_fail(err, STRATA_E_FORMAT, "%s: invalid JSON at line %d, column %d: %s",
                           what, je.line, je.column, je.text);
    m->json = root;
    int rc = parse_root(m, root, what, folder_id, err);
    if (rc)
        model_free(m);
    return rc;
}

/* See model.h. m is overwritten (not freed first). `what` names the text in
 * messages and, when it looks like a path ("models/felines/model.json"), its
 * folder gives the default id. On failure m is left zeroed. */
int model_parse_json(struct model *m, const char *text, const char *what, char *err)
{
    assert(m && text);
    if (!what)
        what = "model.json";
    /* "models/felines/model.json" gives the default id "felines". */
    char dir[PATH_MAX], folder[256] = "";
    if (strchr(what, '/')) {
        dir_of(what, dir, sizeof dir);
        last_component(dir, folder, sizeof folder);
    }
    return parse_text(m, text, strlen(text), what, folder, err);
}

/* Reads a whole small file into a NUL-terminated malloc'd buffer. */
static int read_small_file(const char *path, size_t max, char **out, size_t *out_len, char *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return strata_fail(err, errno == ENOENT ? STRATA_E_NOTFOUND : STRATA_E_IO,
                           "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return strata_fail(err, STRATA_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(fp);
        return strata_fail(err, STRATA_E_LIMIT, "%s: %lld bytes, over the %zu-byte limit",
                           path, (long long)st.st_size, max);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        fclose(fp);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, len, fp);
    int bad = ferror(fp) || got != len;
    fclose(fp);
    if (bad) {
        free(buf);
        return strata_fail(err, STRATA_E_IO, "%s: read failed", path);
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}

/* See model.h. Files over MODEL_JSON_MAX_BYTES are refused (STRATA_E_LIMIT);
 * a missing file is STRATA_E_NOTFOUND. Sets m->dir to the file's folder. On
 * failure m is left zeroed. */
int model_load_json(struct model *m, const char *path, char *err)
{
    assert(m && path);
    memset(m, 0, sizeof *m);
    char *text;
    size_t len = 0;
    int rc = read_small_file(path, MODEL_JSON_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    char dir[PATH_MAX], real[PATH_MAX], folder[256];
    dir_of(path, dir, sizeof dir);
    /* The id defaults to the folder's name, also for "./model.json". */
    last_component(realpath(dir, real) ? real : dir, folder, sizeof folder);
    rc = parse_text(m, text, len, path, folder, err);
    free(text);
    if (rc)
        return rc;
    if (strlen(dir) >= sizeof m->dir) {
        model_free(m);
        return strata_fail(err, STRATA_E_ARG, "%s: path too long", path);
    }
    strcpy(m->dir, dir);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* See model.h. id_or_dir is used as a folder when it contains a '/' or names
 * an existing folder, else resolved under models_root ("models" if NULL). A
 * missing folder or weights file is STRATA_E_NOTFOUND naming the path. On
 * failure m is left zeroed. */
int model_open(struct model *m, const char *models_root, const char *id_or_dir, char *err)
{
    assert(m && id_or_dir);
    memset(m, 0, sizeof *m);
    char dir[1024], path[1100];
    int n;
    if (strchr(id_or_dir, '/') || is_dir(id_or_dir))
        n = snprintf(dir, sizeof dir, "%s", id_or_dir);
    else
        n = snprintf(dir, sizeof dir, "%s/%s", models_root ? models_root : "models", id_or_dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return strata_fail(err, STRATA_E_ARG, "model folder name too long: %.100s...",
                           id_or_dir);
    if (!is_dir(dir))
        return strata_fail(err, STRATA_E_NOTFOUND, "model \"%s\" not found: %s is not a folder",
                           id_or_dir, dir);
    snprintf(path, sizeof path, "%s/model.json", dir);
    int rc = model_load_json(m, path, err);
    if (rc)
        return rc;
    strcpy(m->dir, dir);
    if (m->onnx[0]) {
        if ((rc = model_load_onnx(m, err)) < 0)
            model_free(m);
        return rc;
    }
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (access(path, F_OK) != 0) {
        model_free(m);
        return strata_fail(err, STRATA_E_NOTFOUND,
                           "%s: no weights file; the model has not been trained yet", path);
    }
    rc = model_load_weights(m, path, err);
    if (rc == 0)
        rc = model_run_on_graph(m, err);
    if (rc)
        model_free(m);
    return rc;
}

/* See model.h. */
int model_run_on_graph(struct model *m, char *err)
{
    if (m->onnx[0] || m->graph)
        return 0;
    return model_graph_from_layers(m, err);
}

/* See model.h. */
int model_load_onnx(struct model *m, char *err)
{
    assert(m && m->onnx[0] && !m->graph);
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", m->dir, m->onnx);
    return model_graph_open(m, path, err);
}

/* Frees everything m owns and zeroes it; safe on a zeroed struct and twice. */
void model_free(struct model *m)
{
    if (!m)
        return;
    if (m->classes)
        for (int i = 0; i < m->n_classes; i++)
            free(m->classes[i]);
    free(m->classes);
    model_graph_close(m);
    free(m->layers);
    tensor_free(m->params);
    json_decref((json_t *)m->json);
    memset(m, 0, sizeof *m);
}

/* ---- parameters ----------------------------------------------------------- */

/* See model.h. Each layer draws from its own stream derived from seed, so a
 * seed reproduces the same values on any machine. Can't fail. */
void model_init_params(struct model *m, uint64_t seed)
{
    assert(m && m->params);
    if (!m->onnx[0])
        model_graph_close(m); /* its copy of the weights is about to be stale */
    memset(m->params, 0, m->n_params * sizeof(float));
    for (int i = 0; i < m->n_layers; i++) {
        /* One stream per layer, so changing one layer's shape leaves the
         * others' initial values as they were. */
        struct rng r;
        rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)));
        layer_ops_of(m->layers[i].cfg.kind)->init(&m->layers[i], &r);
    }
}

/* See model.h. Can't fail. */
size_t model_trainable_count(const struct model *m)
{
    if (m->onnx[0])
        return graph_param_count(&m->graph->g);
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        struct param_desc desc[LAYER_MAX_PARAMS];
        int k = layer_params(&m->layers[i], desc);
        for (int j = 0; j < k; j++)
            if (desc[j].trainable)
                total += desc_count(&desc[j]);
    }
    return total;
}

/* See model.h. A linear scan (at most MODEL_MAX_CLASSES names). */
int model_class_index(const struct model *m, const char *name)
{
    for (int i = 0; i < m->n_classes; i++)
        if (strcmp(m->classes[i], name) == 0)
            return i;
    return -1;
}

/* ---- weights.safetensors -------------------------------------------------- */

/* Every parameter tensor of the model, in slab order, with its file name
 * "layers.<i>.<param>" and where its values live. */
struct weight_list {
    int n;
    char (*names)[64];
    struct st_spec *spec;
    float **ptr;
};

static void weight_list_free(struct weight_list *w)
{
    free(w->names);
    free(w->spec);
    free(w->ptr);
    memset(w, 0, sizeof *w);
}

static int weight_list_build(struct model *m, struct weight_list *w, char *err)
{
    memset(w, 0, sizeof *w);
    int cap = m->n_layers * LAYER_MAX_PARAMS + 1;
    w->names = calloc((size_t)cap, sizeof *w->names);
    w->spec = calloc((size_t)cap, sizeof *w->spec);
    w->ptr = calloc((size_t)cap, sizeof *w->ptr);
    if (!w->names || !w->spec || !w->ptr) {
        weight_list_free(w);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_layers; i++) {
        struct layer *l = &m->layers[i];
        struct param_desc desc[LAYER_MAX_PARAMS];
        int k = layer_params(l, desc);
        for (int j = 0; j < k; j++) {
            snprintf(w->names[w->n], sizeof w->names[w->n], "layers.%d.%s", i, desc[j].name);
            struct st_spec *s = &w->spec[w->n];
            s->name = w->names[w->n];
            s->ndim = desc[j].ndim;
            for (int d = 0; d < desc[j].ndim; d++)
                s->shape[d] = desc[j].dims[d];
            w->ptr[w->n] = *tensor_slot(&l->w, desc[j].name);
            w->n++;
        }
    }
    return 0;
}

/* See model.h. Every check is done before any value is copied, so on failure
 * the parameters are unchanged. Codes: STRATA_E_NOTFOUND (no file),
 * STRATA_E_LIMIT (file far larger than the model's n_params floats),
 * STRATA_E_UNSUPPORTED (a dtype other than F32), STRATA_E_FORMAT (the rest). */
int model_load_weights(struct model *m, const char *path, char *err)
{
    assert(m && m->params && path);
    struct weight_list w;
    int rc = weight_list_build(m, &w, err);
    if (rc)
        return rc;
    /* The data must be exactly n_params floats; the header of a file with
     * this many tensors is a few kilobytes. Anything far larger is not ours. */
    size_t max_bytes = 8 + m->n_params * sizeof(float) + ((size_t)1 << 20) + 1024 * (size_t)w.n;
    struct st_file f;
    rc = st_read(&f, path, max_bytes, err);
    if (rc == 0)
        rc = st_expect_f32(&f, w.spec, w.n, path, err);
    /* Nothing is copied until everything checked out: a bad file leaves the
     * parameters as they were. The values are read into a scratch slab
     * first, where a NaN or an infinity (a diverged training, a damaged
     * file) is refused: such a model answers every image the same way. */
    float *scratch = rc == 0 ? malloc((m->n_params ? m->n_params : 1) * sizeof *scratch) : NULL;
    if (rc == 0 && !scratch)
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory reading %s", path);
    for (int i = 0; rc == 0 && i < w.n; i++) {
        const struct st_tensor *t = st_find(&f, w.spec[i].name);
        float *dst = scratch + (w.ptr[i] - m->params);
        size_t count = 1;
        for (int d = 0; d < w.spec[i].ndim; d++)
            count *= (size_t)w.spec[i].shape[d];
        st_copy_f32(&f, t, dst);
        size_t bad = 0, first = 0;
        for (size_t k = 0; k < count; k++)
            if (!isfinite(dst[k]) && bad++ == 0)
                first = k;
        if (bad)
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: tensor '%s' holds %zu values that are not finite numbers "
                             "(NaN or infinity; the first at index %zu): the weights are broken, "
                             "retrain the model",
                             path, w.spec[i].name, bad, first);
    }
    for (int i = 0; rc == 0 && i < w.n; i++) {
        size_t count = 1;
        for (int d = 0; d < w.spec[i].ndim; d++)
            count *= (size_t)w.spec[i].shape[d];
        memcpy(w.ptr[i], scratch + (w.ptr[i] - m->params), count * sizeof *scratch);
    }
    free(scratch);
    st_free(&f);
    weight_list_free(&w);
    if (rc == 0 && !m->onnx[0])
        model_graph_close(m); /* its copy of the weights is stale */
    return rc;
}

/* See model.h. Writes a temporary file beside path and renames it over path,
 * so a concurrent reader sees the old file or the new one, never a mix.
 * __metadata__ holds {"id": m->id}. STRATA_E_IO on a write failure. */
int model_save_weights(const struct model *m, const char *path, char *err)
{
    assert(m && m->params && path);
    struct weight_list w;
    int rc = weight_list_build((struct model *)m, &w, err);
    if (rc)
        return rc;
    struct st_out *out = calloc((size_t)w.n + 1, sizeof *out);
    if (!out) {
        weight_list_free(&w);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < w.n; i++) {
        out[i].name = w.spec[i].name;
        out[i].ndim = w.spec[i].ndim;
        memcpy(out[i].shape, w.spec[i].shape, sizeof out[i].shape);
        out[i].data = w.ptr[i];
    }
    const char *mk[1] = {"id"}, *mv[1] = {m->id};
    rc = st_write_f32(path, out, w.n, mk, mv, m->id[0] ? 1 : 0, err);
    free(out);
    weight_list_free(&w);
    return rc;
}

/* ---- workspace, forward, backward ---------------------------------------- */

/* Floats rounded up to whole 64-byte lines, so each piece of a slab is
 * aligned like a tensor_alloc'd buffer. */
static size_t round_floats(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* One slab for all n_layers outputs, pointed into. */
static float **alloc_layer_slab(const struct model *m, int max_batch)
{
    float **v = calloc((size_t)m->n_layers, sizeof *v);
    if (!v)
        return NULL;
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++)
        total += round_floats((size_t)max_batch * shape_size(m->layers[i].out));
    float *slab = tensor_alloc(total);
    if (!slab) {
        free(v);
        return NULL;
    }
    size_t off = 0;
    for (int i = 0; i < m->n_layers; i++) {
        v[i] = slab + off;
        off += round_floats((size_t)max_batch * shape_size(m->layers[i].out));
    }
    return v;
}

static void free_layer_slab(float **v)
{
    if (v)
        tensor_free(v[0]); /* the slab starts at the first layer's piece */
    free(v);
}

/* See model.h. All layer outputs share one slab, each piece 64-byte
 * aligned. */
int model_workspace_init(struct model_workspace *ws, struct model *m, int max_batch, char *err)
{
    assert(ws && m && m->n_layers >= 1 && max_batch >= 1);
    memset(ws, 0, sizeof *ws);
    int rc = model_run_on_graph(m, err);
    if (rc < 0)
        return rc;
    ws->max_batch = max_batch;
    size_t acts = 0;
    for (int i = 0; i < m->n_layers; i++)
        acts += (size_t)max_batch * shape_size(m->layers[i].out);
    ws->input = tensor_alloc((size_t)max_batch * shape_size(m->input));
    ws->outputs = alloc_layer_slab(m, max_batch);
    if (!ws->input || !ws->outputs) {
        model_workspace_free(ws);
        return strata_fail(err, STRATA_E_NOMEM,
                           "out of memory for a batch of %d: %zu MB of activations; try a "
                           "smaller batch",
                           max_batch, (acts * sizeof(float)) >> 20);
    }
    if ((rc = model_graph_ws_init(ws, m, max_batch, err)) < 0) {
        model_workspace_free(ws);
        return rc;
    }
    return 0;
}

/* Frees what model_workspace_init allocated; safe on a zeroed struct. */
void model_workspace_free(struct model_workspace *ws)
{
    if (!ws)
        return;
    tensor_free(ws->input);
    free_layer_slab(ws->outputs);
    model_graph_ws_free(ws);
    memset(ws, 0, sizeof *ws);
}

/* See model.h. Can't fail. */
void model_forward(const struct model *m, struct model_workspace *ws, const float *in, int n)
{
    assert(m && ws && ws->graph && in && n >= 1 && n <= ws->max_batch);
    model_graph_forward(m, ws, in, n);
}

/* ---- input images --------------------------------------------------------- */

/* See model.h. Can't fail. */
void model_normalise(const struct model *m, const uint8_t *rgb, float *out)
{
    /* x = (p/255 - mean) / std = p · a + b, with a and b per channel. */
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        a[c] = (float)(1.0 / (255.0 * m->std[c]));
        b[c] = (float)(-m->mean[c] / (double)m->std[c]);
    }
    size_t pixels = (size_t)m->input.h * (size_t)m->input.w;
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < 3; c++)
            out[3 * p + c] = (float)rgb[3 * p + c] * a[c] + b[c];
}

/* See model.h. An image already at the input size is not resized. Fails only
 * as image_resize does. */
int model_preprocess(const struct model *m, const struct image *img, float *out, char *err)
{
    assert(m && img && img->rgb && out);
    if (img->w == m->input.w && img->h == m->input.h) {
        model_normalise(m, img->rgb, out);
        return 0;
    }
    struct image resized = {0};
    int rc = image_resize(img, m->input.w, m->input.h, &resized, err);
    if (rc)
        return rc;
    model_normalise(m, resized.rgb, out);
    image_free(&resized);
    return 0;
}
