/*
 * fuzz_form_spool.c — libFuzzer target for the streaming form reader of
 * imports (form_spool): the input's first line is the request's
 * Content-Type, the rest its body, handed over as a file. A field kept is
 * within its limit and its file holds exactly its size; anything else is
 * refused with one of the documented statuses.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "form_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[128];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/strata-fuzz-form-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
    size_t head = nl ? (size_t)(nl - data) : 0;
    char ctype[513];
    memcpy(ctype, data, head);
    ctype[head] = '\0';
    if (memchr(ctype, '\0', head))
        return 0;
    const uint8_t *rest = nl ? nl + 1 : data;
    size_t len = size - (size_t)(rest - data);
    int fd = memfd_create("body", 0);
    if (fd < 0 || (len && write(fd, rest, len) != (ssize_t)len))
        abort();
    struct form_field f[] = {{.name = "meta", .max_bytes = 64, .required = 1},
                             {.name = "model", .max_bytes = 4096, .required = 1},
                             {.name = "images", .max_bytes = 1024}};
    char err[STRATA_ERR_LEN];
    int rc = form_spool(fd, len, ctype, dir, f, 3, err);
    if (rc == 0) {
        for (int i = 0; i < 3; i++) {
            struct stat st;
            if (f[i].required && !f[i].present)
                abort();
            if (f[i].present && (f[i].size > f[i].max_bytes || stat(f[i].path, &st) != 0 ||
                                 (uint64_t)st.st_size != f[i].size))
                abort();
        }
    } else if (rc != STRATA_E_FORMAT && rc != STRATA_E_UNSUPPORTED && rc != STRATA_E_LIMIT) {
        abort();
    }
    close(fd);
    empty_dir();
    return 0;
}
