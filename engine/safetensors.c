/*
 * safetensors.c — a strict safetensors reader and a writer (see
 * safetensors.h).
 *
 * The reader trusts nothing in the file: the header length is checked against
 * the buffer before the JSON is touched, every integer is range-checked before
 * it is used as a size or an offset, and sizes are computed with overflow
 * checks, so a hostile or truncated file yields a message, never a read out of
 * bounds. The data section is never copied by the parser; st_copy_f32 copies
 * bytes (not values), so a NaN payload, a negative zero or a denormal comes
 * back exactly as written.
 */
#include "safetensors.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "readfile.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2},         [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},       [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},         [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
    [ST_F64] = {"F64", 8},
};

size_t st_dtype_size(enum st_dtype d)
{
    assert((int)d >= 0 && d < ST_DTYPE_COUNT);
    return dtype_table[d].size;
}

const char *st_dtype_name(enum st_dtype d)
{
    assert((int)d >= 0 && d < ST_DTYPE_COUNT);
    return dtype_table[d].name;
}

static int dtype_parse(const char *s, enum st_dtype *out)
{
    for (int d = 0; d < ST_DTYPE_COUNT; d++) {
        if (strcmp(s, dtype_table[d].name) == 0) {
            *out = (enum st_dtype)d;
            return 0;
        }
    }
    return -1;
}

/* "[3, 3, 16, 32]" into buf (truncated if it does not fit). */
static const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

static uint64_t le64_read(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void le64_write(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes of ndim dims of elem-byte elements, or -1 if it overflows. Dims are
 * already known to be non-negative. */
static int span_bytes(int ndim, const int64_t *shape, size_t elem, uint64_t *out)
{
    uint64_t total = elem;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && total > UINT64_MAX / d)
            return -1;
        total *= d;
    }
    *out = total;
    return 0;
}

/* A JSON integer in [0, max], or -1 (not an integer, negative or too big). */
static int json_uint(const json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max)
        return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_meta(struct st_file *f, json_t *meta, const char *what, char *err)
{
    if (!json_is_object(meta))
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: __metadata__ must be an object of strings", what);
    size_t cap = json_object_size(meta);
    if (cap == 0)
        return 0;
    f->meta_keys = calloc(cap, sizeof *f->meta_keys);
    f->meta_values = calloc(cap, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory reading the header", what);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: __metadata__.%.100s must be a string", what, key);
        f->meta_keys[f->n_meta] = strdup(key);
        f->meta_values[f->n_meta] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1])
            return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory reading the header",
                               what);
    }
    return 0;
}

/* Validates one header entry into t (whose name is already set). */
static int parse_tensor(struct st_tensor *t, json_t *v, size_t data_len, const char *what,
                        char *err)
{
    const char *name = t->name;
    if (!json_is_object(v))
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": expected an object with dtype, shape and "
                           "data_offsets",
                           what, name);
    const char *key;
    json_t *field;
    json_object_foreach(v, key, field) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: tensor \"%.100s\": unknown field \"%.60s\" (expected "
                               "dtype, shape and data_offsets)",
                               what, name, key);
    }

    json_t *dtype = json_object_get(v, "dtype");
    if (!dtype)
        return strata_fail(err, STRATA_E_FORMAT, "%s: tensor \"%.100s\": missing dtype", what,
                           name);
    if (!json_is_string(dtype))
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": dtype must be a string such as \"F32\"",
                           what, name);
    if (dtype_parse(json_string_value(dtype), &t->dtype))
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": unknown dtype \"%.20s\" (not a "
                           "safetensors type such as F32)",
                           what, name, json_string_value(dtype));

    json_t *shape = json_object_get(v, "shape");
    if (!shape)
        return strata_fail(err, STRATA_E_FORMAT, "%s: tensor \"%.100s\": missing shape", what,
                           name);
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": shape must be an array of at most %d "
                           "dimensions",
                           what, name, ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (json_uint(json_array_get(shape, (size_t)i), INT64_MAX, &d))
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: tensor \"%.100s\": shape[%d] must be a non-negative "
                               "integer",
                               what, name, i);
        t->shape[i] = (int64_t)d;
    }

    json_t *offs = json_object_get(v, "data_offsets");
    if (!offs)
        return strata_fail(err, STRATA_E_FORMAT, "%s: tensor \"%.100s\": missing data_offsets",
                           what, name);
    uint64_t b, e;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_uint(json_array_get(offs, 0), INT64_MAX, &b) ||
        json_uint(json_array_get(offs, 1), INT64_MAX, &e))
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": data_offsets must be [begin, end], two "
                           "non-negative integers",
                           what, name);
    if (b > e)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": data_offsets [%" PRIu64 ", %" PRIu64
                           "] are not in order (begin after end)",
                           what, name, b, e);

    char sb[128];
    uint64_t need;
    if (span_bytes(t->ndim, t->shape, dtype_table[t->dtype].size, &need))
        return strata_fail(err, STRATA_E_FORMAT, "%s: tensor \"%.100s\": shape %s is too large",
                           what, name, shape_str(sb, sizeof sb, t->ndim, t->shape));
    if (e - b != need)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": data_offsets [%" PRIu64 ", %" PRIu64
                           "] span %" PRIu64 " bytes but shape %s of %s needs %" PRIu64,
                           what, name, b, e, e - b, shape_str(sb, sizeof sb, t->ndim, t->shape),
                           dtype_table[t->dtype].name, need);
    if (e > data_len)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: tensor \"%.100s\": data_offsets [%" PRIu64 ", %" PRIu64
                           "] run past the end of the data section (%zu bytes; the file is "
                           "truncated or the offsets are wrong)",
                           what, name, b, e, data_len);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Sorted by begin, the spans must follow each other with no gap and no
 * overlap from 0 to data_len: that single walk catches overlapping tensors,
 * holes, and trailing bytes, and names the tensors on either side. */
