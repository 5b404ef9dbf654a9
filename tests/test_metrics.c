/*
 * test_metrics.c — contingency, purity, ARI, NMI, confusion, silhouette
 * (against values worked by hand and naive references), and the .npy writer
 * and reader (headers compared byte for byte with what numpy.save writes).
 */
#include "check.h"
#include "metrics.h"
#include "npy.h"
#include "rng.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

TEST(contingency_and_purity_by_hand)
{
    /* clusters 0 0 0 1 1 2, classes 0 0 1 1 1 0 */
    int cl[6] = {0, 0, 0, 1, 1, 2}, cls[6] = {0, 0, 1, 1, 1, 0};
    long t[3 * 2];
    metrics_contingency(cl, 3, cls, 2, 6, t);
    const long want[6] = {2, 1, /* cluster 0 */ 0, 2, /* cluster 1 */ 1, 0 /* cluster 2 */};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(t[i], want[i]);
    /* Majorities 2 of 3, 2 of 2, 1 of 1: overall (2 + 2 + 1) / 6. */
    double per[4];
    int maj[4];
    CHECK_NEAR(metrics_purity(t, 3, 2, per, maj), 5.0 / 6, 1e-15);
    CHECK_NEAR(per[0], 2.0 / 3, 1e-15);
    CHECK_NEAR(per[1], 1.0, 1e-15);
    CHECK_NEAR(per[2], 1.0, 1e-15);
    CHECK_EQ_INT(maj[0], 0);
    CHECK_EQ_INT(maj[1], 1);
    CHECK_EQ_INT(maj[2], 0);
    /* An empty cluster (label 3 unused) has purity 0 and no majority, and
     * does not change the overall purity. */
    long t4[4 * 2];
    metrics_contingency(cl, 4, cls, 2, 6, t4);
    CHECK_NEAR(metrics_purity(t4, 4, 2, per, maj), 5.0 / 6, 1e-15);
    CHECK_EQ_INT(maj[3], -1);
    CHECK_NEAR(per[3], 0, 0);
}

TEST(ari_by_hand)
{
    int a[4] = {0, 0, 1, 1}, b[4] = {1, 1, 0, 0}, c[4] = {0, 0, 1, 2}, e[4] = {0, 1, 0, 1};
    int one[4] = {0, 0, 0, 0}, all[4] = {0, 1, 2, 3};
    /* Perfect labelings, whatever the names: 1. */
    CHECK_NEAR(metrics_ari(a, 2, a, 2, 4), 1.0, 1e-15);
    CHECK_NEAR(metrics_ari(a, 2, b, 2, 4), 1.0, 1e-15);
    /* [0,0,1,2] vs [0,0,1,1] (scikit-learn's doc example, 0.57):
     * table rows [2,0],[0,1],[0,1]; sum C(n_ij,2) = 1; row sums 2,1,1 give
     * sum C = 1; column sums 2,2 give 2; C(4,2) = 6; E = 1*2/6 = 1/3;
     * max = (1+2)/2 = 3/2; ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7. Symmetric. */
    CHECK_NEAR(metrics_ari(c, 3, a, 2, 4), 4.0 / 7, 1e-15);
    CHECK_NEAR(metrics_ari(a, 2, c, 3, 4), 4.0 / 7, 1e-15);
    /* [0,0,0,0] vs [0,1,2,3]: sum C(n_ij,2) = 0, row side 6, column side 0,
     * E = 0, max = 3: ARI = 0. */
    CHECK_NEAR(metrics_ari(one, 1, all, 4, 4), 0.0, 1e-15);
    /* [0,0,1,1] vs [0,1,0,1]: table all ones, sum 0; sides 2 and 2;
     * E = 4/6; max = 2; ARI = (0 - 2/3) / (2 - 2/3) = -1/2. */
    CHECK_NEAR(metrics_ari(a, 2, e, 2, 4), -0.5, 1e-15);
    /* Both trivial and equal: 1 (the special case). */
    CHECK_NEAR(metrics_ari(one, 1, one, 1, 4), 1.0, 0);
    CHECK_NEAR(metrics_ari(all, 4, all, 4, 4), 1.0, 0);
}

