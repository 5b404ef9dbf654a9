/* test_cutmix.c — CutMix (cutmix.h): what is pasted where, against the
 * originals; how often and from whom, against the probabilities drawn;
 * nothing drawn when it is off; its setting in model.json. The loss it
 * trains with is checked in test_train.c
 * (mixed_loss_by_hand_and_by_finite_differences). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cutmix.h"
#include "rng.h"
#include "train.h"

enum { H = 7, W = 9, CH = 3, IMG = H * W * CH };

/* Image k's value at element e: unique across the batch, so a pasted
 * element names the image it came from. */
static float tag(int k, int e)
{
    return (float)(1000 * k + e);
}

static void fill(float *batch, int n)
{
    for (int k = 0; k < n; k++)
        for (int e = 0; e < IMG; e++)
            batch[k * IMG + e] = tag(k, e);
}

TEST(off_changes_nothing_and_draws_nothing)
{
    enum { N = 4 };
    float batch[N * IMG], copy[N * IMG];
    struct cutmix_pair pairs[N];
    fill(batch, N);
    struct rng r, before;
    rng_seed(&r, 5);
    before = r;
    cutmix_batch(batch, copy, N, H, W, CH, 0.0f, pairs, &r);
    CHECK(memcmp(&r, &before, sizeof r) == 0);
    for (int k = 0; k < N; k++) {
        CHECK_EQ_INT(pairs[k].partner, k);
        CHECK(pairs[k].keep == 1.0f);
        for (int e = 0; e < IMG; e++)
            CHECK(batch[k * IMG + e] == tag(k, e));
    }
    /* One image has no other to take from. */
    cutmix_batch(batch, copy, 1, H, W, CH, 1.0f, pairs, &r);
    CHECK(memcmp(&r, &before, sizeof r) == 0);
    CHECK_EQ_INT(pairs[0].partner, 0);
}

/* With p = 1 every image shows its own pixels outside one rectangle and
 * its partner's (as they were before any pasting) inside it, on every
 * channel; the rectangle's area is what keep says. */
TEST(the_pasted_region_is_one_rectangle_of_the_partner_and_keep_is_its_complement)
{
    enum { N = 5, ROUNDS = 200 };
    float batch[N * IMG], copy[N * IMG];
    struct cutmix_pair pairs[N];
    struct rng r;
    rng_seed(&r, 11);
    int mixed = 0, clipped = 0;
    for (int round = 0; round < ROUNDS; round++) {
        fill(batch, N);
        cutmix_batch(batch, copy, N, H, W, CH, 1.0f, pairs, &r);
        for (int k = 0; k < N; k++) {
            int j = pairs[k].partner, y0 = H, y1 = -1, x0 = W, x1 = -1, pasted = 0;
            CHECK(j >= 0 && j < N);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int e = (y * W + x) * CH;
                    float v = batch[k * IMG + e];
                    if (v == tag(k, e))
                        continue;
                    CHECK_MSG(v == tag(j, e), "image %d (%d, %d) holds %g", k, y, x, v);
                    for (int c = 1; c < CH; c++)
                        CHECK(batch[k * IMG + e + c] == tag(j, e + c));
                    pasted++;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                }
            if (!pasted) {
                CHECK_EQ_INT(j, k);
                CHECK(pairs[k].keep == 1.0f);
                continue;
            }
            mixed++;
            CHECK(j != k);
            CHECK_EQ_INT(pasted, (y1 - y0 + 1) * (x1 - x0 + 1)); /* a full rectangle */
            CHECK_NEAR(pairs[k].keep, 1.0 - (double)pasted / (H * W), 1e-6);
            clipped += y0 == 0 || x0 == 0 || y1 == H - 1 || x1 == W - 1;
        }
    }
    /* Nearly every image is mixed (a rectangle rounds to nothing only when
     * λ is close to 1), and centres near the border clip some. */
    CHECK_MSG(mixed > N * ROUNDS * 9 / 10, "%d of %d mixed", mixed, N * ROUNDS);
    CHECK(clipped > 0);
}

/* How often, and with whom: at p = 0.3 the share of mixed images is 0.3
 * within 5 standard deviations, and each of the others is a partner as
 * often as the rest. λ uniform makes the unclipped pasted share 1 − λ
 * uniform too: its mean 1/2 is an upper bound of the clipped mean. */
TEST(mixing_rate_and_partners_follow_the_probabilities)
{
    enum { N = 4, ROUNDS = 5000 };
    static float batch[N * IMG], copy[N * IMG];
    struct cutmix_pair pairs[N];
    struct rng r;
    rng_seed(&r, 23);
    int tried = 0, with[N][N] = {{0}};
    double pasted_share = 0;
    fill(batch, N);
    for (int round = 0; round < ROUNDS; round++) {
        cutmix_batch(batch, copy, N, H, W, CH, 0.3f, pairs, &r);
        memcpy(batch, copy, sizeof batch); /* back to the originals */
        for (int k = 0; k < N; k++) {
            if (pairs[k].partner != k) {
                tried++;
                with[k][pairs[k].partner]++;
                pasted_share += 1.0 - pairs[k].keep;
            }
        }
    }
    double n = (double)N * ROUNDS, sd = sqrt(n * 0.3 * 0.7);
    /* a draw whose rectangle rounds to nothing stays unmixed: a little under 0.3 */
    CHECK_MSG(fabs(tried - 0.3 * n) < 5 * sd + 0.02 * n, "%d mixed of %.0f", tried, n);
    for (int k = 0; k < N; k++) {
        int row = 0;
        for (int j = 0; j < N; j++)
            row += with[k][j];
        CHECK_EQ_INT(with[k][k], 0);
        for (int j = 0; j < N; j++) {
            if (j == k)
                continue;
            double e = row / 3.0, s = sqrt(row * (1.0 / 3) * (2.0 / 3));
            CHECK_MSG(fabs(with[k][j] - e) < 5 * s, "image %d took from %d %d times of %d", k, j,
                      with[k][j], row);
        }
    }
    double mean = pasted_share / tried;
    CHECK_MSG(mean > 0.2 && mean < 0.5, "mean pasted share %.3f", mean);
}

/* model.json's training.augment.cutmix: a probability, off by default. */
TEST(config_reads_the_probability_and_refuses_others)
{
    struct train_config c;
    char err[STRATA_ERR_LEN];
    CHECK(train_config_parse(&c, NULL, "m", err) == 0);
    CHECK(c.augment.cutmix == 0.0f);
    json_t *t = json_loads("{\"augment\": {\"cutmix\": 0.5}}", 0, NULL);
    CHECK(train_config_parse(&c, t, "m", err) == 0);
    CHECK(c.augment.cutmix == 0.5f);
    json_decref(t);
    t = json_loads("{\"augment\": {\"cutmix\": 1.5}}", 0, NULL);
    err[0] = '\0';
    CHECK(train_config_parse(&c, t, "m", err) < 0);
    CHECK_MSG(strstr(err, "cutmix") != NULL, "%s", err);
    json_decref(t);
}

int main(void)
{
    RUN(off_changes_nothing_and_draws_nothing);
    RUN(the_pasted_region_is_one_rectangle_of_the_partner_and_keep_is_its_complement);
    RUN(mixing_rate_and_partners_follow_the_probabilities);
    RUN(config_reads_the_probability_and_refuses_others);
    return check_done();
}
