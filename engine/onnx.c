/*
 * onnx.c — reads ONNX files (ModelProto, TensorProto) into a struct graph.
 *
 * The bytes are decoded by protobuf-c's code generated from onnx.proto, in
 * three steps:
 *
 *   1. A walk over the wire format, driven by the generated descriptors,
 *      before anything is decoded: it refuses framing that runs past its
 *      message, nesting deeper than PB_MAX_DEPTH (protobuf-c decodes nested
 *      messages recursively, so a deep file would exhaust the stack), and a
 *      file whose decoded form would take more than PB_BUDGET(len) bytes
 *      (every empty sub-message costs a whole struct: a few hostile bytes can
 *      ask for a hundred times their size).
 *   2. protobuf_c_message_unpack, with a malloc-based allocator, so that the
 *      buffers it makes for raw_data, float_data and int64_data can be taken
 *      over as the graph's own tensors without a copy.
 *   3. Conversion into the graph: initializers, inputs, nodes, outputs; then
 *      the decoded message is freed and graph_finish checks the whole.
 *
 * Peak memory is the file plus its decoded form, about twice the file (a
 * 105 MB model peaks at 209 MB). The file's buffer is freed right after
 * decoding when it is ours (onnx_load), and float32 and int64 tensors are
 * moved out of the decoded form, not copied: a loaded model holds its
 * weights once.
 *
 * Every count and shape is checked before its buffer is made: a tensor must
 * hold exactly the bytes or values its shape needs (so no allocation exceeds
 * eight times what the file holds), and external data must lie inside its
 * file, in the model's folder.
 */
#include "onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "readfile.h"
#include "status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx.c reads little-endian raw_data in place: port the tensor readers first"
#endif

/* Deepest nesting of messages accepted (a model is 0, its graph 1, a node 2,
 * an attribute 3, a subgraph 4 ...). */
#define PB_MAX_DEPTH 48
/* Bytes the decoded form of an n-byte file may take: packed small int64
 * values legitimately take 8 bytes per byte; anything beyond is refused. */
#define PB_BUDGET(n) ((uint64_t)(n) * 8 + ((uint64_t)64 << 20))

/* ---- protobuf-c memory ----------------------------------------------------
 * A plain malloc allocator: what protobuf-c allocates with it can be handed
 * to the graph, which frees with free(). */

static void *pb_alloc(void *ud, size_t n)
{
    (void)ud;
    return malloc(n ? n : 1);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

/* ---- wire-format walk (step 1) -------------------------------------------- */

/* Reads a varint of at most 10 bytes at p[*at..n). Returns 0, or -1 when it
 * is unterminated or runs past n. */
static int wire_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (*at >= n)
            return -1;
        uint8_t b = p[(*at)++];
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Size of one element of a repeated field in protobuf-c's arrays. */
static size_t wire_elt_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM: case PROTOBUF_C_TYPE_BOOL:
        return 4;
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 8;
    }
}

/* Elements in a packed run of len bytes of type t. */
static uint64_t wire_packed_count(ProtobufCType t, const uint8_t *p, size_t len)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
        return len / 4;
    case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return len / 8;
    default: {
        uint64_t c = 0;
        for (size_t i = 0; i < len; i++)
            c += !(p[i] & 0x80);
        return c;
    }
    }
}

/* Walks the message of descriptor d in p[0..n), adding to *cost an upper
 * bound of what protobuf-c will allocate to decode it: the struct, repeated
 * arrays, strings, bytes, unknown fields, plus the transient 32-byte record
 * it keeps per field occurrence and malloc's per-block overhead. Returns 0,
 * -1 on broken framing, -2 past PB_MAX_DEPTH. */
static int wire_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth,
                     uint64_t *cost)
{
    if (depth > PB_MAX_DEPTH)
        return -2;
    *cost += d->sizeof_message + 32;
    size_t at = 0;
    while (at < n) {
        uint64_t key, v;
        if (wire_varint(p, n, &at, &key) != 0)
            return -1;
        unsigned wt = (unsigned)(key & 7);
        uint64_t tag = key >> 3;
        const ProtobufCFieldDescriptor *f =
            tag > 0 && tag <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)tag) : NULL;
        int repeated = f && f->label == PROTOBUF_C_LABEL_REPEATED;
        size_t start = at, len;
        *cost += 64;
        switch (wt) {
        case 0:
            if (wire_varint(p, n, &at, &v) != 0)
                return -1;
            break;
        case 1:
        case 5:
            len = wt == 1 ? 8 : 4;
            if (n - at < len)
                return -1;
            at += len;
            break;
        case 2:
            if (wire_varint(p, n, &at, &v) != 0 || v > n - at)
                return -1;
            start = at;
            len = (size_t)v;
            at += len;
            if (!f)
                break;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = wire_walk(f->descriptor, p + start, len, depth + 1, cost);
                if (rc != 0)
                    return rc;
                *cost += repeated ? 8 : 0;
            } else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
                *cost += len + 1 + 32 + (repeated ? wire_elt_size(f->type) : 0);
            } else if (repeated) {
                *cost += wire_packed_count(f->type, p + start, len) * wire_elt_size(f->type) + 32;
            }
            continue;
        default:
            return -1;
        }
        if (!f)
            *cost += sizeof(ProtobufCMessageUnknownField) + (at - start) + 32;
        else if (repeated)
            *cost += wire_elt_size(f->type);
    }
    return 0;
}

