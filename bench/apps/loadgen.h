/* SPDX-License-Identifier: Apache-2.0 */
/* What the load generators of bench/ share (marble_load.c, amber_load.c): the clock, CPU
 * accounting of this process and of a server, and the latencies of the operations that ended
 * inside a measurement window. */
#pragma once

#include <stddef.h>

struct sample {
    double start, end;
};

/* A worker's samples. */
struct samples {
    struct sample* v;
    size_t n, cap;
};

/* Prints "<prog>: <message>" and exits 1. */
_Noreturn void loadgen_die(const char* prog, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* CLOCK_MONOTONIC in seconds. */
double loadgen_now(void);
/* CPU seconds (user + system) of process `pid` (-1 when unknown), of this process. */
double loadgen_proc_cpu(long pid);
double loadgen_self_cpu(void);
void loadgen_push(struct samples* s, double start, double end);

/* Latencies of the samples of `nworkers` sample sets that ended inside [t0, t1]: their count,
 * p50, p99 and the maximum in milliseconds. */
struct latency {
    size_t n;
    double p50_ms, p99_ms, max_ms;
};
struct latency loadgen_latency(const struct samples* const* sets, size_t nsets, double t0,
                               double t1);
