/*
 * test_dataset.c — listing and loading labelled image folders.
 *
 * Builds its own tree under /tmp with images written by strata's encoders:
 * classes created in unsorted order, mixed-case extensions, hidden files and
 * folders, a folder without images, a directory named like an image, a
 * corrupt .jpg. Checks the order, names, labels, the skipped report and the
 * pixels. The real demo datasets are only read, if present.
 */
#include "check.h"
#include "dataset.h"
#include "image.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

/* Pixel (x, y) channel c of test image number `id`: distinct per file so a
 * mix-up of items and pixels shows. */
static uint8_t pattern(int id, int x, int y, int c)
{
    return (uint8_t)(id * 20 + x * 7 + y * 11 + c * 3);
}

static void write_bytes(const char *rel, const uint8_t *data, size_t len)
{
    char path[512], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (image_write_file(path, data, len, err)) {
        printf("# %s\n", err);
        abort();
    }
}

/* Writes an 8x6 patterned image (or a constant one of another size). */
static void write_image(const char *rel, int id, int jpeg, int w, int h, int constant)
{
    struct image img;
    image_alloc(&img, w, h, NULL);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img.rgb[(y * w + x) * 3 + c] = constant ? (uint8_t)(60 + 50 * c)
                                                        : pattern(id, x, y, c);
    uint8_t *buf;
    size_t len;
    char err[STRATA_ERR_LEN];
    int rc = jpeg ? image_encode_jpeg(&img, 95, &buf, &len, err)
                  : image_encode_png(&img, &buf, &len, err);
    if (rc)
        abort();
    write_bytes(rel, buf, len);
    free(buf);
    image_free(&img);
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (mkdir(path, 0755) != 0)
        abort();
}

