/* SPDX-License-Identifier: Apache-2.0 */
/* Logging with Gramine's level names (reference/gramine.md §1.3 loader.log_level). */
#include <pthread.h>
#include <string.h>

#include "common.h"

static enum log_level g_log_level = LOG_LEVEL_ERROR;
static FILE* g_log_file;
static const char* g_log_prefix   = "moat";
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_fn g_log_sink;

static const char* const g_level_names[] = {
    [LOG_LEVEL_NONE] = "none",   [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_TRACE] = "trace", [LOG_LEVEL_ALL] = "all",
};

int log_level_parse(const char* name, enum log_level* ret_level) {
    for (size_t i = 0; i < ARRAY_SIZE(g_level_names); i++) {
        if (strcmp(name, g_level_names[i]) == 0) {
            *ret_level = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char* log_level_name(enum log_level level) {
    if ((size_t)level >= ARRAY_SIZE(g_level_names))
        return "unknown";
    return g_level_names[level];
}

void log_set_level(enum log_level level) {
    g_log_level = level;
}

enum log_level log_get_level(void) {
    return g_log_level;
}

void log_set_file(FILE* f) {
    g_log_file = f;
}

void log_set_prefix(const char* prefix) {
    g_log_prefix = prefix;
}

void log_set_sink(log_sink_fn sink) {
    g_log_sink = sink;
}

void moat_vlog(enum log_level level, const char* fmt, va_list ap) {
    if (level > g_log_level || level == LOG_LEVEL_NONE)
        return;
    if (g_log_sink) {
        char* msg = NULL;
        if (vasprintf(&msg, fmt, ap) >= 0) {
            g_log_sink(level, msg);
            free(msg);
        }
        return;
    }
    FILE* out = g_log_file ? g_log_file : stderr;
    pthread_mutex_lock(&g_log_lock);
    if (g_log_prefix)
        fprintf(out, "%s: ", g_log_prefix);
    fprintf(out, "%s: ", log_level_name(level));
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&g_log_lock);
}

void moat_log(enum log_level level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    moat_vlog(level, fmt, ap);
    va_end(ap);
}
