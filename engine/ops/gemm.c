/*
 * gemm.c — Gemm and MatMul on float32, through OpenBLAS's cblas_sgemm.
 *
 * Gemm:  Y[M×N] = alpha · op(A) · op(B) + beta · C
 *   op(A) = A[M×K], or Aᵀ for A[K×M] when transA ≠ 0; op(B) likewise with
 *   transB. C broadcasts onto M×N in one direction (numpy rule with M×N
 *   fixed: a scalar, [N], [1,N], [M,1] or [M,N]). Opset 6 broadcast C only
 *   with the attribute broadcast=1 (else C is M×N); from opset 7 always. C is
 *   required before opset 11 and optional from it (absent: no term).
 * Backward, with dY the upstream gradient:
 *   d op(A) = alpha · dY · op(B)ᵀ     d op(B) = alpha · op(A)ᵀ · dY
 *   dC      = beta · dY summed over the axes C is broadcast on
 * and dA = (d op(A))ᵀ when transA is set (dB likewise), which is again a
 * single sgemm with the operands swapped: dA[K×M] = alpha · op(B) · dYᵀ.
 *
 * MatMul follows numpy.matmul: the last two axes are the matrices,
 * [.., M, K] · [.., K, N] -> [.., M, N], and the axes before them (the batch)
 * broadcast both ways. A rank-1 A is a row [1, K] whose M axis is then
 * dropped from the result; a rank-1 B is a column [K, 1] whose N axis is
 * dropped. Backward per batch element:
 *   dA += dY · Bᵀ     dB += Aᵀ · dY
 * accumulated into the same matrix for every batch element that broadcast
 * it. When B has no batch axes (the common [.., M, K] · [K, N]), A's batch
 * is folded into M and each product is one sgemm.
 *
 * BLAS dimensions are ints: infer refuses larger operands.
 */
#include "op.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../gemv.h"
#include "../parallel.h"
#include "../sgemm.h"
#include "../status.h"

struct gemm_params {
    float alpha, beta;
    int trans_a, trans_b;
    int exact_c;        /* opset 6 without broadcast=1: C must be M×N */
};

static int gemm_setup(struct node *node, char *err)
{
    struct gemm_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    int64_t ta, tb, bc = 1;
    int rc;
    if ((rc = node_attr_float(node, "alpha", 1.0f, &p->alpha, err)) < 0 ||
        (rc = node_attr_float(node, "beta", 1.0f, &p->beta, err)) < 0 ||
        (rc = node_attr_int(node, "transA", 0, &ta, err)) < 0 ||
        (rc = node_attr_int(node, "transB", 0, &tb, err)) < 0)
        return rc;
    if (node->opset < 7 && (rc = node_attr_int(node, "broadcast", 0, &bc, err)) < 0)
        return rc;
    p->trans_a = ta != 0;
    p->trans_b = tb != 0;
    p->exact_c = bc == 0;
    return 0;
}

/* C's extents and element strides against M×N (stride 0 where broadcast). */
static void gemm_c_strides(const struct tview *c, int64_t *cm, int64_t *cn, int64_t *sm,
                           int64_t *sn)
{
    *cm = c->ndim == 2 ? c->dims[0] : 1;
    *cn = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
    *sn = *cn == 1 ? 0 : 1;
    *sm = *cm == 1 ? 0 : *cn;
}

static const struct tview *gemm_c(const struct node *node, const struct tview *const *in)
{
    return node->n_inputs > 2 ? in[2] : NULL;
}

static int gemm_infer(const struct node *node, const struct tview *const *in,
                      struct tview *const *out, char *err)
{
    const struct gemm_params *p = node->params;
    const struct tview *a = in[0], *b = in[1], *c = gemm_c(node, in);
    char sa[96], sb[96], sc[96];
    if (a->dtype != DTYPE_FLOAT || b->dtype != DTYPE_FLOAT || (c && c->dtype != DTYPE_FLOAT))
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "int64 inputs; only float is supported");
    if (a->ndim != 2 || b->ndim != 2)
        return node_fail(node, err, STRATA_E_FORMAT, "A is %s and B is %s; both must be 2-D",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb));
    int64_t m = a->dims[p->trans_a ? 1 : 0], k = a->dims[p->trans_a ? 0 : 1];
    int64_t kb = b->dims[p->trans_b ? 1 : 0], n = b->dims[p->trans_b ? 0 : 1];
    if (k != kb)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "A is %s (transA=%d) and B is %s (transB=%d): inner dimensions %lld "
                         "and %lld differ",
                         dims_format(a, sa, sizeof sa), p->trans_a, dims_format(b, sb, sizeof sb),
                         p->trans_b, (long long)k, (long long)kb);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return node_fail(node, err, STRATA_E_LIMIT, "A %s and B %s are too large for BLAS",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb));
    if (!c && node->opset < 11)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "input C is missing; it is required before opset 11 (model: opset %d)",
                         node->opset);
    if (c) {
        int64_t cm, cn, sm, sn;
        gemm_c_strides(c, &cm, &cn, &sm, &sn);
        int fits = c->ndim <= 2 && (cm == 1 || cm == m) && (cn == 1 || cn == n);
        if (p->exact_c)
            fits = c->ndim == 2 && cm == m && cn == n;
        if (!fits)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "C %s does not broadcast onto the %lldx%lld result%s",
                             dims_format(c, sc, sizeof sc), (long long)m, (long long)n,
                             p->exact_c ? " (opset 6 without broadcast=1 needs C to be MxN)"
                                        : "");
    }
    out[0]->dtype = DTYPE_FLOAT;
    out[0]->ndim = 2;
    out[0]->dims[0] = m;
    out[0]->dims[1] = n;
    return 0;
}