/* Step 1 then step 2 for one top-level message. `what` names the file. */
static ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *bytes,
                                   size_t len, const char *what, int *rc, char *err)
{
    uint64_t cost = 0;
    int w = wire_walk(d, bytes, len, 0, &cost);
    if (w == -1) {
        *rc = strata_fail(err, STRATA_E_FORMAT,
                          "%s: not a valid %s (the protobuf framing is broken: truncated or "
                          "corrupt file)", what, d->short_name);
        return NULL;
    }
    if (w == -2) {
        *rc = strata_fail(err, STRATA_E_LIMIT,
                          "%s: messages nested more than %d deep; refusing to decode it",
                          what, PB_MAX_DEPTH);
        return NULL;
    }
    if (cost > PB_BUDGET(len)) {
        *rc = strata_fail(err, STRATA_E_LIMIT,
                          "%s: %zu bytes that would decode into about %" PRIu64 " MB of "
                          "structures, more than a real model needs; the file is likely "
                          "corrupt", what, len, cost >> 20);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &pb_allocator, len, bytes);
    if (!m)
        *rc = strata_fail(err, STRATA_E_FORMAT,
                          "%s: not a valid %s (a field has the wrong type, or memory ran "
                          "out)", what, d->short_name);
    return m;
}

Onnx__ModelProto *onnx_unpack_model(const uint8_t *bytes, size_t len, const char *what,
                                    char *err)
{
    int rc = 0;
    return (Onnx__ModelProto *)pb_unpack(&onnx__model_proto__descriptor, bytes, len, what, &rc,
                                         err);
}

void onnx_model_free(Onnx__ModelProto *m)
{
    if (m)
        protobuf_c_message_free_unpacked(&m->base, &pb_allocator);
}

/* ---- metadata ------------------------------------------------------------- */

int onnx_read_metadata(const char *path, struct onnx_metadata *md, char *err)
{
    memset(md, 0, sizeof *md);
    uint8_t *buf;
    size_t len;
    int rc = read_whole_file(path, ONNX_MAX_FILE_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    Onnx__ModelProto *m = onnx_unpack_model(buf, len, path, err);
    free(buf);
    if (!m)
        return STRATA_E_FORMAT;
    size_t n = m->n_metadata_props;
    md->keys = calloc(n + 1, sizeof *md->keys);
    md->values = calloc(n + 1, sizeof *md->values);
    rc = md->keys && md->values ? 0 : STRATA_E_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Onnx__StringStringEntryProto *e = m->metadata_props[i];
        if (!e || !e->key)
            continue;
        md->keys[md->n] = strdup(e->key);
        md->values[md->n] = strdup(e->value ? e->value : "");
        if (!md->keys[md->n] || !md->values[md->n]) {
            free(md->keys[md->n]);
            free(md->values[md->n]);
            rc = STRATA_E_NOMEM;
            break;
        }
        md->n++;
    }
    onnx_model_free(m);
    if (rc) {
        onnx_metadata_free(md);
        return strata_fail(err, rc, "%s: out of memory reading its metadata", path);
    }
    return 0;
}

const char *onnx_metadata_get(const struct onnx_metadata *md, const char *key)
{
    for (int i = 0; i < md->n; i++)
        if (strcmp(md->keys[i], key) == 0)
            return md->values[i];
    return NULL;
}

void onnx_metadata_free(struct onnx_metadata *md)
{
    for (int i = 0; i < md->n; i++) {
        free(md->keys[i]);
        free(md->values[i]);
    }
    free(md->keys);
    free(md->values);
    memset(md, 0, sizeof *md);
}

/* ---- messages ------------------------------------------------------------- */

static const char *const dtype_names[] = {
    "undefined", "float32", "uint8", "int8", "uint16", "int16", "int32", "int64", "string",
    "bool", "float16", "float64", "uint32", "uint64", "complex64", "complex128", "bfloat16",
};

static const char *dtype_name(int32_t t)
{
    if (t >= 0 && (size_t)t < sizeof dtype_names / sizeof dtype_names[0])
        return dtype_names[t];
    return "unknown";
}