TEST(nmi_by_hand)
{
    int a[4] = {0, 0, 1, 1}, b[4] = {1, 1, 0, 0}, c[4] = {0, 0, 1, 2}, e[4] = {0, 1, 0, 1};
    int one[4] = {0, 0, 0, 0}, all[4] = {0, 1, 2, 3};
    CHECK_NEAR(metrics_nmi(a, 2, a, 2, 4), 1.0, 1e-15);
    CHECK_NEAR(metrics_nmi(a, 2, b, 2, 4), 1.0, 1e-15);
    /* [0,0,1,1] vs [0,0,1,2]: H(A) = ln 2; H(B) = -(1/2 ln 1/2 + 2 * 1/4 ln 1/4)
     * = 1.5 ln 2; I = 1/2 ln((1/2)/(1/2 * 1/2)) + 2 * 1/4 ln((1/4)/(1/2 * 1/4))
     * = ln 2; NMI = ln 2 / ((ln 2 + 1.5 ln 2) / 2) = 0.8. */
    CHECK_NEAR(metrics_nmi(a, 2, c, 3, 4), 0.8, 1e-15);
    /* scikit-learn's doc example: completely split, NMI 0 (I = 0). */
    CHECK_NEAR(metrics_nmi(one, 1, all, 4, 4), 0.0, 0);
    /* Independent labelings: I = 0. */
    CHECK_NEAR(metrics_nmi(a, 2, e, 2, 4), 0.0, 1e-15);
    /* Both trivial: 1. */
    CHECK_NEAR(metrics_nmi(one, 1, one, 1, 4), 1.0, 0);
}

/* ARI by pair counting (O(n^2)): over all pairs, tp = same in both, fp/fn =
 * same in one only, tn = different in both; ARI = 2 (tp tn - fn fp) /
 * ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)). Independent of the table formula. */
static double ari_pairs(const int *a, const int *b, int n)
{
    double tp = 0, fp = 0, fn = 0, tn = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int sa = a[i] == a[j], sb = b[i] == b[j];
            tp += sa && sb;
            fp += !sa && sb;
            fn += sa && !sb;
            tn += !sa && !sb;
        }
    return 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn));
}

/* NMI from probabilities in base 2 (the base cancels). */
static double nmi_naive(const int *a, int ka, const int *b, int kb, int n)
{
    double pa[8] = {0}, pb[8] = {0}, pab[8][8] = {{0}};
    for (int i = 0; i < n; i++) {
        pa[a[i]] += 1.0 / n;
        pb[b[i]] += 1.0 / n;
        pab[a[i]][b[i]] += 1.0 / n;
    }
    double ha = 0, hb = 0, mi = 0;
    for (int i = 0; i < ka; i++)
        if (pa[i] > 0)
            ha -= pa[i] * log2(pa[i]);
    for (int j = 0; j < kb; j++)
        if (pb[j] > 0)
            hb -= pb[j] * log2(pb[j]);
    for (int i = 0; i < ka; i++)
        for (int j = 0; j < kb; j++)
            if (pab[i][j] > 0)
                mi += pab[i][j] * log2(pab[i][j] / (pa[i] * pb[j]));
    return mi / ((ha + hb) / 2);
}

TEST(ari_and_nmi_match_naive_references_on_random_labels)
{
    struct rng r;
    rng_seed(&r, 17);
    enum { N = 300 };
    int a[N], b[N];
    for (int trial = 0; trial < 5; trial++) {
        int ka = 2 + trial, kb = 3 + (trial % 3);
        for (int i = 0; i < N; i++) {
            a[i] = (int)rng_below(&r, (uint64_t)ka);
            /* b agrees with a 60% of the time, so the scores are not ~0. */
            b[i] = rng_uniform(&r) < 0.6 ? a[i] % kb : (int)rng_below(&r, (uint64_t)kb);
        }
        CHECK_NEAR(metrics_ari(a, ka, b, kb, N), ari_pairs(a, b, N), 1e-12);
        CHECK_NEAR(metrics_nmi(a, ka, b, kb, N), nmi_naive(a, ka, b, kb, N), 1e-12);
        CHECK(metrics_ari(a, ka, b, kb, N) > 0.1);
    }
}

