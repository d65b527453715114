#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/str.h"

char *tu_shared(const char *rel) {
    char buf[4096];
    ragd_shared_path(buf, sizeof buf, rel);
    return strdup(buf);
}

int tu_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

cJSON *tu_load_json(const char *path) {
    char *text = NULL;
    ragd_err err = {0};
    if (ragd_read_file(path, &text, NULL, &err) != 0) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("cannot parse JSON %s", path);
    return j;
}

char *tu_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/ragd-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) fail_msg("mkdtemp failed");
    return strdup(tmpl);
}

void tu_rmtree(const char *path) {
    char cmd[4200];
    if (!path || strlen(path) < 8) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) print_message("rm -rf %s failed\n", path);
}

int tu_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}