/* "64x3x7x7", or "scalar" for no dims. */
static const char *shape_format(const int64_t *dims, size_t n, char *buf, size_t cap)
{
    if (n == 0) {
        snprintf(buf, cap, "scalar");
        return buf;
    }
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && at < cap; i++) {
        int w = snprintf(buf + at, cap - at, "%s%" PRId64, i ? "x" : "", dims[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    return buf;
}

/* Puts "prefix: " in front of the message already in err. */
static void err_prefix(char *err, const char *prefix)
{
    if (!err)
        return;
    char tmp[STRATA_ERR_LEN];
    snprintf(tmp, sizeof tmp, "%s: %s", prefix, err);
    memcpy(err, tmp, sizeof tmp);
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

/* ---- the loader's state ---------------------------------------------------- */

struct loader {
    struct graph *g;
    const char *label;      /* the file's path, or "model" for bytes */
    const char *dir;        /* folder external data lives in, or NULL */
};

/* Adds a value named `name` of the given kind. Returns its index or a
 * negative status. */
static int value_new(struct loader *L, const char *name, enum value_kind kind, char *err)
{
    int v = graph_add_value(L->g, name, kind, err);
    if (v < 0)
        err_prefix(err, L->label);
    return v;
}

/* ---- tensors ---------------------------------------------------------------- */

/* What a TensorProto element type becomes: bytes per element in raw form,
 * the dtype it is converted to, and which typed field holds it. */
enum typed_field { TF_NONE, TF_FLOAT, TF_DOUBLE, TF_INT32, TF_INT64, TF_UINT64 };

struct elem_info {
    size_t size;            /* bytes per element in raw_data; 0 = unsupported */
    enum dtype dtype;
    enum typed_field field;
};

static struct elem_info elem_info(int32_t t)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return (struct elem_info){4, DTYPE_FLOAT, TF_FLOAT};
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return (struct elem_info){8, DTYPE_FLOAT, TF_DOUBLE};
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return (struct elem_info){2, DTYPE_FLOAT, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return (struct elem_info){2, DTYPE_FLOAT, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return (struct elem_info){8, DTYPE_INT64, TF_INT64};
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return (struct elem_info){4, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return (struct elem_info){2, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return (struct elem_info){2, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (struct elem_info){1, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return (struct elem_info){1, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return (struct elem_info){1, DTYPE_INT64, TF_INT32};
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return (struct elem_info){4, DTYPE_INT64, TF_UINT64};
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return (struct elem_info){8, DTYPE_INT64, TF_UINT64};
    default: return (struct elem_info){0, DTYPE_FLOAT, TF_NONE};
    }
}

/* IEEE binary16 -> binary32, exactly: same sign, exponent rebiased from 15 to
 * 127, mantissa widened from 10 to 23 bits; a subnormal half (exponent 0,
 * value m·2^-24) is normalised by shifting m until its leading bit reaches
 * bit 10, one exponent step per shift. Integer operations only, so NaN and
 * infinity pass through without raising floating-point exceptions. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (m << 13);
    } else if (e) {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    } else if (!m) {
        bits = sign;
    } else {
        uint32_t s = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            s++;
        }
        bits = sign | ((113u - s) << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* bfloat16 is the top half of a binary32. */
static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Element i of little-endian raw bytes of type t, as int64 (integer types). */
static int64_t raw_int(int32_t t, const uint8_t *p, size_t i)
{
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)p[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return p[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return p[i] != 0;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    default: { int64_t v; memcpy(&v, p + 8 * i, 8); return v; }  /* INT64, UINT64 checked by caller */
    }
}

/* A double narrowed to float; fails (returns -1) for finite values outside
 * float's range, which would silently become infinities. */
static int narrow_double(double d, float *out)
{
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return -1;
    *out = (float)d;
    return 0;
}

/* Parses a decimal string of digits only into *v. Returns 0 or -1. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s)
        return -1;
    uint64_t x = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        unsigned d = (unsigned)(*c - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* Reads `need` bytes of a tensor stored outside the model (data_location
 * EXTERNAL): location relative to L->dir, offset and length optional. *buf
 * gets a malloc'd copy (at least 1 byte). */
static int external_read(const struct loader *L, const Onnx__TensorProto *tp, size_t need,
                         const char *what, uint8_t **buf, char *err)
{
    *buf = NULL;
    if (!L->dir)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: %s keeps its data in an external file, which cannot be found "
                           "for a model given as bytes: load the model from its file",
                           L->label, what);
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        const char *k = str_or_empty(e->key);
        if (strcmp(k, "location") == 0)
            loc = e->value;
        else if (strcmp(k, "offset") == 0)
            off_s = e->value;
        else if (strcmp(k, "length") == 0)
            len_s = e->value;
    }
    if (!loc || !*loc)
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: %s is marked as external data but names no location",
                           L->label, what);
    if (loc[0] == '/')
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: %s: external data location '%s' is an absolute path; it must "
                           "be relative to the model's folder", L->label, what, loc);
    for (const char *c = loc; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: %s: external data location '%s' leaves the model's folder "
                               "('..'); refusing it", L->label, what, loc);
        c += n;
        c += *c == '/';
    }
    uint64_t off = 0, length = need;
    if (off_s && parse_u64(off_s, &off) != 0)
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s: external data offset '%s' is not a "
                           "number of bytes", L->label, what, off_s);
    if (len_s && parse_u64(len_s, &length) != 0)
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s: external data length '%s' is not a "
                           "number of bytes", L->label, what, len_s);
    if (length != need) {
        char shape[128];
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: %s: external data length is %" PRIu64 " bytes, but its %s shape "
                           "%s needs %zu", L->label, what, length,
                           dtype_name(tp->data_type),
                           shape_format(tp->dims, tp->n_dims, shape, sizeof shape), need);
    }
    size_t plen = strlen(L->dir) + 1 + strlen(loc) + 1;
    char *path = malloc(plen);
    if (!path)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
    snprintf(path, plen, "%s/%s", L->dir, loc);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int rc = strata_fail(err, e == ENOENT ? STRATA_E_NOTFOUND : STRATA_E_IO,
                             "%s: %s: cannot open its external data file %s: %s", L->label,
                             what, path, strerror(e));
        free(path);
        return rc;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = strata_fail(err, STRATA_E_IO, "%s: %s: external data %s is not a regular file",
                         L->label, what, path);
    } else if (off > (uint64_t)st.st_size || need > (uint64_t)st.st_size - off) {
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "%s: %s: external data at offset %" PRIu64 " + %zu bytes runs past "
                         "the end of %s (%" PRIu64 " bytes)", L->label, what, off, need, path,
                         (uint64_t)st.st_size);
    } else if (!(*buf = malloc(need ? need : 1))) {
        rc = strata_fail(err, STRATA_E_NOMEM, "%s: %s: out of memory for %zu bytes", L->label,
                         what, need);
    } else {
        size_t got = 0;
        while (got < need) {
            ssize_t r = pread(fd, *buf + got, need - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rc = strata_fail(err, STRATA_E_IO, "%s: %s: reading %s failed: %s", L->label,
                                 what, path, r < 0 ? strerror(errno) : "file shrank");
                free(*buf);
                *buf = NULL;
                break;
            }
            got += (size_t)r;
        }
    }
    close(fd);
    free(path);
    return rc;
}