TEST(confusion_accuracy_recall_precision)
{
    int truth[8] = {0, 0, 0, 1, 1, 2, 2, 2}, pred[8] = {0, 0, 1, 1, 1, 2, 0, 2};
    long cm[9];
    metrics_confusion(truth, pred, 8, 3, cm);
    const long want[9] = {2, 1, 0, 0, 2, 0, 1, 0, 2};
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT(cm[i], want[i]);
    CHECK_NEAR(metrics_accuracy(truth, pred, 8), 6.0 / 8, 1e-15);
    double rec[3], prec[3];
    metrics_recall_precision(cm, 3, rec, prec);
    /* recall: 2/3, 2/2, 2/3; precision: 2/3 (column 0 = 2+0+1), 2/3, 2/2 */
    CHECK_NEAR(rec[0], 2.0 / 3, 1e-15);
    CHECK_NEAR(rec[1], 1.0, 1e-15);
    CHECK_NEAR(rec[2], 2.0 / 3, 1e-15);
    CHECK_NEAR(prec[0], 2.0 / 3, 1e-15);
    CHECK_NEAR(prec[1], 2.0 / 3, 1e-15);
    CHECK_NEAR(prec[2], 1.0, 1e-15);
}

TEST(silhouette_by_hand)
{
    /* 1-D: A = {0, 1}, B = {5, 6}. x=0: a = 1, b = (5+6)/2 = 5.5, s = 4.5/5.5
     * = 9/11; x=1: a = 1, b = (4+5)/2 = 4.5, s = 3.5/4.5 = 7/9; by symmetry
     * 6 and 5 score the same: mean = (9/11 + 7/9) / 2 = 79/99. */
    float X[4] = {0, 1, 5, 6};
    int lab[4] = {0, 0, 1, 1};
    double s, per[4];
    CHECK_EQ_INT(metrics_silhouette(X, 4, 1, lab, 2, &s, per, NULL), 0);
    CHECK_NEAR(s, 79.0 / 99, 1e-6);
    CHECK_NEAR(per[0], 9.0 / 11, 1e-6);
    CHECK_NEAR(per[1], 7.0 / 9, 1e-6);
    CHECK_NEAR(per[2], 7.0 / 9, 1e-6);
    CHECK_NEAR(per[3], 9.0 / 11, 1e-6);
    /* A point alone in its cluster scores 0: A = {0, 1}, B = {6}. For x=0:
     * a = 1, b = 6, s = 5/6; x=1: a = 1, b = 5, s = 4/5; x=6: 0.
     * Mean = (5/6 + 4/5 + 0) / 3 = 49/90. An unused label 2 is ignored. */
    float Y[3] = {0, 1, 6};
    int lab3[3] = {0, 0, 1};
    CHECK_EQ_INT(metrics_silhouette(Y, 3, 1, lab3, 3, &s, per, NULL), 0);
    CHECK_NEAR(s, 49.0 / 90, 1e-6);
    CHECK_NEAR(per[2], 0.0, 0);
    /* Undefined with one cluster or with n clusters. */
    char err[STRATA_ERR_LEN];
    int same[3] = {1, 1, 1}, each[3] = {0, 1, 2};
    CHECK_EQ_INT(metrics_silhouette(Y, 3, 1, same, 2, &s, NULL, err), STRATA_E_ARG);
    CHECK_EQ_INT(metrics_silhouette(Y, 3, 1, each, 3, &s, NULL, err), STRATA_E_ARG);
}

