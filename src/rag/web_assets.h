/* web_assets.h - the chat page (src/rag/web/: index.html, style.css, app.js) compiled into the
 * binary at build time (cmake/embed_files.cmake), so `ragd serve` serves it offline with no
 * files beside the binary. The HTTP layer answers GET / and GET /<file> from this table.
 * Thread-safety: immutable data; all functions are pure.
 */
#ifndef RAGD_RAG_WEB_ASSETS_H
#define RAGD_RAG_WEB_ASSETS_H

#include <stddef.h>

typedef struct ragd_web_asset {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
} ragd_web_asset;

/* The generated table, terminated by an entry with path == NULL. */
extern const ragd_web_asset ragd_web_assets[];

/* The asset for a request path ("/" means "/index.html"; a query string is ignored), or NULL. */
const ragd_web_asset *ragd_web_asset_find(const char *url_path);

#endif
