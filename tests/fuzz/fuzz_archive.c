/*
 * fuzz_archive.c — libFuzzer target for the unpacking of uploaded photo
 * archives (image_archive_extract): the input is the archive. Whatever it
 * holds, what lands under the target folder is regular files in
 * <split>/<class>/ and nothing else, and a refusal is one of the
 * documented statuses.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[256], file[300], dest[300];

static int check_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_F && !S_ISREG(st->st_mode))
        abort();
    if (flag != FTW_F && flag != FTW_D && flag != FTW_DP)
        abort(); /* a link or something unreadable */
    if (flag == FTW_F && ftw->level != 3) /* dest/<split>/<class>/<file> */
        abort();
    (void)path;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0]) {
        /* Every run makes and removes a few folders: on tmpfs that costs
         * microseconds, on a disk's file system most of the run's time. */
        struct stat shm;
        const char *base = getenv("STRATA_FUZZ_TMP");
        if (!base)
            base = stat("/dev/shm", &shm) == 0 && S_ISDIR(shm.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(root, sizeof root, "%s/strata-fuzz-archive-%d", base, (int)getpid());
        mkdir(root, 0700);
        snprintf(file, sizeof file, "%s/in", root);
        snprintf(dest, sizeof dest, "%s/dest", root);
    }
    FILE *f = fopen(file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    mkdir(dest, 0700);
    struct image_archive_limits lim = {.max_entries = 200, .max_bytes = 1 << 20};
    json_t *report = NULL;
    char err[STRATA_ERR_LEN];
    int rc = image_archive_extract(file, dest, &lim, &report, err);
    if (rc == 0) {
        if (!report || json_integer_value(json_object_get(report, "images")) < 2)
            abort();
        nftw(dest, check_entry, 16, FTW_PHYS);
    } else if (rc != STRATA_E_FORMAT && rc != STRATA_E_LIMIT) {
        fprintf(stderr, "image_archive_extract: status %d: %s\n", rc, err);
        abort();
    }
    json_decref(report);
    nftw(dest, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    /* nothing outside dest */
    struct stat st;
    char outside[340];
    snprintf(outside, sizeof outside, "%s/../escape.jpg", dest);
    if (stat(outside, &st) == 0)
        abort();
    return 0;
}