TEST(silhouette_matches_naive_double_reference)
{
    /* N > 512 so the rows are processed in several blocks (blocks of
     * 262144 / N rows), which exercises the symmetric hand-over. */
    enum { N = 700, D = 13, K = 5 };
    static float X[N * D];
    int lab[N];
    struct rng r;
    rng_seed(&r, 23);
    for (int i = 0; i < N; i++) {
        lab[i] = i == 0 ? 4 : (int)rng_below(&r, 4); /* cluster 4 is a singleton */
        for (int t = 0; t < D; t++)
            X[i * D + t] = (float)(7 + 0.8 * lab[i] + rng_normal(&r)); /* offset 7 */
    }
    double s, per[N];
    CHECK_EQ_INT(metrics_silhouette(X, N, D, lab, K, &s, per, NULL), 0);
    double total = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        double sum[K] = {0};
        int cnt[K] = {0};
        for (int j = 0; j < N; j++) {
            double d2 = 0;
            for (int t = 0; t < D; t++) {
                double v = (double)X[i * D + t] - X[j * D + t];
                d2 += v * v;
            }
            sum[lab[j]] += sqrt(d2);
            cnt[lab[j]]++;
        }
        double want = 0;
        if (cnt[lab[i]] > 1) {
            double a = sum[lab[i]] / (cnt[lab[i]] - 1), b = INFINITY;
            for (int c = 0; c < K; c++)
                if (c != lab[i] && cnt[c] && sum[c] / cnt[c] < b)
                    b = sum[c] / cnt[c];
            want = (b - a) / (a > b ? a : b);
        }
        total += want;
        double e = fabs(per[i] - want);
        worst = e > worst ? e : worst;
    }
    printf("# silhouette %.8f, naive %.8f, worst per-row difference %.2g\n", s, total / N, worst);
    CHECK_NEAR(s, total / N, 1e-5);
    CHECK(worst < 1e-4);
    CHECK_NEAR(per[0], 0.0, 0);
}