/* Y = X·Bᵀ (+ C) with transB, as PyTorch's Linear and strata's export write
 * a dense layer, runs on strata's own kernels: OpenBLAS's threads wait for
 * each other by spinning and yielding, and when another process holds a core
 * a classifier's dense layer took 50 ms instead of 0.1 ms (measured beside
 * two busy loops). On a few images each element is a dot product of two rows
 * read in place (gemv.h); on more, Y = X·Bᵀ on sgemm with the weights packed
 * as its B. */
static int gemm_use_sgemm(const struct gemm_params *p)
{
    return sgemm_available() && p->trans_b && !p->trans_a && p->alpha == 1.0f;
}

static size_t gemm_scratch(const struct node *node, const struct tview *const *in,
                           const struct tview *const *out)
{
    const struct gemm_params *p = node->params;
    const int m = (int)out[0]->dims[0], n = (int)out[0]->dims[1];
    const int k = (int)in[0]->dims[p->trans_a ? 0 : 1];
    return gemm_use_sgemm(p) ? sgemm_scratch(n, m, k, parallel_threads()) : 0;
}

static void gemm_forward(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, struct op_ctx *ctx)
{
    const struct gemm_params *p = node->params;
    const struct tview *a = in[0], *b = in[1], *c = gemm_c(node, in);
    int m = (int)out[0]->dims[0], n = (int)out[0]->dims[1];
    int k = (int)a->dims[p->trans_a ? 0 : 1];
    float *y = tview_f(out[0]);
    if (m == 0 || n == 0)
        return;
    float keep = 0.0f; /* sgemm's beta: 1 keeps the beta·C written first */
    if (c && p->beta != 0.0f) {
        int64_t cm, cn, sm, sn;
        gemm_c_strides(c, &cm, &cn, &sm, &sn);
        const float *cv = tview_f(c);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                y[(size_t)i * n + j] = p->beta * cv[i * sm + j * sn];
        keep = 1.0f;
    } else {
        memset(y, 0, (size_t)m * n * sizeof *y);
    }
    if (k == 0)
        return;
    if (gemm_use_sgemm(p) && ctx && ctx->scratch_len >= sgemm_scratch(n, m, k, 1)) {
        if (m <= GEMV_MAX_ROWS && gemv_available()) {
            gemv_rows_bt(m, n, k, tview_f(a), (size_t)k, tview_f(b), (size_t)k, y, (size_t)n);
        }
        else {
            /* Y[m × n] = X · Bᵀ, Bᵀ packed through 8 × 8 transposes in
             * registers (a float at a time, packing a seed model's 5.3 M
             * weights took a twentieth of its training step) */
            const struct sgemm_dense_b bt = {.b = tview_f(b), .ldb = (size_t)k};
            const struct sgemm_out o = {.c = y, .ldc = (size_t)n, .block_cols = n,
                                        .accumulate = keep != 0.0f};
            sgemm_run(m, n, k, tview_f(a), (size_t)k, sgemm_pack_transposed, NULL, &bt, &o,
                      ctx->scratch, ctx->scratch_len);
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,
                p->trans_b ? CblasTrans : CblasNoTrans, m, n, k, p->alpha, tview_f(a),
                (int)a->dims[1], tview_f(b), (int)b->dims[1], keep, y, n);
}

static void gemm_backward(const struct node *node, const struct tview *const *in,
                          const struct tview *const *out, const struct tview *const *dout,
                          struct tview *const *din, struct op_ctx *ctx)
{
    const struct gemm_params *p = node->params;
    const struct tview *a = in[0], *b = in[1], *c = gemm_c(node, in);
    int m = (int)out[0]->dims[0], n = (int)out[0]->dims[1];
    int k = (int)a->dims[p->trans_a ? 0 : 1];
    int lda = (int)a->dims[1], ldb = (int)b->dims[1];
    const float *g = tview_f(dout[0]);
    if (m == 0 || n == 0)
        return;
    enum CBLAS_TRANSPOSE tb = p->trans_b ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE ta = p->trans_a ? CblasTrans : CblasNoTrans;
    if (din[0] && k > 0) {
        if (!p->trans_a) /* dA[M×K] = alpha · dY · op(B)ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, p->trans_b ? CblasNoTrans : CblasTrans, m,
                        k, n, p->alpha, g, n, tview_f(b), ldb, 1.0f, tview_f(din[0]), k);
        else /* dA[K×M] = alpha · op(B) · dYᵀ */
            cblas_sgemm(CblasRowMajor, tb, CblasTrans, k, m, n, p->alpha, tview_f(b), ldb, g, n,
                        1.0f, tview_f(din[0]), m);
    }
    if (din[1] && k > 0) {
        if (!p->trans_b) /* dB[K×N] = alpha · op(A)ᵀ · dY */
            cblas_sgemm(CblasRowMajor, p->trans_a ? CblasNoTrans : CblasTrans, CblasNoTrans, k,
                        n, m, p->alpha, tview_f(a), lda, g, n, 1.0f, tview_f(din[1]), n);
        else /* dB[N×K] = alpha · dYᵀ · op(A) */
            cblas_sgemm(CblasRowMajor, CblasTrans, ta, n, k, m, p->alpha, g, n, tview_f(a), lda,
                        1.0f, tview_f(din[1]), k);
    }
    if (c && node->n_inputs > 2 && din[2]) {
        /* dC = beta · dY, summed over the broadcast axes; a row that
         * collapses onto one element is summed in double first */
        int64_t cm, cn, sm, sn;
        gemm_c_strides(c, &cm, &cn, &sm, &sn);
        float *dc = tview_f(din[2]);
        for (int i = 0; i < m; i++) {
            const float *gr = g + (size_t)i * n;
            if (sn) {
                for (int j = 0; j < n; j++)
                    dc[i * sm + j] += p->beta * gr[j];
            } else {
                double s = 0.0;
                for (int j = 0; j < n; j++)
                    s += gr[j];
                dc[i * sm] += (float)(p->beta * s);
            }
        }
    }
}

/* ---- MatMul ----------------------------------------------------------------- */

/* The matrices and the broadcast batch of A · B. Batch strides are in
 * elements of A and B (a whole matrix per step), 0 where broadcast. */
struct mm_dims {
    int64_t m, k, kb, n;
    int nbatch;
    int64_t batch[OP_MAX_DIMS];
    int64_t sa[OP_MAX_DIMS], sb[OP_MAX_DIMS];
    int64_t count;              /* number of batch elements */
    int b_batched;              /* B has batch axes */
};

/* Fills d from the shapes; returns the first batch axis that does not
 * broadcast, or -1. */
static int mm_dims_of(const struct tview *a, const struct tview *b, struct mm_dims *d)
{
    d->m = a->ndim >= 2 ? a->dims[a->ndim - 2] : 1;
    d->k = a->dims[a->ndim - 1];
    d->kb = b->ndim >= 2 ? b->dims[b->ndim - 2] : b->dims[0];
    d->n = b->ndim >= 2 ? b->dims[b->ndim - 1] : 1;
    int ra = a->ndim > 2 ? a->ndim - 2 : 0, rb = b->ndim > 2 ? b->ndim - 2 : 0;
    d->nbatch = ra > rb ? ra : rb;
    d->b_batched = rb > 0;
    int64_t step_a = d->m * d->k, step_b = d->kb * d->n;
    d->count = 1;
    int bad = -1;
    for (int i = d->nbatch - 1; i >= 0; i--) {
        int ia = i - (d->nbatch - ra), ib = i - (d->nbatch - rb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            bad = i;
        d->batch[i] = da == 1 ? db : da;
        d->sa[i] = da == 1 ? 0 : step_a;
        d->sb[i] = db == 1 ? 0 : step_b;
        step_a *= da;
        step_b *= db;
        d->count *= d->batch[i];
    }
    return bad;
}

static int matmul_infer(const struct node *node, const struct tview *const *in,
                        struct tview *const *out, char *err)
{
    const struct tview *a = in[0], *b = in[1];
    char sa[96], sb[96];
    if (a->dtype != DTYPE_FLOAT || b->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "int64 inputs; only float is supported");
    if (a->ndim == 0 || b->ndim == 0)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "A is %s and B is %s; MatMul needs operands of rank 1 or more",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb));
    struct mm_dims d;
    int bad = mm_dims_of(a, b, &d);
    if (d.k != d.kb)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "A %s and B %s: inner dimensions %lld and %lld differ",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb),
                         (long long)d.k, (long long)d.kb);
    if (bad >= 0)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "A %s and B %s: batch dimensions do not broadcast (batch axis %d)",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb), bad);
    if (d.m * d.count > INT_MAX || d.n > INT_MAX || d.k > INT_MAX)
        return node_fail(node, err, STRATA_E_LIMIT, "A %s and B %s are too large for BLAS",
                         dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb));
    int r = d.nbatch;
    out[0]->dtype = DTYPE_FLOAT;
    memcpy(out[0]->dims, d.batch, (size_t)r * sizeof d.batch[0]);
    if (a->ndim >= 2)
        out[0]->dims[r++] = d.m;
    if (b->ndim >= 2)
        out[0]->dims[r++] = d.n;
    out[0]->ndim = r;
    return 0;
}

