/* onnx_weights.c — an ONNX file written again with a graph's weights (see
 * onnx_weights.h). */
#include "onnx_weights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.h"
#include "onnx.pb-c.h"
#include "readfile.h"

/* Replaces tp's dims and data by t's (float or int64, inline raw data).
 * Returns 0 or STRATA_E_NOMEM; tp is unchanged then. */
static int replace_tensor(Onnx__TensorProto *tp, const struct tview *t)
{
    const size_t count = (size_t)tview_count(t),
                 bytes = count * (t->dtype == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float));
    int64_t *dims = malloc((size_t)(t->ndim ? t->ndim : 1) * sizeof *dims);
    uint8_t *raw = malloc(bytes ? bytes : 1);
    if (!dims || !raw) {
        free(dims);
        free(raw);
        return STRATA_E_NOMEM;
    }
    memcpy(dims, t->dims, (size_t)t->ndim * sizeof *dims);
    memcpy(raw, t->data, bytes);
    free(tp->dims);
    tp->dims = dims;
    tp->n_dims = (size_t)t->ndim;
    tp->has_data_type = 1;
    tp->data_type = t->dtype == DTYPE_INT64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64
                                            : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    free(tp->int64_data);
    tp->int64_data = NULL;
    tp->n_int64_data = 0;
    free(tp->float_data);
    tp->float_data = NULL;
    tp->n_float_data = 0;
    free(tp->double_data);
    tp->double_data = NULL;
    tp->n_double_data = 0;
    free(tp->int32_data); /* float16 and bfloat16 values live there */
    tp->int32_data = NULL;
    tp->n_int32_data = 0;
    for (size_t i = 0; i < tp->n_external_data; i++)
        protobuf_c_message_free_unpacked(&tp->external_data[i]->base, NULL);
    free(tp->external_data);
    tp->external_data = NULL;
    tp->n_external_data = 0;
    tp->has_data_location = 0;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
    free(tp->raw_data.data);
    tp->raw_data.data = raw;
    tp->raw_data.len = bytes;
    tp->has_raw_data = 1;
    return 0;
}

/* The nodes of gp that g reads as initializers of their own (an Identity of
 * an initializer, which graph_finish folds: graph.h) go, and their outputs
 * become initializers holding g's values. Returns 0 or STRATA_E_NOMEM. */
static int fold_identities(Onnx__GraphProto *gp, const struct graph *g)
{
    size_t kept = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        Onnx__NodeProto *n = gp->node[i];
        const int v = n->op_type && strcmp(n->op_type, "Identity") == 0 && n->n_output == 1 &&
                              n->output[0]
                          ? graph_find_value(g, n->output[0])
                          : -1;
        if (v < 0 || g->values[v].kind != VALUE_INITIALIZER) {
            gp->node[kept++] = n;
            continue;
        }
        Onnx__TensorProto **grown =
            realloc(gp->initializer, (gp->n_initializer + 1) * sizeof *grown);
        if (grown)
            gp->initializer = grown;
        Onnx__TensorProto *tp = grown ? malloc(sizeof *tp) : NULL;
        if (tp) {
            onnx__tensor_proto__init(tp);
            tp->name = strdup(n->output[0]);
        }
        if (!tp || !tp->name || replace_tensor(tp, &g->values[v].init) < 0) {
            if (tp)
                protobuf_c_message_free_unpacked(&tp->base, NULL);
            for (size_t j = i; j < gp->n_node; j++) /* keep the rest as they were */
                gp->node[kept++] = gp->node[j];
            gp->n_node = kept;
            return STRATA_E_NOMEM;
        }
        gp->initializer[gp->n_initializer++] = tp;
        protobuf_c_message_free_unpacked(&n->base, NULL);
    }
    gp->n_node = kept;
    return 0;
}

/* Sets the class axis (the last) of a value_info's fixed shape to n. */
static void set_class_axis(Onnx__ValueInfoProto *vi, int n)
{
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type || !vi->type->tensor_type->shape)
        return;
    Onnx__TensorShapeProto *sh = vi->type->tensor_type->shape;
    if (sh->n_dim < 2)
        return;
    Onnx__TensorShapeProto__Dimension *d = sh->dim[sh->n_dim - 1];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
        d->dim_value = n;
}

int onnx_save_weights(const char *src, const struct graph *g, int n_classes, const char *dst,
                      char *err)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = read_whole_file(src, ONNX_MAX_FILE_BYTES, &bytes, &len, err);
    if (rc < 0)
        return rc;
    Onnx__ModelProto *m = onnx_unpack_model(bytes, len, src, err);
    free(bytes);
    if (!m)
        return STRATA_E_FORMAT;
    uint8_t *out = NULL;
    char tmp[1100];
    FILE *f = NULL;
    Onnx__GraphProto *gp = m->graph;
    if (!gp) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: the file holds no graph", src);
        goto done;
    }
    if (fold_identities(gp, g) < 0) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory writing %s", dst);
        goto done;
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        const int v = tp->name ? graph_find_value(g, tp->name) : -1;
        if (v < 0 || g->values[v].kind != VALUE_INITIALIZER ||
            g->values[v].init.dtype != DTYPE_FLOAT)
            continue;
        if (replace_tensor(tp, &g->values[v].init) < 0) {
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory writing %s", dst);
            goto done;
        }
    }
    /* old files list initializers among the inputs, with their shapes */
    for (size_t i = 0; i < gp->n_input; i++) {
        const int v = gp->input[i]->name ? graph_find_value(g, gp->input[i]->name) : -1;
        if (v >= 0 && g->values[v].kind == VALUE_INITIALIZER) {
            Onnx__ValueInfoProto *vi = gp->input[i];
            Onnx__TypeProto *tp = vi->type;
            if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
                tp->tensor_type->shape) {
                /* no shape rather than a stale one */
                protobuf_c_message_free_unpacked(&tp->tensor_type->shape->base, NULL);
                tp->tensor_type->shape = NULL;
            }
        }
    }
    for (size_t i = 0; i < gp->n_value_info; i++)
        protobuf_c_message_free_unpacked(&gp->value_info[i]->base, NULL);
    free(gp->value_info);
    gp->value_info = NULL;
    gp->n_value_info = 0;
    for (size_t i = 0; i < gp->n_output; i++)
        set_class_axis(gp->output[i], n_classes);

    const size_t n = onnx__model_proto__get_packed_size(m);
    if (!(out = malloc(n ? n : 1))) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory: %s would be %zu bytes", dst, n);
        goto done;
    }
    onnx__model_proto__pack(m, out);
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    if (!(f = fopen(tmp, "wb")) || fwrite(out, 1, n, f) != n) {
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
        goto done;
    }
    FILE *closing = f;
    f = NULL;
    if (fclose(closing) != 0 || rename(tmp, dst) != 0) {
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", dst, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = 0;
done:
    if (f) {
        fclose(f);
        unlink(tmp);
    }
    free(out);
    onnx_model_free(m);
    return rc;
}