static int check_tiling(struct st_file *f, const char *what, char *err)
{
    if (f->n == 0) {
        if (f->data_len)
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: %zu trailing bytes after the header, which lists no tensor",
                               what, f->data_len);
        return 0;
    }
    const struct st_tensor **order = malloc((size_t)f->n * sizeof *order);
    if (!order)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory reading the header", what);
    for (int i = 0; i < f->n; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_by_offset);
    int rc = 0;
    size_t pos = 0;
    const struct st_tensor *prev = NULL;
    for (int i = 0; i < f->n && !rc; i++) {
        const struct st_tensor *t = order[i];
        if (t->begin < pos)
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: tensor \"%.100s\": data_offsets [%zu, %zu] overlap tensor "
                             "\"%.100s\" [%zu, %zu]",
                             what, t->name, t->begin, t->end, prev->name, prev->begin,
                             prev->end);
        else if (t->begin > pos)
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: bytes [%zu, %zu) of the data section belong to no tensor "
                             "(a gap before tensor \"%.100s\"); offsets must cover the data",
                             what, pos, t->begin, t->name);
        pos = t->end;
        prev = t;
    }
    if (!rc && pos != f->data_len)
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "%s: %zu trailing bytes after the last tensor (\"%.100s\" ends at "
                         "%zu, the data section has %zu bytes)",
                         what, f->data_len - pos, prev->name, pos, f->data_len);
    free(order);
    return rc;
}

int st_parse(struct st_file *f, const uint8_t *buf, size_t len, const char *what, char *err)
{
    assert(f && (buf || len == 0) && what);
    memset(f, 0, sizeof *f);
    if (len < 8)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: %zu bytes is too short for a safetensors file (it starts with "
                           "an 8-byte header length)",
                           what, len);
    uint64_t hl = le64_read(buf);
    if (hl > ST_HEADER_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "%s: header length %" PRIu64 " is over the %" PRIu64
                           "-byte limit (not a safetensors file?)",
                           what, hl, ST_HEADER_MAX);
    if (hl > len - 8)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: header length %" PRIu64 " runs past the end of the file "
                           "(%zu bytes follow the length; truncated?)",
                           what, hl, len - 8);

    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key)
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: the header lists a key twice (%s, at byte %d of the "
                               "header): each tensor must appear exactly once",
                               what, je.text, je.position);
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: the header is not valid JSON: %s (byte %d of the header)",
                           what, je.text, je.position);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: the header is not a JSON object", what);
        goto done;
    }
    f->data = buf + 8 + hl;
    f->data_len = len - 8 - (size_t)hl;
    size_t cap = json_object_size(root);
    if (cap) {
        f->tensors = calloc(cap, sizeof *f->tensors);
        if (!f->tensors) {
            rc = strata_fail(err, STRATA_E_NOMEM, "%s: out of memory reading the header", what);
            goto done;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_meta(f, v, what, err);
        } else {
            struct st_tensor *t = &f->tensors[f->n];
            t->name = strdup(key);
            if (!t->name) {
                rc = strata_fail(err, STRATA_E_NOMEM, "%s: out of memory reading the header",
                                 what);
                break;
            }
            f->n++;
            rc = parse_tensor(t, v, f->data_len, what, err);
        }
        if (rc)
            break;
    }
    if (!rc)
        rc = check_tiling(f, what, err);