/* Steps a counter over the batch axes, keeping A's and B's offsets. */
static void mm_next(const struct mm_dims *d, int64_t *idx, int64_t *oa, int64_t *ob)
{
    for (int i = d->nbatch - 1; i >= 0; i--) {
        *oa += d->sa[i];
        *ob += d->sb[i];
        if (++idx[i] < d->batch[i])
            return;
        *oa -= d->sa[i] * d->batch[i];
        *ob -= d->sb[i] * d->batch[i];
        idx[i] = 0;
    }
}

static void matmul_forward(const struct node *node, const struct tview *const *in,
                           struct tview *const *out, struct op_ctx *ctx)
{
    struct mm_dims d;
    mm_dims_of(in[0], in[1], &d);
    int m = (int)d.m, k = (int)d.k, n = (int)d.n;
    const float *a = tview_f(in[0]), *b = tview_f(in[1]);
    float *y = tview_f(out[0]);
    if (d.count == 0 || m == 0 || n == 0)
        return;
    if (k == 0) {
        memset(y, 0, (size_t)(d.count * m * n) * sizeof *y);
        return;
    }
    if (!d.b_batched) { /* A's batch folded into M */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(d.count * m), n, k, 1.0f, a,
                    k, b, n, 0.0f, y, n);
        return;
    }
    int64_t idx[OP_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int64_t i = 0; i < d.count; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a + oa, k, b + ob,
                    n, 0.0f, y + i * m * n, n);
        mm_next(&d, idx, &oa, &ob);
    }
}