/* Converts tp into t: float or int64, data malloc'd (at least 1 byte, so an
 * empty tensor still has data != NULL). Buffers protobuf-c made that already
 * hold the result (float or int64 raw_data, float_data, int64_data) are
 * moved out of tp rather than copied. `what` names the tensor in messages. */
static int tensor_convert(const struct loader *L, Onnx__TensorProto *tp, const char *what,
                          struct tview *t, char *err)
{
    char shape[160];
    memset(t, 0, sizeof *t);
    shape_format(tp->dims, tp->n_dims, shape, sizeof shape);
    if (tp->n_dims > OP_MAX_DIMS)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: %s has %zu dimensions (%s); strata handles at most %d",
                           L->label, what, tp->n_dims, shape, OP_MAX_DIMS);
    int64_t count = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t d = tp->dims[i];
        if (d < 0)
            return strata_fail(err, STRATA_E_FORMAT, "%s: %s: dimension %zu of its shape %s is "
                               "negative", L->label, what, i, shape);
        if (d && count > INT64_MAX / d)
            return strata_fail(err, STRATA_E_FORMAT, "%s: %s: its shape %s has more elements "
                               "than any file can hold", L->label, what, shape);
        count *= d;
        t->dims[i] = d;
    }
    t->ndim = (int)tp->n_dims;
    int32_t type = tp->has_data_type ? tp->data_type : 0;
    if (type == ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED)
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s has no element type", L->label, what);
    struct elem_info ei = elem_info(type);
    if (!ei.size)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: %s has element type %s (%d); strata reads float and integer "
                           "tensors only", L->label, what, dtype_name(type), (int)type);
    if (tp->segment)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: %s is split into segments, which strata does not read",
                           L->label, what);
    t->dtype = ei.dtype;
    size_t out_size = ei.dtype == DTYPE_FLOAT ? 4 : 8;
    /* float32 and int64 bytes already are the result. */
    int as_is = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    if ((uint64_t)count > SIZE_MAX / 8)
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s: its shape %s has more elements than "
                           "any file can hold", L->label, what, shape);
    size_t n = (size_t)count;

    /* Raw bytes: inline raw_data, or read from the external file. */
    const uint8_t *raw = NULL;
    uint8_t *raw_owned = NULL;
    int is_raw = 0;
    if (tp->has_data_location &&
        tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        int rc = external_read(L, tp, n * ei.size, what, &raw_owned, err);
        if (rc)
            return rc;
        raw = raw_owned;
        is_raw = 1;
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != n * ei.size)
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: %s: raw_data holds %zu bytes, but its %s shape %s needs %zu",
                               L->label, what, tp->raw_data.len, dtype_name(type), shape,
                               n * ei.size);
        raw = tp->raw_data.data;
        is_raw = 1;
    }
    if (is_raw) {
        if (as_is && raw_owned) {
            t->data = raw_owned;
            return 0;
        }
        if (as_is && raw) {
            t->data = tp->raw_data.data;
            tp->raw_data.data = NULL;
            tp->raw_data.len = 0;
            tp->has_raw_data = 0;
            return 0;
        }
        /* Converted element by element (nothing to do for an empty float32
         * or int64 tensor, which still gets its 1-byte buffer). */
        void *out = malloc(n ? n * out_size : 1);
        if (!out) {
            free(raw_owned);
            return strata_fail(err, STRATA_E_NOMEM, "%s: %s: out of memory for %zu bytes",
                               L->label, what, n * out_size);
        }
        int rc = 0;
        float *f = out;
        int64_t *q = out;
        for (size_t i = 0; i < n && !rc; i++) {
            switch (type) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
                double d;
                memcpy(&d, raw + 8 * i, 8);
                if (narrow_double(d, f + i) != 0)
                    rc = strata_fail(err, STRATA_E_UNSUPPORTED, "%s: %s: float64 value %g at "
                                     "index %zu is outside float32's range", L->label, what,
                                     d, i);
                break;
            }
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
            case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: {
                uint16_t h;
                memcpy(&h, raw + 2 * i, 2);
                f[i] = type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? half_to_float(h)
                                                                       : bf16_to_float(h);
                break;
            }
            default: /* the integer types; float32 and int64 were taken as they are */
                q[i] = raw_int(type, raw, i);
                if (type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64 && q[i] < 0)
                    rc = strata_fail(err, STRATA_E_UNSUPPORTED, "%s: %s: uint64 value %" PRIu64
                                     " at index %zu does not fit in int64", L->label, what,
                                     (uint64_t)q[i], i);
                break;
            }
        }
        free(raw_owned);
        if (rc) {
            free(out);
            return rc;
        }
        t->data = out;
        return 0;
    }

    /* Typed fields. */
    size_t have = 0;
    const char *field = "";
    switch (ei.field) {
    case TF_FLOAT: have = tp->n_float_data; field = "float_data"; break;
    case TF_DOUBLE: have = tp->n_double_data; field = "double_data"; break;
    case TF_INT32: have = tp->n_int32_data; field = "int32_data"; break;
    case TF_INT64: have = tp->n_int64_data; field = "int64_data"; break;
    case TF_UINT64: have = tp->n_uint64_data; field = "uint64_data"; break;
    case TF_NONE: break;
    }
    if (have != n) {
        if (!have)
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: %s holds no data, but its %s shape %s needs %zu values",
                               L->label, what, dtype_name(type), shape, n);
        return strata_fail(err, STRATA_E_FORMAT,
                           "%s: %s: %s holds %zu values, but its %s shape %s needs %zu",
                           L->label, what, field, have, dtype_name(type), shape, n);
    }
    if (ei.field == TF_FLOAT && n) {
        t->data = tp->float_data;
        tp->float_data = NULL;
        tp->n_float_data = 0;
        return 0;
    }
    if (ei.field == TF_INT64 && n) {
        t->data = tp->int64_data;
        tp->int64_data = NULL;
        tp->n_int64_data = 0;
        return 0;
    }
    void *out = malloc(n ? n * out_size : 1);
    if (!out)
        return strata_fail(err, STRATA_E_NOMEM, "%s: %s: out of memory for %zu bytes",
                           L->label, what, n * out_size);
    float *f = out;
    int64_t *q = out;
    for (size_t i = 0; i < n; i++) {
        switch (type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            if (narrow_double(tp->double_data[i], f + i) != 0) {
                free(out);
                return strata_fail(err, STRATA_E_UNSUPPORTED, "%s: %s: float64 value %g at "
                                   "index %zu is outside float32's range", L->label, what,
                                   tp->double_data[i], i);
            }
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
            f[i] = half_to_float((uint16_t)tp->int32_data[i]);
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
            f[i] = bf16_to_float((uint16_t)tp->int32_data[i]);
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
            q[i] = tp->int32_data[i] != 0;
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
            if (tp->uint64_data[i] > INT64_MAX) {
                free(out);
                return strata_fail(err, STRATA_E_UNSUPPORTED, "%s: %s: uint64 value %" PRIu64
                                   " at index %zu does not fit in int64", L->label, what,
                                   tp->uint64_data[i], i);
            }
            q[i] = (int64_t)tp->uint64_data[i];
            break;
        default: /* the int32_data integer types */
            q[i] = tp->int32_data[i];
            break;
        }
    }
    t->data = out;
    return 0;
}