done:
    json_decref(root);
    if (rc)
        st_free(f);
    return rc;
}

int st_read(struct st_file *f, const char *path, size_t max_bytes, char *err)
{
    assert(f && path);
    memset(f, 0, sizeof *f);
    uint8_t *buf;
    size_t len;
    int rc = read_whole_file(path, max_bytes, &buf, &len, err);
    if (rc)
        return rc;
    rc = st_parse(f, buf, len, path, err);
    if (rc) {
        free(buf);
        return rc;
    }
    f->owned = buf;
    return 0;
}

void st_free(struct st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->owned);
    memset(f, 0, sizeof *f);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_meta(const struct st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_tensor *const *)a)->name,
                  (*(const struct st_tensor *const *)b)->name);
}

static int cmp_spec_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_spec *const *)a)->name,
                  (*(const struct st_spec *const *)b)->name);
}

/* Both sides are sorted by name once, so matching is O(n log n) even for a
 * header with a great many entries. */
int st_expect_f32(const struct st_file *f, const struct st_spec *want, int n, const char *what,
                  char *err)
{
    assert(f && (want || n == 0) && n >= 0);
    const struct st_tensor **have = malloc(((size_t)f->n + 1) * sizeof *have);
    const struct st_spec **need = malloc(((size_t)n + 1) * sizeof *need);
    int rc = 0;
    if (!have || !need) {
        rc = strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", what);
        goto done;
    }
    for (int i = 0; i < f->n; i++)
        have[i] = &f->tensors[i];
    for (int i = 0; i < n; i++)
        need[i] = &want[i];
    qsort(have, (size_t)f->n, sizeof *have, cmp_tensor_name);
    qsort(need, (size_t)n, sizeof *need, cmp_spec_name);

    char s1[128], s2[128];
    for (int i = 0; i < n && !rc; i++) {
        const struct st_spec *w = &want[i];
        struct st_tensor key = {.name = (char *)w->name};
        const struct st_tensor *kp = &key;
        const struct st_tensor **hit = bsearch(&kp, have, (size_t)f->n, sizeof *have,
                                               cmp_tensor_name);
        if (!hit) {
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: tensor \"%.100s\" is missing (expected F32 %s)", what,
                             w->name, shape_str(s1, sizeof s1, w->ndim, w->shape));
            break;
        }
        const struct st_tensor *t = *hit;
        if (t->dtype != ST_F32) {
            rc = strata_fail(err, STRATA_E_UNSUPPORTED,
                             "%s: tensor \"%.100s\" has dtype %s; strata reads only F32", what,
                             w->name, dtype_table[t->dtype].name);
            break;
        }
        int same = t->ndim == w->ndim;
        for (int d = 0; same && d < w->ndim; d++)
            same = t->shape[d] == w->shape[d];
        if (!same)
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: tensor \"%.100s\" has shape %s, expected %s", what, w->name,
                             shape_str(s1, sizeof s1, t->ndim, t->shape),
                             shape_str(s2, sizeof s2, w->ndim, w->shape));
    }
    for (int i = 0; i < f->n && !rc; i++) {
        struct st_spec key = {.name = have[i]->name};
        const struct st_spec *kp = &key;
        if (!bsearch(&kp, need, (size_t)n, sizeof *need, cmp_spec_name))
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "%s: unexpected tensor \"%.100s\": the model has no such "
                             "parameter",
                             what, have[i]->name);
    }
done:
    free(have);
    free(need);
    return rc;
}

void st_copy_f32(const struct st_file *f, const struct st_tensor *t, float *dst)
{
    assert(t->dtype == ST_F32 && t->end <= f->data_len && (t->end - t->begin) % 4 == 0);
    size_t bytes = t->end - t->begin;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, f->data + t->begin, bytes);
#else
    const uint8_t *p = f->data + t->begin;
    for (size_t i = 0; i < bytes / 4; i++) {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
    }
#endif
}

static void put_f32_le(uint8_t *p, const float *src, size_t count)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, src, count * 4);
#else
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        p[4 * i] = (uint8_t)u;
        p[4 * i + 1] = (uint8_t)(u >> 8);
        p[4 * i + 2] = (uint8_t)(u >> 16);
        p[4 * i + 3] = (uint8_t)(u >> 24);
    }
#endif
}

