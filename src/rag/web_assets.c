/* web_assets.c - lookup in the generated table of embedded chat-page files. */
#include "rag/web_assets.h"

#include <string.h>

const ragd_web_asset *ragd_web_asset_find(const char *url_path) {
    if (!url_path || url_path[0] != '/') return NULL;
    size_t n = strcspn(url_path, "?#");
    if (n == 1) {
        url_path = "/index.html";
        n = strlen(url_path);
    }
    for (const ragd_web_asset *a = ragd_web_assets; a->path; a++) {
        if (strlen(a->path) == n && memcmp(a->path, url_path, n) == 0) return a;
    }
    return NULL;
}
