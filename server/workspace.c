/*
 * workspace.c — the import workspace's folders (see workspace.h).
 */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

/* Removes what extraction or an import wrote: a folder tree of plain files
 * (links are removed, never followed). */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void app_remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int app_workspace_prepare(const char *workspace, char *err)
{
    const char *subs[] = {"", "/models", "/data", "/.incoming"};
    char path[1200];
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", workspace, subs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return strata_fail(err, STRATA_E_IO, "cannot create the workspace folder %s: %s",
                               path, strerror(errno));
    }
    /* imports a previous run left half done */
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char old[1500];
        snprintf(old, sizeof old, "%s/%s", path, e->d_name);
        app_remove_tree(old);
    }
    if (d)
        closedir(d);
    return 0;
}