static int cmp_out_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_out *const *)a)->name,
                  (*(const struct st_out *const *)b)->name);
}

int st_encode_f32(const struct st_out *t, int n, const char *const *meta_keys,
                  const char *const *meta_values, int n_meta, uint8_t **out, size_t *out_len,
                  char *err)
{
    assert((t || n == 0) && n >= 0 && n_meta >= 0 && out && out_len);
    *out = NULL;
    *out_len = 0;
    int rc = 0;
    json_t *root = json_object();
    const struct st_out **order = malloc(((size_t)n + 1) * sizeof *order);
    char *hdr = NULL;
    if (!root || !order) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory encoding safetensors");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        assert(t[i].name && t[i].ndim >= 0 && t[i].ndim <= ST_MAX_DIMS);
        if (!t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0) {
            rc = strata_fail(err, STRATA_E_ARG, "tensor %d has a reserved or empty name", i);
            goto done;
        }
        order[i] = &t[i];
    }
    /* The data is laid out in the header's (sorted) order, so offsets read
     * monotonically from the top of the header down. */
    qsort(order, (size_t)n, sizeof *order, cmp_out_name);
    if (n_meta) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta)) {
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory encoding safetensors");
            goto done;
        }
        for (int i = 0; i < n_meta; i++)
            if (json_object_set_new(meta, meta_keys[i], json_string(meta_values[i]))) {
                rc = strata_fail(err, STRATA_E_ARG,
                                 "metadata \"%.100s\" is not valid UTF-8 or out of memory",
                                 meta_keys[i]);
                goto done;
            }
    }
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const struct st_out *o = order[i];
        if (i && strcmp(o->name, order[i - 1]->name) == 0) {
            rc = strata_fail(err, STRATA_E_ARG, "tensor \"%.100s\" is given twice", o->name);
            goto done;
        }
        uint64_t bytes;
        for (int d = 0; d < o->ndim; d++)
            assert(o->shape[d] >= 0);
        if (span_bytes(o->ndim, o->shape, 4, &bytes) || bytes > SIZE_MAX - pos) {
            rc = strata_fail(err, STRATA_E_ARG, "tensor \"%.100s\" is too large", o->name);
            goto done;
        }
        json_t *shape = json_array(), *offs = json_array(), *e = json_object();
        int bad = !shape || !offs || !e;
        for (int d = 0; !bad && d < o->ndim; d++)
            bad = json_array_append_new(shape, json_integer(o->shape[d]));
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)pos)) ||
              json_array_append_new(offs, json_integer((json_int_t)(pos + bytes)));
        bad = bad || json_object_set_new(e, "dtype", json_string("F32"));
        bad = bad || json_object_set(e, "shape", shape) || json_object_set(e, "data_offsets", offs);
        bad = bad || json_object_set(root, o->name, e);
        json_decref(shape);
        json_decref(offs);
        json_decref(e);
        if (bad) {
            rc = strata_fail(err, STRATA_E_NOMEM,
                             "out of memory encoding safetensors (or tensor name \"%.100s\" "
                             "is not valid UTF-8)",
                             o->name);
            goto done;
        }
        pos += (size_t)bytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!hdr) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory encoding safetensors");
        goto done;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    size_t total = 8 + padded + pos;
    uint8_t *buf = malloc(total);
    if (!buf) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for %zu bytes", total);
        goto done;
    }
    le64_write(buf, padded);
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    uint8_t *p = buf + 8 + padded;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = 0;
        span_bytes(order[i]->ndim, order[i]->shape, 4, &bytes);
        if (bytes)
            put_f32_le(p, order[i]->data, (size_t)bytes / 4);
        p += bytes;
    }
    *out = buf;
    *out_len = total;
done:
    free(hdr);
    free(order);
    json_decref(root);
    return rc;
}

int st_write_f32(const char *path, const struct st_out *t, int n,
                 const char *const *meta_keys, const char *const *meta_values, int n_meta,
                 char *err)
{
    assert(path);
    uint8_t *buf;
    size_t len;
    int rc = st_encode_f32(t, n, meta_keys, meta_values, n_meta, &buf, &len, err);
    if (rc)
        return rc;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        free(buf);
        return strata_fail(err, STRATA_E_ARG, "%.200s...: path too long", path);
    }
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(buf);
        return rc;
    }
    int e = 0;
    if (fwrite(buf, 1, len, fp) != len)
        e = errno ? errno : EIO;
    if (fclose(fp) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    int ok = !e;
    free(buf);
    if (!ok) {
        unlink(tmp);
        return strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}
