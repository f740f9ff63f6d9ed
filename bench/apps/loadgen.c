/* SPDX-License-Identifier: Apache-2.0 */
/* The load generators' shared parts: see loadgen.h. */
#include "loadgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

void loadgen_die(const char* prog, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

double loadgen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double loadgen_proc_cpu(long pid) {
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    _cleanup_free_ char* s = NULL;
    size_t len             = 0;
    struct moat_error err  = {0};
    if (read_file(path, &s, &len, &err) < 0)
        return -1;
    const char* p    = strrchr(s, ')');
    unsigned long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double loadgen_self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void loadgen_push(struct samples* s, double start, double end) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v   = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = (struct sample){start, end};
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

struct latency loadgen_latency(const struct samples* const* sets, size_t nsets, double t0,
                               double t1) {
    size_t total = 0;
    for (size_t i = 0; i < nsets; i++)
        total += sets[i]->n;
    double* lat = xcalloc(total + 1, sizeof(double));
    size_t n    = 0;
    for (size_t i = 0; i < nsets; i++)
        for (size_t k = 0; k < sets[i]->n; k++)
            if (sets[i]->v[k].end >= t0 && sets[i]->v[k].end <= t1)
                lat[n++] = sets[i]->v[k].end - sets[i]->v[k].start;
    qsort(lat, n, sizeof(double), cmp_double);
#define PCT(p) \
    (n ? lat[(size_t)((p) * (double)n) < n ? (size_t)((p) * (double)n) : n - 1] * 1000 : 0)
    struct latency l = {n, PCT(0.50), PCT(0.99), n ? lat[n - 1] * 1000 : 0};
#undef PCT
    free(lat);
    return l;
}