/* ---- graph inputs ------------------------------------------------------------ */

static int input_add(struct loader *L, const Onnx__ValueInfoProto *vi, char *err)
{
    const char *name = str_or_empty(vi->name);
    if (!*name)
        return strata_fail(err, STRATA_E_FORMAT, "%s: a graph input has no name", L->label);
    int v = graph_find_value(L->g, name);
    if (v >= 0) {
        if (L->g->values[v].kind == VALUE_INITIALIZER)
            return 0; /* IR 3 lists initializers among the inputs */
        return strata_fail(err, STRATA_E_FORMAT, "%s: graph input '%s' is listed twice",
                           L->label, name);
    }
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: graph input '%s' is not a tensor (a sequence, map or optional "
                           "value, or no type at all); strata takes tensor inputs only",
                           L->label, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int32_t et = tt->has_elem_type ? tt->elem_type : 0;
    enum dtype dt;
    if (et == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        dt = DTYPE_FLOAT;
    else if (et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        dt = DTYPE_INT64;
    else
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: graph input '%s' has element type %s; strata feeds float32 "
                           "(or int64) inputs: export the model with a float32 input",
                           L->label, name, dtype_name(et));
    if (!tt->shape)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: graph input '%s' declares no shape; strata needs at least its "
                           "rank (re-export with the input's shape)", L->label, name);
    if (tt->shape->n_dim > OP_MAX_DIMS)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: graph input '%s' has %zu dimensions; strata handles at most %d",
                           L->label, name, tt->shape->n_dim, OP_MAX_DIMS);
    struct tview decl = {.dtype = dt, .ndim = (int)tt->shape->n_dim};
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        decl.dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return strata_fail(err, STRATA_E_FORMAT,
                                   "%s: graph input '%s': dimension %zu is %" PRId64,
                                   L->label, name, i, d->dim_value);
            decl.dims[i] = d->dim_value;
        }
    }
    v = value_new(L, name, VALUE_INPUT, err);
    if (v < 0)
        return v;
    L->g->values[v].init = decl;
    struct graph *g = L->g;
    g->inputs[g->n_inputs++] = v;
    return 0;
}

/* ---- nodes -------------------------------------------------------------------- */

/* Attribute type as stored, or guessed from the fields set when the file
 * predates the type field (IR 1). */
