/* test_slic.c — CIELAB conversion of known colours, and SLIC superpixels on
 * synthetic images: purity against flat regions, 4-connectivity (by an
 * independent flood fill), label range, determinism. */
#include "check.h"
#include "rng.h"
#include "slic.h"

#include <stdint.h>
#include <string.h>

TEST(lab_known_colours)
{
    /* Reference values (CIE 1976 L*a*b*, D65, sRGB) as published by
     * B. Lindbloom's calculator and colormine.org. */
    static const struct {
        uint8_t rgb[3];
        double lab[3];
    } known[] = {
        {{255, 255, 255}, {100.0, 0.0, 0.0}},
        {{0, 0, 0}, {0.0, 0.0, 0.0}},
        {{255, 0, 0}, {53.2408, 80.0925, 67.2032}},
        {{0, 255, 0}, {87.7347, -86.1827, 83.1793}},
        {{0, 0, 255}, {32.2970, 79.1875, -107.8602}},
        {{128, 128, 128}, {53.5850, 0.0, 0.0}},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        float lab[3];
        slic_rgb_to_lab(known[i].rgb, 1, lab);
        printf("# rgb(%d,%d,%d) -> Lab(%.4f, %.4f, %.4f)\n", known[i].rgb[0], known[i].rgb[1],
               known[i].rgb[2], lab[0], lab[1], lab[2]);
        for (int c = 0; c < 3; c++)
            CHECK_NEAR(lab[c], known[i].lab[c], 0.05);
    }
    /* White and greys are exactly neutral. */
    float lab[3];
    slic_rgb_to_lab((const uint8_t[]){255, 255, 255}, 1, lab);
    CHECK_NEAR(lab[0], 100.0, 1e-4);
    CHECK_NEAR(lab[1], 0.0, 1e-4);
    CHECK_NEAR(lab[2], 0.0, 1e-4);
}

/* 96×96, six flat rectangles (3 columns of 32 × 2 rows of 48) of very
 * different colours; region id per pixel in `region`. With `noise`, each
 * channel gets ±noise of uniform jitter (the regions stay far apart). */
static const uint8_t region_colours[6][3] = {
    {230, 30, 30}, {30, 200, 40}, {40, 60, 220}, {240, 230, 40}, {20, 20, 20}, {200, 60, 210},
};