static void matmul_backward(const struct node *node, const struct tview *const *in,
                            const struct tview *const *out, const struct tview *const *dout,
                            struct tview *const *din, struct op_ctx *ctx)
{
    struct mm_dims d;
    mm_dims_of(in[0], in[1], &d);
    int m = (int)d.m, k = (int)d.k, n = (int)d.n;
    const float *a = tview_f(in[0]), *b = tview_f(in[1]), *g = tview_f(dout[0]);
    float *da = din[0] ? tview_f(din[0]) : NULL, *db = din[1] ? tview_f(din[1]) : NULL;
    if (d.count == 0 || m == 0 || n == 0 || k == 0)
        return;
    if (!d.b_batched) {
        int mm = (int)(d.count * m);
        if (da) /* dA[(batch·M)×K] += dY · Bᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, k, n, 1.0f, g, n, b, n, 1.0f,
                        da, k);
        if (db) /* dB[K×N] += Aᵀ · dY, the sum over the folded batch included */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, mm, 1.0f, a, k, g, n, 1.0f,
                        db, n);
        return;
    }
    int64_t idx[OP_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int64_t i = 0; i < d.count; i++) {
        const float *gi = g + i * m * n;
        if (da)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, n, 1.0f, gi, n, b + ob, n,
                        1.0f, da + oa, k);
        if (db)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, m, 1.0f, a + oa, k, gi, n,
                        1.0f, db + ob, n);
        mm_next(&d, idx, &oa, &ob);
    }
}

const struct op op_gemm = {
    .name = "Gemm",
    .min_inputs = 2, .max_inputs = 3, .min_outputs = 1, .max_outputs = 1,
    .setup = gemm_setup,
    .infer = gemm_infer,
    .scratch = gemm_scratch,
    .forward = gemm_forward,
    .backward = gemm_backward,
};

const struct op op_matmul = {
    .name = "MatMul",
    .min_inputs = 2, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .infer = matmul_infer,
    .forward = matmul_forward,
    .backward = matmul_backward,
};
