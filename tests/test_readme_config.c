/* test_readme_config: README.md's configuration table against config.c's keys table,
 * where the defaults live. Every key must have a row, every row must name known keys,
 * and each default must read as the table's (backticks aside). A row may list several
 * keys of one section, "`[train] lr`, `momentum`", with as many comma-separated
 * defaults, or one default for all of them. Run from the source tree (CTest does). */
#include "config.h"
#include "testutil.h"

#include <string.h>

#define MAX_KEYS 64

/* Copies s without backticks and surrounding blanks into out. */
static void clean(const char *s, size_t len, char *out, size_t size)
{
    size_t o = 0;
    while (len > 0 && (*s == ' ' || *s == '`')) s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '`')) len--;
    for (size_t i = 0; i < len && o + 1 < size; i++)
        if (s[i] != '`') out[o++] = s[i];
    out[o] = '\0';
}

/* Splits s at ", " into at most max parts; returns the count. */
static int split(const char *s, char parts[][256], int max)
{
    int n = 0;
    while (n < max) {
        const char *comma = strstr(s, ", ");
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        clean(s, len, parts[n++], sizeof parts[0]);
        if (!comma) break;
        s = comma + 2;
    }
    return n;
}

static int find_key(const char *section, const char *key)
{
    for (int i = 0; i < config_key_count(); i++) {
        const char *s, *k, *shown;
        config_key_default(i, &s, &k, &shown);
        if (strcmp(s, section) == 0 && strcmp(k, key) == 0) return i;
    }
    return -1;
}

/* One table row: "| `[section] key`, `key2` | def, def2 | meaning |". */
static void check_row(const char *line, int *seen)
{
    char cells[3][1024];
    const char *p = line + 1;
    for (int c = 0; c < 3; c++) {
        const char *bar = strstr(p, " | ");
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        clean(p, len, cells[c], sizeof cells[c]);
        p = bar ? bar + 3 : p + len;
    }
    char section[64] = "", names[MAX_KEYS][256], defs[MAX_KEYS][256];
    if (sscanf(cells[0], "[%63[a-z]]", section) != 1) {
        EXPECT(0, "README row without a [section]: %s", line);
        return;
    }
    const char *first = strchr(cells[0], ']') + 1;
    const int nk = split(first, names, MAX_KEYS);
    /* "$RESNET_DDP_DATA, else ..." is one default with a comma in it. */
    const int nd = nk == 1 ? (clean(cells[1], strlen(cells[1]), defs[0], sizeof defs[0]), 1)
                           : split(cells[1], defs, MAX_KEYS);
    EXPECT(nd == nk || nd == 1, "README row for [%s] lists %d keys but %d defaults", section, nk, nd);
    for (int i = 0; i < nk; i++) {
        const int k = find_key(section, names[i]);
        EXPECT(k >= 0, "README lists [%s] %s, which config.c does not know", section, names[i]);
        if (k < 0) continue;
        seen[k]++;
        const char *s, *key, *shown;
        config_key_default(k, &s, &key, &shown);
        const char *doc = defs[nd == 1 ? 0 : i];
        EXPECT(strcmp(doc, shown) == 0, "README gives [%s] %s the default \"%s\"; config.c says \"%s\"",
               section, names[i], doc, shown);
    }
}

int main(void)
{
    FILE *f = fopen("README.md", "r");
    EXPECT(f != NULL, "cannot open README.md (run from the source tree)");
    if (!f) return test_summary("test_readme_config");
    int seen[MAX_KEYS] = {0}, rows = 0;
    char line[4096];
    bool in_table = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "| key | default | meaning |") == 0) {
            in_table = true;
            continue;
        }
        if (!in_table || strncmp(line, "| ---", 5) == 0) continue;
        if (line[0] != '|') break; /* the table ends */
        check_row(line, seen);
        rows++;
    }
    fclose(f);
    EXPECT(rows > 0, "no configuration table (\"| key | default | meaning |\") in README.md");
    EXPECT(config_key_count() <= MAX_KEYS, "more than %d keys", MAX_KEYS);
    for (int i = 0; i < config_key_count() && i < MAX_KEYS; i++) {
        const char *s, *k, *shown;
        config_key_default(i, &s, &k, &shown);
        EXPECT(seen[i] == 1, "[%s] %s appears %d times in README.md's table (expected once)", s, k,
               seen[i]);
    }
    printf("README.md: %d rows, %d keys checked against config.c\n", rows, config_key_count());
    return test_summary("test_readme_config");
}
