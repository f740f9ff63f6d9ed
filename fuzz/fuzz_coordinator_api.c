/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Coordinator's client REST API (src/coordinator/server/api.c: routing,
 * query strings, JSON request bodies, base64 fields, JSend replies) in front of a real core in
 * simulation mode, kept across runs so that a manifest POSTed by one input is there for the
 * next. Input: byte 0 picks the method, then the path up to '\n', the query up to '\n' (empty:
 * none), and the rest is the body. Every reply must be a valid status with a JSON body whose
 * "status" is success, fail or error (or the empty 405 of MarbleRun). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* The parts of main.c and mesh.c that api.c calls: no quote, no listeners. */
void slog(const char* level, const char* fmt, ...) {
    (void)level;
    (void)fmt;
}
int server_quote(struct server* s, const uint8_t* nonce, size_t nonce_len, uint8_t** ret,
                 size_t* ret_len, struct moat_error* err) {
    (void)s;
    (void)nonce;
    (void)nonce_len;
    (void)err;
    *ret     = NULL;
    *ret_len = 0;
    return 0;
}
int server_credentials(struct server* s, bool mesh, struct net_tls_credentials* ret,
                       uint8_t ret_hash[32]) {
    (void)s;
    (void)mesh;
    (void)ret_hash;
    *ret = (struct net_tls_credentials){0};
    return -ENOMEM;
}
void server_credentials_clear(struct net_tls_credentials* c) {
    (void)c;
}
void mesh_update_credentials(struct mesh* m) {
    (void)m;
}

static struct server g_server;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    log_set_level(LOG_LEVEL_NONE);
    if (!g_server.core) {
        struct coord_core_opts o = {.simulation = true};
        struct moat_error err    = {0};
        if (coord_core_new(&o, &g_server.core, &err) < 0)
            abort();
        g_server.simulation = true;
    }
    if (size < 1)
        return 0;
    static const char* const methods[] = {"GET", "POST", "PUT", "DELETE"};
    const char* method                 = methods[data[0] % 4];
    const char *p = (const char*)data + 1, *end = (const char*)data + size;
    const char* nl   = memchr(p, '\n', (size_t)(end - p));
    char* path       = xstrndup(p, nl ? (size_t)(nl - p) : (size_t)(end - p));
    char* query      = NULL;
    const char* body = end; /* none */
    if (nl) {
        const char* q   = nl + 1;
        const char* nl2 = memchr(q, '\n', (size_t)(end - q));
        if (nl2 && nl2 > q)
            query = xstrndup(q, (size_t)(nl2 - q));
        body = nl2 ? nl2 + 1 : end;
    }
    size_t body_len = (size_t)(end - body);
    char* b         = xmalloc(body_len + 1);
    memcpy(b, body, body_len);
    b[body_len] = '\0';
    { /* a NUL in the input cuts the path, as evhttp never passes one */
        struct net_http_request req   = {.method   = method,
                                         .path     = path,
                                         .query    = query,
                                         .body     = (const uint8_t*)b,
                                         .body_len = body_len};
        struct net_http_response resp = {0};
        if (api_handle(&req, &resp, &g_server) == 0) {
            if (resp.status < 200 || resp.status > 599 || !resp.body)
                abort();
            json_t* o      = json_loadb((const char*)resp.body, resp.body_len, 0, NULL);
            const char* st = o ? json_string_value(json_object_get(o, "status")) : NULL;
            if (!st || (strcmp(st, "success") && strcmp(st, "fail") && strcmp(st, "error")))
                abort();
            if ((resp.status == 200) != (strcmp(st, "success") == 0))
                abort();
            json_decref(o);
        }
        free(resp.body);
    }
    free(b);
    free(path);
    free(query);
    return 0;
}