static Onnx__AttributeProto__AttributeType attr_kind(const Onnx__AttributeProto *a)
{
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return a->type;
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

/* Converts one attribute into *out. Returns 1 when stored, 0 when skipped (a
 * graph, sparse tensor, list of strings/tensors/graphs: kept out of the node,
 * which an op that needs it refuses as missing), or a negative status. */
static int attr_convert(const struct loader *L, const struct node *node,
                        Onnx__AttributeProto *a, struct attr *out, char *err)
{
    const char *name = str_or_empty(a->name);
    if (!*name)
        return strata_fail(err, STRATA_E_FORMAT, "%s: node '%s' (%s): an attribute has no name",
                           L->label, node->name, node->op_type);
    switch (attr_kind(a)) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        out->type = ATTR_FLOAT;
        out->f = a->f;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        out->type = ATTR_INT;
        out->i = a->i;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        out->type = ATTR_STRING;
        out->s = malloc(a->s.len + 1);
        if (!out->s)
            return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
        if (a->s.len)
            memcpy(out->s, a->s.data, a->s.len);
        out->s[a->s.len] = 0;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        out->type = ATTR_TENSOR;
        if (!a->t)
            return strata_fail(err, STRATA_E_FORMAT, "%s: node '%s' (%s): attribute '%s' is a "
                               "tensor but holds none", L->label, node->name, node->op_type,
                               name);
        char what[STRATA_ERR_LEN / 2];
        snprintf(what, sizeof what, "node '%s' (%s): attribute '%s'", node->name,
                 node->op_type, name);
        int rc = tensor_convert(L, a->t, what, &out->t, err);
        if (rc)
            return rc;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: {
        int floats = attr_kind(a) == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        size_t n = floats ? a->n_floats : a->n_ints;
        if (n > INT_MAX)
            return strata_fail(err, STRATA_E_LIMIT, "%s: node '%s' (%s): attribute '%s' has "
                               "%zu values", L->label, node->name, node->op_type, name, n);
        out->type = floats ? ATTR_FLOATS : ATTR_INTS;
        out->n = (int)n;
        size_t esz = floats ? sizeof(float) : sizeof(int64_t);
        void *p = malloc(n ? n * esz : 1);
        if (!p)
            return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
        if (n)
            memcpy(p, floats ? (void *)a->floats : (void *)a->ints, n * esz);
        if (floats)
            out->floats = p;
        else
            out->ints = p;
        break;
    }
    default:
        return 0;
    }
    out->name = strdup(name);
    if (!out->name)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
    return 1;
}

/* The value a node reads, created on first mention (a later node may produce
 * it; graph_finish checks that something does). */
static int node_input_value(struct loader *L, const char *name, char *err)
{
    int v = graph_find_value(L->g, name);
    return v >= 0 ? v : value_new(L, name, VALUE_NODE, err);
}

static int node_add(struct loader *L, Onnx__NodeProto *np, size_t file_index, char *err)
{
    struct graph *g = L->g;
    const char *op_type = str_or_empty(np->op_type);
    if (!*op_type)
        return strata_fail(err, STRATA_E_FORMAT, "%s: node %zu ('%s') has no op_type",
                           L->label, file_index, str_or_empty(np->name));
    if (np->n_input > GRAPH_MAX_ENTRIES || np->n_output > GRAPH_MAX_ENTRIES ||
        np->n_attribute > GRAPH_MAX_ENTRIES)
        return strata_fail(err, STRATA_E_LIMIT, "%s: node %zu (%s) has too many inputs, "
                           "outputs or attributes", L->label, file_index, op_type);
    int ni = graph_add_node(g, err);
    if (ni < 0) {
        err_prefix(err, L->label);
        return ni;
    }
    struct node *node = &g->nodes[ni];
    node->opset = (int)g->opset;

    /* A node of another domain (com.microsoft, ai.onnx.ml ...) keeps its
     * domain in its op_type, "domain:Op", which no op is named: graph_finish
     * then lists it with the unsupported ops. */
    const char *domain = str_or_empty(np->domain);
    int foreign = *domain && strcmp(domain, "ai.onnx") != 0;
    size_t tlen = strlen(op_type) + (foreign ? strlen(domain) + 1 : 0) + 1;
    node->op_type = malloc(tlen);
    if (!node->op_type)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
    snprintf(node->op_type, tlen, "%s%s%s", foreign ? domain : "", foreign ? ":" : "", op_type);
    if (np->name && *np->name) {
        node->name = strdup(np->name);
    } else {
        size_t nlen = strlen(op_type) + 24;
        node->name = malloc(nlen);
        if (node->name)
            snprintf(node->name, nlen, "%s_%zu", op_type, file_index);
    }
    if (!node->name)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);

    /* Optional outputs left out at the end ("") are dropped; one left out
     * in the middle gets a value of its own, named "" like the file names it,
     * which no input can refer to ("" is an absent input). */
    size_t n_out = np->n_output;
    while (n_out && !*str_or_empty(np->output[n_out - 1]))
        n_out--;
    node->inputs = malloc((np->n_input ? np->n_input : 1) * sizeof(int));
    node->outputs = malloc((n_out ? n_out : 1) * sizeof(int));
    node->attrs = calloc(np->n_attribute ? np->n_attribute : 1, sizeof(struct attr));
    if (!node->inputs || !node->outputs || !node->attrs)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);

    for (size_t i = 0; i < np->n_input; i++) {
        const char *name = str_or_empty(np->input[i]);
        int v = -1;
        if (*name && (v = node_input_value(L, name, err)) < 0)
            return v;
        node->inputs[node->n_inputs++] = v;
    }
    for (size_t j = 0; j < n_out; j++) {
        const char *name = str_or_empty(np->output[j]);
        int v = *name ? graph_find_value(g, name) : -1;
        if (v < 0) {
            if ((v = value_new(L, name, VALUE_NODE, err)) < 0)
                return v;
        } else if (g->values[v].kind != VALUE_NODE) {
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: node '%s' (%s) writes '%s', which is already a graph %s",
                               L->label, node->name, node->op_type, name,
                               g->values[v].kind == VALUE_INPUT ? "input" : "initializer");
        } else if (g->values[v].producer >= 0) {
            const struct node *other = &g->nodes[g->values[v].producer];
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: '%s' is written by both node '%s' (%s) and node '%s' (%s)",
                               L->label, name, other->name, other->op_type, node->name,
                               node->op_type);
        }
        g->values[v].producer = ni;
        node->outputs[node->n_outputs++] = v;
    }
    for (size_t k = 0; k < np->n_attribute; k++) {
        int rc = attr_convert(L, node, np->attribute[k], &node->attrs[node->n_attrs], err);
        if (rc < 0) {
            node->n_attrs++; /* partly filled: graph_deinit frees what it holds */
            return rc;
        }
        node->n_attrs += rc;
    }
    return 0;
}