static void build_tree(void)
{
    snprintf(root, sizeof root, "/tmp/strata-test-dataset-XXXXXX");
    if (!mkdtemp(root))
        abort();
    make_dir("mini");
    make_dir("mini/train");
    make_dir("mini/empty-split");
    make_dir("mini/empty-split/nothing");
    /* Created out of order; strcmp puts "Mango" < "apple" < "zebra". */
    make_dir("mini/train/zebra");
    make_dir("mini/train/apple");
    make_dir("mini/train/Mango");
    make_dir("mini/train/no-images");   /* only non-images: not a class */
    make_dir("mini/train/.hidden-class"); /* hidden: not a class */
    make_dir("mini/train/apple/dir.png"); /* a directory named like an image */

    write_image("mini/train/zebra/2.png", 7, 0, 8, 6, 0);
    write_image("mini/train/zebra/10.png", 6, 0, 8, 6, 0);
    write_image("mini/train/zebra/1.png", 5, 0, 8, 6, 0);
    const uint8_t junk[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 2, 3};
    write_bytes("mini/train/zebra/broken.jpg", junk, sizeof junk);

    write_image("mini/train/apple/b.png", 3, 0, 8, 6, 0);
    write_image("mini/train/apple/a.JPG", 2, 1, 8, 6, 0);
    write_image("mini/train/apple/c.jpeg", 4, 1, 8, 6, 0);
    write_image("mini/train/apple/Z.png", 1, 0, 8, 6, 0);
    write_image("mini/train/apple/.hidden.png", 9, 0, 8, 6, 0);
    write_bytes("mini/train/apple/notes.txt", (const uint8_t *)"hello", 5);
    write_image("mini/train/apple/png", 9, 0, 8, 6, 0); /* no extension */

    /* Twice the size, constant: loading at 8x6 resizes it, and area
     * averaging keeps a constant exactly. */
    write_image("mini/train/Mango/m.PNG", 0, 0, 16, 12, 1);

    write_bytes("mini/train/no-images/readme.md", (const uint8_t *)"x", 1);
    write_image("mini/train/.hidden-class/x.png", 9, 0, 8, 6, 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(void)
{
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *expect_names[] = {"Mango/m.PNG", "apple/Z.png",  "apple/a.JPG",
                                     "apple/b.png", "apple/c.jpeg", "zebra/1.png",
                                     "zebra/10.png", "zebra/2.png", "zebra/broken.jpg"};
static const int expect_labels[] = {0, 1, 1, 1, 1, 2, 2, 2, 2};
static const int expect_ids[] = {-1, 1, 2, 3, 4, 5, 6, 7}; /* pattern ids of kept items */
static const int expect_jpeg[] = {0, 0, 1, 0, 1, 0, 0, 0};

TEST(open_lists_sorted_classes_and_files)
{
    struct dataset ds;
    char err[STRATA_ERR_LEN];
    int rc = dataset_open(&ds, root, "mini", "train", err);
    CHECK_EQ_INT(rc, STRATA_OK);
    if (rc) {
        printf("#   %s\n", err);
        return;
    }
    char dir[128];
    snprintf(dir, sizeof dir, "%s/mini/train", root);
    CHECK(strcmp(ds.dir, dir) == 0);
    CHECK_EQ_INT(ds.n_classes, 3);
    if (ds.n_classes == 3) {
        CHECK(strcmp(ds.classes[0], "Mango") == 0);
        CHECK(strcmp(ds.classes[1], "apple") == 0);
        CHECK(strcmp(ds.classes[2], "zebra") == 0);
    }
    CHECK_EQ_INT(ds.n, 9);
    for (int i = 0; i < ds.n && i < 9; i++) {
        CHECK_MSG(strcmp(ds.items[i].name, expect_names[i]) == 0, "item %d is %s, expected %s",
                  i, ds.items[i].name, expect_names[i]);
        CHECK_EQ_INT(ds.items[i].label, expect_labels[i]);
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, expect_names[i]);
        CHECK(strcmp(ds.items[i].path, path) == 0);
    }
    CHECK_EQ_INT(ds.n_skipped, 0);
    dataset_free(&ds);
    CHECK(ds.n == 0 && ds.items == NULL && ds.classes == NULL && ds.dir == NULL);

    /* A trailing slash on the root changes nothing. */
    char slashed[80];
    snprintf(slashed, sizeof slashed, "%s//", root);
    CHECK_EQ_INT(dataset_open(&ds, slashed, "mini", "train", err), STRATA_OK);
    CHECK(ds.dir && strcmp(ds.dir, dir) == 0);
    dataset_free(&ds);
}

static int progress_calls, progress_last_done, progress_total, progress_in_order;

static void on_progress(int done, int total, void *user)
{
    CHECK(user == &progress_calls);
    progress_in_order &= done == progress_last_done + 1;
    progress_last_done = done;
    progress_total = total;
    progress_calls++;
}

TEST(load_decodes_resizes_and_skips_the_corrupt_file)
{
    struct dataset ds;
    char err[STRATA_ERR_LEN];
    if (dataset_open(&ds, root, "mini", "train", err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const int w = 8, h = 6;
    uint8_t *px = malloc((size_t)ds.n * w * h * 3);
    memset(px, 0xab, (size_t)ds.n * w * h * 3);
    progress_calls = progress_last_done = progress_total = 0;
    progress_in_order = 1;
    int kept = dataset_load_images(&ds, w, h, px, on_progress, &progress_calls, err);
    CHECK_EQ_INT(kept, 8);
    CHECK_EQ_INT(ds.n, 8);
    CHECK_EQ_INT(progress_calls, 9);
    CHECK_EQ_INT(progress_total, 9);
    CHECK(progress_in_order);

    /* The corrupt file is reported as "path: reason" and removed. */
    CHECK_EQ_INT(ds.n_skipped, 1);
    if (ds.n_skipped == 1) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s/zebra/broken.jpg: ", ds.dir);
        CHECK_MSG(strncmp(ds.skipped[0], prefix, strlen(prefix)) == 0, "%s", ds.skipped[0]);
        CHECK(strlen(ds.skipped[0]) > strlen(prefix) + 5);
    }
    for (int i = 0; i < ds.n && i < 8; i++) {
        CHECK(strcmp(ds.items[i].name, expect_names[i]) == 0);
        CHECK_EQ_INT(ds.items[i].label, expect_labels[i]);
    }
    CHECK_EQ_INT(ds.n_classes, 3); /* classes never change */

    /* Pixels line up with items: PNGs exact, JPEGs (quality 95, tiny
     * smooth ramps) within a few levels, the resized constant exact. */
    for (int i = 0; i < ds.n && i < 8; i++) {
        const uint8_t *f = px + (size_t)i * w * h * 3;
        int worst = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int e = expect_ids[i] < 0 ? 60 + 50 * c : pattern(expect_ids[i], x, y, c);
                    int d = abs(f[(y * w + x) * 3 + c] - e);
                    worst = d > worst ? d : worst;
                }
        CHECK_MSG(worst <= (expect_jpeg[i] ? 8 : 0), "item %d (%s): worst difference %d", i,
                  ds.items[i].name, worst);
    }
    dataset_free(&ds);
    free(px);
}

TEST(load_without_progress_and_at_another_size)
{
    struct dataset ds;
    char err[STRATA_ERR_LEN];
    if (dataset_open(&ds, root, "mini", "train", err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    /* 4x3 halves every 8x6 image: pixel (0,0) of Z.png is the mean of its
     * top-left 2x2 block: pattern 1 -> (20 + 27 + 31 + 38)/4 = 29 in red. */
    uint8_t *px = malloc((size_t)ds.n * 4 * 3 * 3);
    CHECK_EQ_INT(dataset_load_images(&ds, 4, 3, px, NULL, NULL, err), 8);
    CHECK(strcmp(ds.items[1].name, "apple/Z.png") == 0);
    CHECK_EQ_INT(px[1 * 36 + 0], 29);
    CHECK_EQ_INT(dataset_load_images(&ds, 0, 3, px, NULL, NULL, err), STRATA_E_ARG);
    dataset_free(&ds);
    free(px);
}

TEST(missing_or_empty_folders_give_clear_errors)
{
    struct dataset ds;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(dataset_open(&ds, root, "mini", "test", err), STRATA_E_IO);
    CHECK_MSG(strstr(err, "mini/test") && strstr(err, root), "%s", err);
    CHECK_MSG(strstr(err, "--data") && strstr(err, "STRATA_DATA"), "%s", err);
    /* ... and it names the splits that do exist. */
    CHECK_MSG(strstr(err, "has the splits empty-split, train"), "%s", err);
    CHECK(ds.items == NULL && ds.n == 0 && ds.dir == NULL);

    CHECK_EQ_INT(dataset_open(&ds, root, "nosuch", "train", err), STRATA_E_IO);
    CHECK(strstr(err, "nosuch/train") != NULL);

    /* A split whose only class folder holds no image. */
    CHECK_EQ_INT(dataset_open(&ds, root, "mini", "empty-split", err), STRATA_E_NOTFOUND);
    CHECK_MSG(strstr(err, "empty-split") && strstr(err, ".jpg"), "%s", err);
    CHECK(ds.classes == NULL && ds.dir == NULL);

    /* Names that would leave the data root are refused. */
    CHECK_EQ_INT(dataset_open(&ds, root, "..", "train", err), STRATA_E_ARG);
    CHECK_EQ_INT(dataset_open(&ds, root, "mini", "../mini/train", err), STRATA_E_ARG);
    CHECK_EQ_INT(dataset_open(&ds, root, "", "train", err), STRATA_E_ARG);
}

TEST(root_precedence_flag_then_env_then_default)
{
    const char *saved = getenv("STRATA_DATA");
    char *keep = saved ? strdup(saved) : NULL;

    setenv("STRATA_DATA", "/from/env", 1);
    CHECK(strcmp(dataset_root("/from/flag"), "/from/flag") == 0);
    CHECK(strcmp(dataset_root(NULL), "/from/env") == 0);
    CHECK(strcmp(dataset_root(""), "/from/env") == 0);
    setenv("STRATA_DATA", "", 1);
    CHECK(strcmp(dataset_root(NULL), DATASET_DEFAULT_ROOT) == 0);
    unsetenv("STRATA_DATA");
    CHECK(strcmp(dataset_root(NULL), DATASET_DEFAULT_ROOT) == 0);
    CHECK(strcmp(dataset_root("x"), "x") == 0);

    if (keep)
        setenv("STRATA_DATA", keep, 1);
    free(keep);
}

TEST(real_felines_test_split)
{
    /* Read-only look at a demo dataset: documented layout and sizes. */
    struct dataset ds;
    char err[STRATA_ERR_LEN];
    int rc = dataset_open(&ds, dataset_root(NULL), "felines", "test", err);
    CHECK_EQ_INT(rc, STRATA_OK);
    if (rc) {
        printf("#   %s\n", err);
        return;
    }
    const char *names[] = {"cheetah", "jaguar", "leopard", "tiger"};
    CHECK_EQ_INT(ds.n_classes, 4);
    for (int c = 0; c < 4 && c < ds.n_classes; c++)
        CHECK(strcmp(ds.classes[c], names[c]) == 0);
    CHECK_EQ_INT(ds.n, 200);
    CHECK(strcmp(ds.items[0].name, "cheetah/0000.jpg") == 0);
    int sorted = 1;
    for (int i = 1; i < ds.n; i++)
        sorted &= ds.items[i].label >= ds.items[i - 1].label;
    CHECK(sorted);
    uint8_t *px = malloc((size_t)ds.n * 160 * 160 * 3);
    CHECK_EQ_INT(dataset_load_images(&ds, 160, 160, px, NULL, NULL, err), 200);
    CHECK_EQ_INT(ds.n_skipped, 0);
    /* Photographs, not blank frames: each has some spread. */
    int flat = 0;
    for (int i = 0; i < ds.n; i++) {
        const uint8_t *f = px + (size_t)i * 160 * 160 * 3;
        int lo = 255, hi = 0;
        for (int j = 0; j < 160 * 160 * 3; j += 97)
            lo = f[j] < lo ? f[j] : lo, hi = f[j] > hi ? f[j] : hi;
        flat += hi - lo < 20;
    }
    CHECK_EQ_INT(flat, 0);
    free(px);
    dataset_free(&ds);
}

int main(void)
{
    build_tree();
    RUN(open_lists_sorted_classes_and_files);
    RUN(load_decodes_resizes_and_skips_the_corrupt_file);
    RUN(load_without_progress_and_at_another_size);
    RUN(missing_or_empty_folders_give_clear_errors);
    RUN(root_precedence_flag_then_env_then_default);
    remove_tree();

    char probe[512];
    snprintf(probe, sizeof probe, "%s/felines/test", dataset_root(NULL));
    if (access(probe, R_OK) == 0)
        RUN(real_felines_test_split);
    else
        SKIP(real_felines_test_split, "demo datasets not found (set STRATA_DATA)");
    return check_done();
}