static void make_regions(uint8_t *rgb, int *region, int noise, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (int y = 0; y < 96; y++) {
        for (int x = 0; x < 96; x++) {
            int g = (y / 48) * 3 + x / 32;
            region[y * 96 + x] = g;
            for (int c = 0; c < 3; c++) {
                int v = region_colours[g][c];
                if (noise)
                    v += (int)rng_below(&r, 2 * (uint64_t)noise + 1) - noise;
                rgb[3 * (y * 96 + x) + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

/* Independent check: is every label's pixel set one 4-connected piece? A
 * flood fill from the first pixel of each label must reach all of them. */
static int all_connected(const int *labels, int w, int h, int n)
{
    int *count = calloc((size_t)n, sizeof(int)), *seen = calloc((size_t)w * h, sizeof(int));
    int *stack = malloc((size_t)w * h * sizeof(int));
    int ok = 1;
    for (int p = 0; p < w * h; p++)
        count[labels[p]]++;
    int *done = calloc((size_t)n, sizeof(int));
    for (int p = 0; p < w * h && ok; p++) {
        int l = labels[p];
        if (done[l])
            continue;
        done[l] = 1;
        int top = 0, reached = 0;
        stack[top++] = p;
        seen[p] = 1;
        while (top) {
            int q = stack[--top], x = q % w, y = q / w;
            reached++;
            int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
            for (int k = 0; k < 4; k++) {
                int nx = nb[k][0], ny = nb[k][1];
                if (nx < 0 || ny < 0 || nx >= w || ny >= h)
                    continue;
                int o = ny * w + nx;
                if (!seen[o] && labels[o] == l) {
                    seen[o] = 1;
                    stack[top++] = o;
                }
            }
        }
        if (reached != count[l]) {
            printf("#   label %d: flood fill reached %d of %d pixels\n", l, reached, count[l]);
            ok = 0;
        }
    }
    free(count);
    free(seen);
    free(stack);
    free(done);
    return ok;
}

/* Labels within 0..n-1, each used, first appearances in raster order. */
static int labels_canonical(const int *labels, int npix, int n)
{
    int next = 0;
    for (int p = 0; p < npix; p++) {
        if (labels[p] < 0 || labels[p] >= n)
            return 0;
        if (labels[p] == next)
            next++;
        else if (labels[p] > next)
            return 0;
    }
    return next == n;
}

static void check_purity(const int *labels, const int *region, int npix, int n)
{
    int *owner = malloc((size_t)n * sizeof(int));
    for (int s = 0; s < n; s++)
        owner[s] = -1;
    int straddling = 0;
    for (int p = 0; p < npix; p++) {
        int s = labels[p];
        if (owner[s] < 0)
            owner[s] = region[p];
        else if (owner[s] != region[p] && owner[s] != -2) {
            owner[s] = -2;
            straddling++;
        }
    }
    CHECK_EQ_INT(straddling, 0);
    free(owner);
}

TEST(flat_regions_pure_connected)
{
    static uint8_t rgb[96 * 96 * 3];
    static int region[96 * 96], labels[96 * 96];
    char err[STRATA_ERR_LEN];
    /* About 2, 4, 8 and 16 superpixels per region: the grid must give every
     * region a seed, so fewer than the number of regions cannot work. */
    const int asks[] = {12, 24, 48, 96};
    for (int noise = 0; noise <= 12; noise += 12) {
        make_regions(rgb, region, noise, 5);
        for (size_t a = 0; a < sizeof asks / sizeof asks[0]; a++) {
            int n = 0;
            CHECK_EQ_INT(slic_segment(rgb, 96, 96, asks[a], 10.0f, labels, &n, err), STRATA_OK);
            printf("# noise %d, asked %d superpixels, got %d\n", noise, asks[a], n);
            CHECK(n >= 6);
            CHECK(n <= 2 * asks[a] + 6);
            check_purity(labels, region, 96 * 96, n);
            CHECK(all_connected(labels, 96, 96, n));
            CHECK(labels_canonical(labels, 96 * 96, n));
        }
    }
}

TEST(unaligned_regions_pure_connected)
{
    /* 100×90, boundaries off the seed grid: columns split at 37 and 61, rows
     * at 53, six colours. */
    const int w = 100, h = 90;
    static uint8_t rgb[100 * 90 * 3];
    static int region[100 * 90], labels[100 * 90];
    struct rng r;
    rng_seed(&r, 6);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int g = (y >= 53) * 3 + (x >= 37) + (x >= 61);
            region[y * w + x] = g;
            for (int c = 0; c < 3; c++) {
                int v = region_colours[g][c] + (int)rng_below(&r, 17) - 8;
                rgb[3 * (y * w + x) + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    const int asks[] = {24, 40, 80};
    for (size_t a = 0; a < sizeof asks / sizeof asks[0]; a++) {
        int n = 0;
        CHECK_EQ_INT(slic_segment(rgb, w, h, asks[a], 10.0f, labels, &n, NULL), STRATA_OK);
        printf("# unaligned, asked %d superpixels, got %d\n", asks[a], n);
        CHECK(n >= 6);
        check_purity(labels, region, w * h, n);
        CHECK(all_connected(labels, w, h, n));
        CHECK(labels_canonical(labels, w * h, n));
    }
}

TEST(counts_and_sizes_on_a_smooth_image)
{
    /* A smooth gradient has no edges to follow: SLIC then tiles it into
     * about the requested number of compact, similar-sized cells. */
    const int w = 150, h = 150;
    static uint8_t rgb[150 * 150 * 3];
    static int labels[150 * 150];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + 3 * (y * w + x);
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = 128;
        }
    int n = 0;
    CHECK_EQ_INT(slic_segment(rgb, w, h, 50, 10.0f, labels, &n, NULL), STRATA_OK);
    printf("# smooth 150x150, asked 50, got %d\n", n);
    CHECK(n >= 35 && n <= 65);
    CHECK(all_connected(labels, w, h, n));
    CHECK(labels_canonical(labels, w * h, n));
    int size[200] = {0}, smallest = w * h;
    for (int p = 0; p < w * h; p++)
        size[labels[p]]++;
    for (int s = 0; s < n; s++)
        smallest = size[s] < smallest ? size[s] : smallest;
    /* Nothing smaller than the merge threshold (a quarter of N/K). */
    CHECK(smallest >= (w * h / 49) / 4);
}

TEST(noisy_image_connected_and_deterministic)
{
    /* Pure noise stresses connectivity enforcement: k-means labels come out
     * fragmented and must be stitched into connected segments. */
    const int w = 64, h = 48;
    static uint8_t rgb[64 * 48 * 3];
    static int a[64 * 48], b[64 * 48];
    struct rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)rng_below(&r, 256);
    int na = 0, nb = 0;
    CHECK_EQ_INT(slic_segment(rgb, w, h, 30, 10.0f, a, &na, NULL), STRATA_OK);
    CHECK_EQ_INT(slic_segment(rgb, w, h, 30, 10.0f, b, &nb, NULL), STRATA_OK);
    printf("# noise 64x48, asked 30, got %d\n", na);
    CHECK_EQ_INT(na, nb);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(all_connected(a, w, h, na));
    CHECK(labels_canonical(a, w * h, na));
    /* Low compactness lets colour dominate; still connected. */
    CHECK_EQ_INT(slic_segment(rgb, w, h, 30, 0.5f, a, &na, NULL), STRATA_OK);
    CHECK(all_connected(a, w, h, na));
    CHECK(labels_canonical(a, w * h, na));
}

TEST(bad_arguments)
{
    uint8_t rgb[16 * 16 * 3] = {0};
    int labels[16 * 16], n = 0;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(slic_segment(rgb, 1, 16, 2, 10, labels, &n, err), STRATA_E_ARG);
    CHECK_EQ_INT(slic_segment(rgb, 16, 16, 0, 10, labels, &n, err), STRATA_E_ARG);
    CHECK_EQ_INT(slic_segment(rgb, 16, 16, 65, 10, labels, &n, err), STRATA_E_ARG);
    CHECK(strstr(err, "n_segments") != NULL);
    CHECK_EQ_INT(slic_segment(rgb, 16, 16, 4, 0, labels, &n, err), STRATA_E_ARG);
    CHECK_EQ_INT(slic_segment(rgb, 16, 16, 64, 10, labels, &n, err), STRATA_OK);
    CHECK(all_connected(labels, 16, 16, n));
}

int main(void)
{
    RUN(lab_known_colours);
    RUN(flat_regions_pure_connected);
    RUN(unaligned_regions_pure_connected);
    RUN(counts_and_sizes_on_a_smooth_image);
    RUN(noisy_image_connected_and_deterministic);
    RUN(bad_arguments);
    return check_done();
}
