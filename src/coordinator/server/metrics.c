/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Monitoring on the Prometheus listener (reference/marblerun.md §3.5 "Monitoring"): plain HTTP,
 * GET /metrics in the Prometheus text format (coordinator_state, coordinator_version_info,
 * marble_activations_total, marble_activations_success_total) and GET /events, a JSON array of
 * the newest activations {time, activation: {marbleType, uuid, quote}}.
 *
 * The counters are updated by the mesh threads (under s->lock) and read by the main loop.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moat-config.h"
#include "net.h"
#include "server.h"

/* FNV-1a over type NUL uuid. */
static uint32_t series_hash(const char* type, const char* uuid) {
    uint32_t h = 2166136261u;
    for (const char* p = type; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0) * 16777619u;
    for (const char* p = uuid; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* The series (type, uuid): found, added while there is room, else the overflow series (the
 * last slot, labelled "" ""). Under s->lock. Every activation of a new Marble instance is a new
 * series, so this is a hash lookup, not a scan. */
static struct type_counter* series(struct server* s, const char* type, const char* uuid) {
    if (!s->counter_index)
        s->counter_index = xcalloc(COUNTER_INDEX_SLOTS, sizeof(*s->counter_index));
    if (!s->counters)
        s->counters = xcalloc(COUNTERS_KEPT, sizeof(*s->counters));
    uint32_t i = series_hash(type, uuid) & (COUNTER_INDEX_SLOTS - 1);
    for (; s->counter_index[i]; i = (i + 1) & (COUNTER_INDEX_SLOTS - 1)) {
        struct type_counter* c = &s->counters[s->counter_index[i] - 1];
        if (strcmp(c->type, type) == 0 && strcmp(c->uuid, uuid) == 0)
            return c;
    }
    if (s->n_counters < COUNTERS_KEPT - 1) {
        struct type_counter* c = &s->counters[s->n_counters++];
        *c                  = (struct type_counter){.type = xstrdup(type), .uuid = xstrdup(uuid)};
        s->counter_index[i] = (uint32_t)s->n_counters;
        return c;
    }
    struct type_counter* over = &s->counters[COUNTERS_KEPT - 1];
    if (!over->type) {
        *over         = (struct type_counter){.type = xstrdup(""), .uuid = xstrdup("")};
        s->n_counters = COUNTERS_KEPT;
    }
    return over;
}

void metrics_count_activation(struct server* s, const char* type, const char* uuid,
                              const uint8_t* quote, size_t quote_len, bool ok) {
    pthread_mutex_lock(&s->lock);
    struct type_counter* c = series(s, type, uuid);
    c->total++;
    if (ok) {
        c->success++;
        struct activation_event* e = &s->events[s->next_event];
        free(e->marble_type);
        free(e->uuid);
        free(e->quote_b64);
        *e = (struct activation_event){
            .time        = time(NULL),
            .marble_type = xstrdup(type),
            .uuid        = xstrdup(uuid),
            .quote_b64   = base64_encode_alloc(quote ? quote : (const uint8_t*)"", quote_len),
        };
        s->next_event = (s->next_event + 1) % EVENTS_KEPT;
        if (s->n_events < EVENTS_KEPT)
            s->n_events++;
    }
    pthread_mutex_unlock(&s->lock);
}

/* A Prometheus label value: \, " and newline escaped. */
static void label(FILE* f, const char* v) {
    for (const char* p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
}

static int h_metrics(struct server* s, struct net_http_response* resp) {
    char* text = NULL;
    size_t len = 0;
    FILE* f    = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    fprintf(f,
            "# HELP coordinator_state State of the Coordinator (0 uninitialized, 1 recovery, 2 "
            "accepting manifest, 3 accepting marbles).\n"
            "# TYPE coordinator_state gauge\n"
            "coordinator_state %d\n"
            "# HELP coordinator_version_info Version information of the Coordinator.\n"
            "# TYPE coordinator_version_info gauge\n"
            "coordinator_version_info{implementation=\"moat\",simulation=\"%s\",version=\"%s\"} "
            "1\n",
            (int)coord_core_state(s->core), s->simulation ? "true" : "false", MOAT_VERSION);
    pthread_mutex_lock(&s->lock);
    static const char* const names[2] = {"marble_activations_total",
                                         "marble_activations_success_total"};
    static const char* const help[2]  = {"Number of attempted marble activations.",
                                         "Number of successful marble activations."};
    for (int k = 0; k < 2; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", names[k], help[k], names[k]);
        for (size_t i = 0; i < s->n_counters; i++) {
            fprintf(f, "%s{type=\"", names[k]);
            label(f, s->counters[i].type);
            fputs("\",uuid=\"", f);
            label(f, s->counters[i].uuid);
            fprintf(f, "\"} %llu\n",
                    (unsigned long long)(k ? s->counters[i].success : s->counters[i].total));
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (fclose(f) != 0) {
        free(text);
        return -ENOMEM;
    }
    resp->status       = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body         = (uint8_t*)text;
    resp->body_len     = len;
    return 0;
}

static int h_events(struct server* s, struct net_http_response* resp) {
    json_t* a = json_array();
    pthread_mutex_lock(&s->lock);
    size_t first = (s->next_event + EVENTS_KEPT - s->n_events) % EVENTS_KEPT;
    for (size_t i = 0; i < s->n_events; i++) {
        const struct activation_event* e = &s->events[(first + i) % EVENTS_KEPT];
        char t[32];
        struct tm tm;
        gmtime_r(&e->time, &tm);
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_array_append_new(
            a, json_pack("{s:s, s:{s:s, s:s, s:s}}", "time", t, "activation", "marbleType",
                         e->marble_type, "uuid", e->uuid, "quote", e->quote_b64));
    }
    pthread_mutex_unlock(&s->lock);
    char* text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!text)
        return -ENOMEM;
    resp->status       = 200;
    resp->content_type = "application/json";
    resp->body         = (uint8_t*)text;
    resp->body_len     = strlen(text);
    return 0;
}

static int handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx) {
    struct server* s = ctx;
    bool get         = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (get && strcmp(req->path, "/metrics") == 0)
        return h_metrics(s, resp);
    if (get && strcmp(req->path, "/events") == 0)
        return h_events(s, resp);
    resp->status       = 404;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body         = (uint8_t*)xstrdup("404 page not found\n");
    resp->body_len     = strlen((char*)resp->body);
    return 0;
}

int metrics_start(struct server* s, struct moat_error* err) {
    if (!s->cfg.prometheus_addr)
        return 0;
    struct net_http_server_config cfg = {
        .address = s->cfg.prometheus_addr,
        .tls     = false,
        .handler = handle,
        .ctx     = s,
    };
    int r = net_http_server_new(s->base, &cfg, NULL, &s->prometheus, err);
    return r < 0 ? moat_error_prefix(err, "Prometheus listener on %s", s->cfg.prometheus_addr) : 0;
}

void metrics_free(struct server* s) {
    for (size_t i = 0; i < s->n_counters; i++) {
        free(s->counters[i].type);
        free(s->counters[i].uuid);
    }
    free(s->counters);
    free(s->counter_index);
    s->counters      = NULL;
    s->counter_index = NULL;
    s->n_counters    = 0;
    for (size_t i = 0; i < EVENTS_KEPT; i++) {
        free(s->events[i].marble_type);
        free(s->events[i].uuid);
        free(s->events[i].quote_b64);
    }
    memset(s->events, 0, sizeof(s->events));
    s->n_events = s->next_event = 0;
}
