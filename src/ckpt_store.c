/* ckpt_store: checkpoint file names, listing, rotation; see ckpt_store.h. */
#include "ckpt_store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

int ckpt_store_prepare(const char *dir, char *err, size_t errsize)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        snprintf(err, errsize, "[checkpoint] dir '%s' is too long", dir);
        return -1;
    }
    /* mkdir -p: create each missing component in turn. */
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errsize, "cannot create checkpoint directory '%s' ([checkpoint] dir): %s",
                         path, strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "[checkpoint] dir '%s' is not a directory", dir);
        return -1;
    }
    /* access() is not enough as root on a read-only mount: try to create a file. */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.write-test-%ld", dir, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f) {
        snprintf(err, errsize, "checkpoint directory '%s' ([checkpoint] dir) is not writable: %s",
                 dir, strerror(errno));
        return -1;
    }
    fclose(f);
    unlink(probe);
    return 0;
}

void ckpt_store_path(const char *dir, int64_t step, char *out, size_t size)
{
    snprintf(out, size, "%s/ckpt-%010" PRId64 ".h5", dir, step);
}

/* Step of a checkpoint file name, or -1 for anything else. */
static int64_t parse_name(const char *name)
{
    int64_t step;
    int used = 0;
    if (sscanf(name, "ckpt-%" SCNd64 ".h5%n", &step, &used) != 1 || used == 0 || name[used] != '\0')
        return -1;
    if (strlen(name) != strlen("ckpt-0000000000.h5") || step < 0) return -1;
    return step;
}

static int newest_first(const void *a, const void *b)
{
    const struct ckpt_entry *x = a, *y = b;
    return (x->step < y->step) - (x->step > y->step);
}

int ckpt_store_list(const char *dir, struct ckpt_entry **entries)
{
    *entries = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t step = parse_name(e->d_name);
        if (step < 0) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            *entries = realloc(*entries, sizeof **entries * (size_t)cap);
            CHECK(*entries, "out of memory");
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        (*entries)[count].path = xmalloc(len);
        snprintf((*entries)[count].path, len, "%s/%s", dir, e->d_name);
        (*entries)[count].step = step;
        count++;
    }
    closedir(d);
    if (count) qsort(*entries, (size_t)count, sizeof **entries, newest_first);
    return count;
}

void ckpt_store_free(struct ckpt_entry *entries, int count)
{
    for (int i = 0; i < count; i++) free(entries[i].path);
    free(entries);
}

int ckpt_store_prune(const char *dir, int keep)
{
    struct ckpt_entry *e;
    int n = ckpt_store_list(dir, &e), removed = 0;
    for (int i = keep; i < n; i++)
        if (unlink(e[i].path) == 0) removed++;
    ckpt_store_free(e, n);
    return removed;
}