/* ---- the model ----------------------------------------------------------------- */

/* The default-domain opset the model imports, checked against the supported
 * range. */
static int model_opset(const struct loader *L, const Onnx__ModelProto *m, int64_t *opset,
                       char *err)
{
    int64_t v = 0;
    int found = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *d = str_or_empty(o->domain);
        if (*d && strcmp(d, "ai.onnx") != 0)
            continue;
        if (!o->has_version)
            return strata_fail(err, STRATA_E_FORMAT, "%s: the ONNX opset import has no version",
                               L->label);
        if (found && o->version != v)
            return strata_fail(err, STRATA_E_FORMAT, "%s: the model imports two ONNX opsets, "
                               "%" PRId64 " and %" PRId64, L->label, v, o->version);
        v = o->version;
        found = 1;
    }
    if (!found) {
        const Onnx__OperatorSetIdProto *o = m->n_opset_import ? m->opset_import[0] : NULL;
        if (o)
            return strata_fail(err, STRATA_E_UNSUPPORTED,
                               "%s: the model imports no standard ONNX opset, only %s%s "
                               "(version %" PRId64 "), which strata does not read",
                               L->label, str_or_empty(o->domain),
                               m->n_opset_import > 1 ? " and others" : "", o->version);
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: the model imports no ONNX opset (IR version %" PRId64 ", older "
                           "than opsets); strata reads opsets %d to %d: re-export the model",
                           L->label, m->has_ir_version ? m->ir_version : 0, ONNX_MIN_OPSET,
                           ONNX_MAX_OPSET);
    }
    if (v < ONNX_MIN_OPSET || v > ONNX_MAX_OPSET)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: the model uses ONNX opset %" PRId64 "; strata reads opsets %d to "
                           "%d: re-export it with an opset in that range (e.g. opset_version=13 "
                           "in torch.onnx.export)", L->label, v, ONNX_MIN_OPSET, ONNX_MAX_OPSET);
    *opset = v;
    return 0;
}

static int model_build(struct loader *L, Onnx__ModelProto *m, char *err)
{
    struct graph *g = L->g;
    int rc = model_opset(L, m, &g->opset, err);
    if (rc)
        return rc;
    Onnx__GraphProto *gp = m->graph;
    if (!gp)
        return strata_fail(err, STRATA_E_FORMAT, "%s: the model holds no graph", L->label);
    if (gp->n_sparse_initializer)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: the graph has %zu sparse initializers, which strata does not "
                           "read", L->label, gp->n_sparse_initializer);
    if (gp->n_initializer > GRAPH_MAX_ENTRIES || gp->n_input > GRAPH_MAX_ENTRIES ||
        gp->n_output > GRAPH_MAX_ENTRIES || gp->n_node > GRAPH_MAX_ENTRIES)
        return strata_fail(err, STRATA_E_LIMIT, "%s: the graph has more than %d nodes, inputs, "
                           "outputs or initializers", L->label, GRAPH_MAX_ENTRIES);

    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        const char *name = str_or_empty(tp->name);
        if (!*name)
            return strata_fail(err, STRATA_E_FORMAT, "%s: initializer %zu has no name",
                               L->label, i);
        if (graph_find_value(L->g, name) >= 0)
            return strata_fail(err, STRATA_E_FORMAT, "%s: initializer '%s' is given twice",
                               L->label, name);
        char what[STRATA_ERR_LEN / 2];
        snprintf(what, sizeof what, "initializer '%s'", name);
        struct tview t;
        rc = tensor_convert(L, tp, what, &t, err);
        if (rc)
            return rc;
        int v = value_new(L, name, VALUE_INITIALIZER, err);
        if (v < 0) {
            free(t.data);
            return v;
        }
        g->values[v].init = t;
        /* What the graph did not take over is no longer needed. */
        protobuf_c_message_free_unpacked(&tp->base, &pb_allocator);
        gp->initializer[i] = NULL;
    }

    g->inputs = malloc((gp->n_input ? gp->n_input : 1) * sizeof(int));
    if (!g->inputs)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
    for (size_t i = 0; i < gp->n_input; i++)
        if ((rc = input_add(L, gp->input[i], err)) != 0)
            return rc;

    for (size_t i = 0; i < gp->n_node; i++)
        if ((rc = node_add(L, gp->node[i], i, err)) != 0)
            return rc;

    g->outputs = malloc((gp->n_output ? gp->n_output : 1) * sizeof(int));
    if (!g->outputs)
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", L->label);
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = str_or_empty(gp->output[i]->name);
        if (!*name)
            return strata_fail(err, STRATA_E_FORMAT, "%s: graph output %zu has no name",
                               L->label, i);
        int v = graph_find_value(L->g, name);
        if (v < 0 || (g->values[v].kind == VALUE_NODE && g->values[v].producer < 0))
            return strata_fail(err, STRATA_E_FORMAT,
                               "%s: graph output '%s' is computed by no node", L->label, name);
        g->outputs[g->n_outputs++] = v;
    }
    return 0;
}