/* Reads a whole file. */
static size_t slurp(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

TEST(npy_headers_match_numpy_byte_for_byte)
{
    /* Expected headers printed by numpy 1.24's np.save for the same shapes
     * and dtypes: 118-byte dicts, 128-byte headers. */
    static const char h_f32[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        "                                                          \n";
    static const char h_i32[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }"
        "                                                            \n";
    static const char h_f64[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }"
        "                                                          \n";
    static const char h_big[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 512), }"
        "                                                     \n";
    CHECK_EQ_INT(sizeof h_f32 - 1, 128);
    CHECK_EQ_INT(sizeof h_i32 - 1, 128);
    CHECK_EQ_INT(sizeof h_big - 1, 128);

    char path[64];
    snprintf(path, sizeof path, "/tmp/strata_test_npy_%d.npy", (int)getpid());
    char err[STRATA_ERR_LEN];
    unsigned char buf[4096];

    const float f[6] = {1.5f, -2, 3.25f, 0, 1e-3f, 7};
    long s23[2] = {2, 3};
    CHECK_EQ_INT(npy_write_f32(path, f, 2, s23, err), 0);
    size_t got = slurp(path, buf, sizeof buf);
    CHECK_EQ_INT(got, 128 + sizeof f);
    CHECK(!memcmp(buf, h_f32, 128));
    CHECK(!memcmp(buf + 128, f, sizeof f));
    struct npy_array a;
    CHECK_EQ_INT(npy_read(path, &a, err), 0);
    CHECK(a.dtype == NPY_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    CHECK(a.data && !memcmp(a.data, f, sizeof f));
    npy_array_free(&a);

    const int iv[5] = {1, -2, 3, 2147483647, 0};
    long s5[1] = {5};
    CHECK_EQ_INT(npy_write_i32(path, iv, 1, s5, err), 0);
    got = slurp(path, buf, sizeof buf);
    CHECK_EQ_INT(got, 128 + sizeof iv);
    CHECK(!memcmp(buf, h_i32, 128));
    CHECK(!memcmp(buf + 128, iv, sizeof iv));
    CHECK_EQ_INT(npy_read(path, &a, err), 0);
    CHECK(a.dtype == NPY_I32 && a.ndim == 1 && a.shape[0] == 5);
    CHECK(a.data && !memcmp(a.data, iv, sizeof iv));
    npy_array_free(&a);

    long s04[2] = {0, 4};
    CHECK_EQ_INT(npy_write_f64(path, NULL, 2, s04, err), 0);
    got = slurp(path, buf, sizeof buf);
    CHECK_EQ_INT(got, 128);
    CHECK(!memcmp(buf, h_f64, 128));
    CHECK_EQ_INT(npy_read(path, &a, err), 0);
    CHECK(a.dtype == NPY_F64 && a.ndim == 2 && a.shape[0] == 0 && a.shape[1] == 4);
    npy_array_free(&a);

    char hdr[256];
    long sbig[2] = {1000, 512};
    CHECK_EQ_INT(npy_format_header(NPY_F32, 2, sbig, hdr, sizeof hdr), 128);
    CHECK(!memcmp(hdr, h_big, 128));
    /* 0-D: "()" and no spare room for growth (numpy adds none). */
    static const char h_0d[] =
        "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }"
        "                                                              \n";
    CHECK_EQ_INT(sizeof h_0d - 1, 128);
    CHECK_EQ_INT(npy_format_header(NPY_F64, 0, NULL, hdr, sizeof hdr), 128);
    CHECK(!memcmp(hdr, h_0d, 128));
    /* A buffer too small for the header is refused. */
    CHECK_EQ_INT(npy_format_header(NPY_F64, 0, NULL, hdr, 100), STRATA_E_LIMIT);
    unlink(path);
}

TEST(npy_reader_rejects_bad_files)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/strata_test_npy_bad_%d.npy", (int)getpid());
    char err[STRATA_ERR_LEN];
    struct npy_array a;
    CHECK_EQ_INT(npy_read("/nonexistent/x.npy", &a, err), STRATA_E_IO);
    FILE *f = fopen(path, "wb");
    fputs("not a numpy file at all", f);
    fclose(f);
    CHECK_EQ_INT(npy_read(path, &a, err), STRATA_E_FORMAT);
    /* A valid header with a dtype strata does not read ('<i8'). */
    char hdr[128];
    long s2[1] = {2};
    int hl = npy_format_header(NPY_F32, 1, s2, hdr, sizeof hdr);
    char *descr = memmem(hdr, (size_t)hl, "<f4", 3); /* the header holds NUL bytes */
    CHECK(descr != NULL);
    if (descr)
        memcpy(descr, "<i8", 3);
    f = fopen(path, "wb");
    fwrite(hdr, 1, (size_t)hl, f);
    fwrite("0123456789abcdef", 1, 16, f);
    fclose(f);
    CHECK_EQ_INT(npy_read(path, &a, err), STRATA_E_UNSUPPORTED);
    CHECK(strstr(err, "<i8") != NULL);
    /* Truncated data: header says 2 floats, file holds 1. */
    hl = npy_format_header(NPY_F32, 1, s2, hdr, sizeof hdr);
    f = fopen(path, "wb");
    fwrite(hdr, 1, (size_t)hl, f);
    fwrite("abcd", 1, 4, f);
    fclose(f);
    CHECK_EQ_INT(npy_read(path, &a, err), STRATA_E_FORMAT);
    CHECK(a.data == NULL);
    unlink(path);
}

int main(void)
{
    RUN(contingency_and_purity_by_hand);
    RUN(ari_by_hand);
    RUN(nmi_by_hand);
    RUN(ari_and_nmi_match_naive_references_on_random_labels);
    RUN(confusion_accuracy_recall_precision);
    RUN(silhouette_by_hand);
    RUN(silhouette_matches_naive_double_reference);
    RUN(npy_headers_match_numpy_byte_for_byte);
    RUN(npy_reader_rejects_bad_files);
    return check_done();
}
