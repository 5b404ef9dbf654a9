/* readfile.c — reading a whole regular file into memory (see readfile.h). */
#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

int read_whole_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strata_fail(err, errno == ENOENT ? STRATA_E_NOTFOUND : STRATA_E_IO,
                           "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return strata_fail(err, STRATA_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return strata_fail(err, STRATA_E_LIMIT,
                           "%s: %" PRIu64 " bytes, over the %zu bytes expected at most; "
                           "refusing to read it",
                           path, (uint64_t)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return strata_fail(err, STRATA_E_IO, "%s: read failed after %zu of %zu bytes%s%s",
                               path, got, size, e ? ": " : " (file shrank)",
                               e ? strerror(e) : "");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = size;
    return 0;
}