/* Frees *owned (if any) right after decoding, so the file and its decoded
 * form are not both held longer than needed. */
static int load_model(struct graph *g, const uint8_t *bytes, size_t len, uint8_t *owned,
                      const char *dir, const char *label, char *err)
{
    if (len > ONNX_MAX_FILE_BYTES) {
        free(owned);
        return strata_fail(err, STRATA_E_LIMIT, "%s: %zu bytes, over the %zu bytes a model may "
                           "hold", label, len, ONNX_MAX_FILE_BYTES);
    }
    int rc = 0;
    ProtobufCMessage *msg = pb_unpack(&onnx__model_proto__descriptor, bytes, len, label, &rc,
                                      err);
    free(owned);
    if (!msg)
        return rc;
    struct loader L = {.g = g, .label = label, .dir = dir};
    rc = model_build(&L, (Onnx__ModelProto *)msg, err);
    protobuf_c_message_free_unpacked(msg, &pb_allocator);
    if (!rc) {
        rc = graph_finish(g, err);
        if (rc)
            err_prefix(err, label);
    }
    if (rc)
        graph_deinit(g);
    return rc;
}

int onnx_load_bytes(struct graph *g, const uint8_t *bytes, size_t len, const char *dir,
                    char *err)
{
    return load_model(g, bytes, len, NULL, dir, "model", err);
}

/* The folder part of path ("." when it has none), malloc'd. */
static char *path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

int onnx_load(struct graph *g, const char *path, char *err)
{
    uint8_t *buf;
    size_t len;
    int rc = read_whole_file(path, ONNX_MAX_FILE_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    char *dir = path_dir(path);
    if (!dir) {
        free(buf);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path);
    }
    rc = load_model(g, buf, len, buf, dir, path, err);
    free(dir);
    return rc;
}

/* ---- TensorProto files ---------------------------------------------------------- */

/* Whether the message in b[0..n) has a top-level field 1 of wire type 2.
 * ONNX writes TensorProto's field 1 (dims) as varints, while field 1 of the
 * other values a test case may hold (SequenceProto, OptionalProto, MapProto)
 * is their name, a string. */
static int wire_field1_is_bytes(const uint8_t *b, size_t n)
{
    size_t at = 0;
    uint64_t key, v;
    while (at < n && wire_varint(b, n, &at, &key) == 0) {
        switch (key & 7) {
        case 0: if (wire_varint(b, n, &at, &v) != 0) return 0; break;
        case 1: at += 8; break;
        case 5: at += 4; break;
        case 2:
            if (key >> 3 == 1)
                return 1;
            if (wire_varint(b, n, &at, &v) != 0 || v > n - at)
                return 0;
            at += (size_t)v;
            break;
        default: return 0;
        }
    }
    return 0;
}

static int read_tensor(struct tview *t, const uint8_t *b, size_t n, const char *dir,
                       const char *label, char *err)
{
    memset(t, 0, sizeof *t);
    if (n > ONNX_MAX_FILE_BYTES)
        return strata_fail(err, STRATA_E_LIMIT, "%s: %zu bytes, over the %zu bytes a tensor "
                           "may hold", label, n, ONNX_MAX_FILE_BYTES);
    int rc = 0;
    ProtobufCMessage *msg = pb_unpack(&onnx__tensor_proto__descriptor, b, n, label, &rc, err);
    Onnx__TensorProto *tp = (Onnx__TensorProto *)msg;
    if (msg && tp->has_data_type && tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED) {
        char what[STRATA_ERR_LEN / 2] = "the tensor";
        if (tp->name && *tp->name)
            snprintf(what, sizeof what, "tensor '%s'", tp->name);
        struct loader L = {.label = label, .dir = dir};
        rc = tensor_convert(&L, tp, what, t, err);
        protobuf_c_message_free_unpacked(msg, &pb_allocator);
        if (rc == 0 || !wire_field1_is_bytes(b, n))
            return rc;
    } else if (msg) {
        protobuf_c_message_free_unpacked(msg, &pb_allocator);
    } else if (rc == STRATA_E_LIMIT) {
        return rc;
    }
    return strata_fail(err, STRATA_E_UNSUPPORTED,
                       "%s: not a tensor (a serialized TensorProto with an element type): it "
                       "holds a sequence, map or optional value, which strata does not read, "
                       "or is corrupt", label);
}

int onnx_read_tensor_bytes(struct tview *t, const uint8_t *b, size_t n, char *err)
{
    return read_tensor(t, b, n, NULL, "tensor", err);
}

int onnx_read_tensor(struct tview *t, const char *path, char *err)
{
    memset(t, 0, sizeof *t);
    uint8_t *buf;
    size_t len;
    int rc = read_whole_file(path, ONNX_MAX_FILE_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    char *dir = path_dir(path);
    if (!dir) {
        free(buf);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path);
    }
    rc = read_tensor(t, buf, len, dir, path, err);
    free(buf);
    free(dir);
    return rc;
}
