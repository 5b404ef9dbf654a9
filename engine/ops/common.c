/*
 * common.c — what every op shares: attribute readers, the error prefix that
 * names the node, shape formatting, broadcasting and axis normalisation.
 */
#include "op.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../status.h"

int node_fail(const struct node *node, char *err, int code, const char *fmt, ...)
{
    char msg[STRATA_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return strata_fail(err, code, "node '%s' (%s): %s", node->name ? node->name : "?",
                       node->op_type ? node->op_type : "?", msg);
}

const struct attr *node_attr(const struct node *node, const char *name)
{
    for (int i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0)
            return &node->attrs[i];
    return NULL;
}

static const char *attr_type_name(enum attr_type t)
{
    switch (t) {
    case ATTR_FLOAT: return "a float";
    case ATTR_INT: return "an int";
    case ATTR_STRING: return "a string";
    case ATTR_TENSOR: return "a tensor";
    case ATTR_FLOATS: return "a list of floats";
    case ATTR_INTS: return "a list of ints";
    }
    return "?";
}

static int wrong_type(const struct node *node, const struct attr *a, enum attr_type want,
                      char *err)
{
    return node_fail(node, err, STRATA_E_FORMAT, "attribute '%s' is %s, expected %s", a->name,
                     attr_type_name(a->type), attr_type_name(want));
}

int node_attr_int(const struct node *node, const char *name, int64_t dflt, int64_t *out,
                  char *err)
{
    const struct attr *a = node_attr(node, name);
    if (!a) {
        *out = dflt;
        return 0;
    }
    if (a->type != ATTR_INT)
        return wrong_type(node, a, ATTR_INT, err);
    *out = a->i;
    return 0;
}

int node_attr_float(const struct node *node, const char *name, float dflt, float *out, char *err)
{
    const struct attr *a = node_attr(node, name);
    if (!a) {
        *out = dflt;
        return 0;
    }
    if (a->type != ATTR_FLOAT)
        return wrong_type(node, a, ATTR_FLOAT, err);
    *out = a->f;
    return 0;
}

int node_attr_string(const struct node *node, const char *name, const char *dflt,
                     const char **out, char *err)
{
    const struct attr *a = node_attr(node, name);
    if (!a) {
        *out = dflt;
        return 0;
    }
    if (a->type != ATTR_STRING)
        return wrong_type(node, a, ATTR_STRING, err);
    *out = a->s;
    return 0;
}

int node_attr_ints(const struct node *node, const char *name, int64_t *out, int cap, int *n,
                   char *err)
{
    const struct attr *a = node_attr(node, name);
    *n = 0;
    if (!a)
        return 0;
    if (a->type != ATTR_INTS)
        return wrong_type(node, a, ATTR_INTS, err);
    if (a->n > cap)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute '%s' has %d values; at most %d are supported", name, a->n,
                         cap);
    memcpy(out, a->ints, (size_t)a->n * sizeof *out);
    *n = a->n;
    return 0;
}

void op_clamp(float *y, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        float v = y[i] > lo ? y[i] : lo;
        y[i] = v < hi ? v : hi;
    }
}

char *dims_format(const struct tview *t, char *buf, size_t len)
{
    assert(len > 0);
    if (t->ndim == 0) {
        snprintf(buf, len, "scalar");
        return buf;
    }
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < t->ndim && used < len; i++) {
        int k = snprintf(buf + used, len - used, i ? "x%lld" : "%lld", (long long)t->dims[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    return buf;
}

int broadcast_shapes(const struct node *node, const struct tview *a, const struct tview *b,
                     struct tview *out, char *err)
{
    int rank = a->ndim > b->ndim ? a->ndim : b->ndim;
    assert(rank <= OP_MAX_DIMS);
    out->ndim = rank;
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->ndim), ib = i - (rank - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return node_fail(node, err, STRATA_E_FORMAT,
                             "shapes %s and %s do not broadcast (axis %d: %lld against %lld)",
                             dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb), i,
                             (long long)da, (long long)db);
        }
        out->dims[i] = da == 1 ? db : da;
    }
    return 0;
}

int node_axis(const struct node *node, int64_t axis, int rank, int *out, char *err)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return node_fail(node, err, STRATA_E_FORMAT, "axis %lld is out of range for rank %d",
                         (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}
