/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat common library: the one public header of src/common.
 *
 * Everything every component needs: cleanup helpers, an error context, logging with Gramine's
 * level names, a bounds-checked byte cursor, constant-time hex/base64, path normalisation,
 * size strings, SHA-256, a growable string buffer and file helpers (read whole file, atomic
 * write). Functions return 0 (or a count) on success and a negative errno value on failure.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Attributes, cleanup and ownership                                                         */

#define WARN_UNUSED      __attribute__((warn_unused_result))
#define PRINTF_FMT(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f)     __attribute__((cleanup(f)))

static inline void freep(void* p) {
    free(*(void**)p);
}
static inline void closep(const int* fd) {
    if (*fd >= 0)
        close(*fd);
}
static inline void fclosep(FILE** f) {
    if (*f)
        fclose(*f);
}
#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership off: returns the value and clears the variable so cleanup does nothing. */
#define TAKE_PTR(p)                  \
    ({                               \
        __typeof__(p) _take_ = (p);  \
        (p)                  = NULL; \
        _take_;                      \
    })
#define TAKE_FD(fd)          \
    ({                       \
        int _takefd_ = (fd); \
        (fd)         = -1;   \
        _takefd_;            \
    })

/* Allocation that aborts on exhaustion (as crun's xmalloc): callers never see NULL. */
void* xmalloc(size_t size);
void* xcalloc(size_t nmemb, size_t size);
void* xrealloc(void* ptr, size_t size);
/* Grows an array to hold at least `need` elements of `elem_size`; updates *cap. */
void* xgrow(void* ptr, size_t* cap, size_t need, size_t elem_size);
char* xstrdup(const char* s);
char* xstrndup(const char* s, size_t n);
/* A copy of `len` bytes (len 0 gives a valid 1-byte allocation). */
void* xmemdup(const void* p, size_t len);
char* xasprintf(const char* fmt, ...) PRINTF_FMT(1, 2);

/* ---------------------------------------------------------------------------------------- */
/* Error context (crun's libcrun_error in spirit): library code fills it, the caller reports */

struct moat_error {
    int code;       /* negative errno-style code, 0 if unset */
    char msg[2048]; /* human-readable message, lowercase, naming the key/file/field */
};

/* Sets the error (if err != NULL) and returns `code` so callers can `return moat_error_set(…)`.
 * `code` should be negative. */
int moat_error_set(struct moat_error* err, int code, const char* fmt, ...) PRINTF_FMT(3, 4);
/* Same, appending ": <strerror(-code)>". */
int moat_error_set_errno(struct moat_error* err, int code, const char* fmt, ...) PRINTF_FMT(3, 4);
/* Prefixes context to an existing message ("ctx: old"); returns err->code. */
int moat_error_prefix(struct moat_error* err, const char* fmt, ...) PRINTF_FMT(2, 3);
void moat_error_clear(struct moat_error* err);

/* Exit codes of every moat command (docs/cli.md). */
enum {
    MOAT_EXIT_OK      = 0,
    MOAT_EXIT_RUNTIME = 1, /* runtime failure */
    MOAT_EXIT_USAGE   = 2, /* usage error or bad manifest */
};

/* ---------------------------------------------------------------------------------------- */
/* Logging: Gramine's levels (loader.log_level).                                              */

enum log_level {
    LOG_LEVEL_NONE    = 0,
    LOG_LEVEL_ERROR   = 1,
    LOG_LEVEL_WARNING = 2,
    LOG_LEVEL_DEBUG   = 3,
    LOG_LEVEL_TRACE   = 4,
    LOG_LEVEL_ALL     = 5,
};

/* Parses "none|error|warning|debug|trace|all"; -EINVAL otherwise. */
int log_level_parse(const char* name, enum log_level* ret_level) WARN_UNUSED;
const char* log_level_name(enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Messages go to stderr unless a file is set (not owned; NULL restores stderr). */
void log_set_file(FILE* f);
/* Prints "<prefix>error: msg\n" when level <= current level; newline appended. */
void moat_log(enum log_level level, const char* fmt, ...) PRINTF_FMT(2, 3);
void moat_vlog(enum log_level level, const char* fmt, va_list ap) PRINTF_FMT(2, 0);
/* Program name used as prefix ("moat: "); may be NULL for none. Not copied. */
void log_set_prefix(const char* prefix);
/* Hands every message that passes the level to `sink` instead (formatted, without newline; the
 * sink does its own locking), e.g. the Coordinator's JSON lines. NULL restores the default. */
typedef void (*log_sink_fn)(enum log_level level, const char* msg);
void log_set_sink(log_sink_fn sink);

#define log_error(...)   moat_log(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) moat_log(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_debug(...)   moat_log(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...)   moat_log(LOG_LEVEL_TRACE, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------- */
/* Byte cursor: every untrusted byte goes through one. Reads fail with -EBADMSG instead of    */
/* overrunning; on failure the cursor is left unchanged.                                      */

struct cursor {
    const uint8_t* p;
    size_t len;
};

static inline struct cursor cursor_init(const void* p, size_t len) {
    return (struct cursor){.p = p, .len = len};
}
int cur_u8(struct cursor* c, uint8_t* ret) WARN_UNUSED;
int cur_u16le(struct cursor* c, uint16_t* ret) WARN_UNUSED;
int cur_u32le(struct cursor* c, uint32_t* ret) WARN_UNUSED;
int cur_u64le(struct cursor* c, uint64_t* ret) WARN_UNUSED;
int cur_u16be(struct cursor* c, uint16_t* ret) WARN_UNUSED;
int cur_u32be(struct cursor* c, uint32_t* ret) WARN_UNUSED;
/* Copies n bytes out. */
int cur_bytes(struct cursor* c, void* out, size_t n) WARN_UNUSED;
/* Returns a pointer to the next n bytes (no copy) and advances. */
int cur_ptr(struct cursor* c, size_t n, const uint8_t** ret) WARN_UNUSED;
int cur_skip(struct cursor* c, size_t n) WARN_UNUSED;
/* Takes a sub-cursor of n bytes and advances past it. */
int cur_sub(struct cursor* c, size_t n, struct cursor* ret) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Hex and base64, constant-time in the data (WireGuard's encoding.c approach).               */

/* Writes 2*len lowercase hex chars + NUL into out (out_size >= 2*len+1). Returns 2*len. */
int hex_encode(const void* in, size_t len, char* out, size_t out_size) WARN_UNUSED;
/* Allocating variant; never fails (aborts on OOM). */
char* hex_encode_alloc(const void* in, size_t len);
/* Decodes exactly in_len hex chars (upper or lower case) into out; in_len must be even and
 * in_len/2 <= out_size. Returns the byte count or -EINVAL. */
int hex_decode(const char* in, size_t in_len, void* out, size_t out_size) WARN_UNUSED;
/* Standard alphabet with padding. Returns malloc'd NUL-terminated text. */
char* base64_encode_alloc(const void* in, size_t len);
/* The value of one hex digit (either case), -1 for anything else. Not constant-time: for
 * public text (UUIDs, manifest data), never for secrets. */
int hex_digit_value(int c);

/* Accepts standard alphabet, padding required when len%4 != 0 would be ambiguous (strict:
 * length must be a multiple of 4). Returns 0 and a malloc'd buffer or -EINVAL. */
int base64_decode_alloc(const char* in, size_t in_len, uint8_t** ret, size_t* ret_len) WARN_UNUSED;
/* base64url without padding (RFC 4648 §5; JWS/JWK, RFC 7515 Appendix C). Decoding refuses
 * padding, the standard alphabet and non-canonical trailing bits. */
/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF; `avail` bytes readable, at least 1), 0 if there is none. */
size_t utf8_seq_len(const void* s, size_t avail);
char* base64url_encode_alloc(const void* in, size_t len);
int base64url_decode_alloc(const char* in, size_t in_len, uint8_t** ret,
                           size_t* ret_len) WARN_UNUSED;

/* UUIDs as github.com/google/uuid: parse accepts the canonical 8-4-4-4-12 form (any case),
 * "urn:uuid:…", "{…}" and 32 bare hex digits; errors are "invalid UUID length: N" and
 * "invalid UUID format". Format writes the canonical lowercase form (37 bytes with NUL). */
#define MOAT_UUID_STR_SIZE 37
int moat_uuid_parse(const char* s, uint8_t ret_uuid[16], struct moat_error* err) WARN_UNUSED;
void moat_uuid_format(const uint8_t uuid[16], char out[MOAT_UUID_STR_SIZE]);
/* A random UUID v4 (RFC 9562) in canonical form. */
void moat_uuid4(char out[MOAT_UUID_STR_SIZE]);

/* ---------------------------------------------------------------------------------------- */
/* Paths                                                                                      */

/* Gramine's get_norm_path semantics: collapses repeated '/', drops "." components, resolves
 * ".." lexically (".." above "/" stays at "/"; leading ".." of a relative path is kept), drops
 * a trailing '/'. "" and "." normalise to "." ; "/" stays "/". Returns a malloc'd string. */
char* path_normalize(const char* path);
/* Joins a and b with exactly one '/' (b absolute ⇒ still appended below a). */
char* path_join(const char* a, const char* b);
bool path_is_absolute(const char* path);

/* ---------------------------------------------------------------------------------------- */
/* Sizes and numbers                                                                          */

/* Gramine's parse_size_str: decimal digits, optional single suffix K/k (2^10), M/m (2^20),
 * G/g (2^30), nothing after it; overflow rejected. Returns 0 or -EINVAL/-ERANGE. */
int parse_size_str(const char* str, uint64_t* ret_size) WARN_UNUSED;
/* Python's repr() of a double: the shortest decimal that reads back bit-identical, positional
 * for decimal exponents -4..15 and with ".0" when it would look like an integer ("0.1", "2.0",
 * "1000000000000000.0", "1e+16", "1.5e-05", "nan", "inf", "-inf"). `size` >= 32. */
void format_double(double d, char* buf, size_t size);
/* Full-check strtoll/strtoull wrappers (base 10 unless base given): whole string must be
 * consumed, no leading spaces, no empty string. */
int parse_i64(const char* str, int base, int64_t* ret) WARN_UNUSED;
int parse_u64(const char* str, int base, uint64_t* ret) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* SHA-256 over OpenSSL                                                                       */

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE    (2 * SHA256_DIGEST_SIZE + 1)

struct sha256_ctx {
    void* md; /* EVP_MD_CTX*, opaque here */
};
int sha256_init(struct sha256_ctx* ctx) WARN_UNUSED;
int sha256_update(struct sha256_ctx* ctx, const void* data, size_t len) WARN_UNUSED;
/* Writes the digest and frees the context (also on failure). */
int sha256_final(struct sha256_ctx* ctx, uint8_t out[SHA256_DIGEST_SIZE]) WARN_UNUSED;
void sha256_ctx_free(struct sha256_ctx* ctx);
int sha256_buf(const void* data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) WARN_UNUSED;
/* Hashes everything readable from fd (from its current offset to EOF). */
int sha256_fd(int fd, uint8_t out[SHA256_DIGEST_SIZE]) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Growable string buffer (always NUL-terminated; aborts on OOM).                             */

struct strbuf {
    char* buf;
    size_t len;
    size_t cap;
};
#define STRBUF_INIT \
    { NULL, 0, 0 }
void strbuf_append(struct strbuf* sb, const char* s, size_t n);
void strbuf_puts(struct strbuf* sb, const char* s);
void strbuf_putc(struct strbuf* sb, char c);
void strbuf_printf(struct strbuf* sb, const char* fmt, ...) PRINTF_FMT(2, 3);
/* Appends code point cp (< 0x110000; surrogates are the caller's to refuse) as UTF-8. */
void strbuf_put_utf8(struct strbuf* sb, uint32_t cp);
void strbuf_vprintf(struct strbuf* sb, const char* fmt, va_list ap) PRINTF_FMT(2, 0);
/* Returns the buffer (never NULL, "" when empty) and resets sb. Caller frees. */
char* strbuf_take(struct strbuf* sb, size_t* ret_len);
void strbuf_free(struct strbuf* sb);
static inline void strbuf_freep(struct strbuf* sb) {
    strbuf_free(sb);
}
#define _cleanup_strbuf_ _cleanup_(strbuf_freep)

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

/* Reads a whole file ("-" = stdin) into a malloc'd buffer with a terminating NUL (not counted
 * in *ret_len). Errors name the path. */
int read_file(const char* path, char** ret_buf, size_t* ret_len,
              struct moat_error* err) WARN_UNUSED;
/* Writes atomically: temp file in the same directory, fsync, rename over path, fsync dir.
 * Nothing is left behind on failure. "-" writes to stdout. */
int write_file_atomic(const char* path, const void* buf, size_t len, mode_t mode,
                      struct moat_error* err) WARN_UNUSED;
/* As write_file_atomic, but the file it replaces is renamed to `keep_as` first (when not NULL):
 * at every moment either `path` or `keep_as` holds a complete version. */
int write_file_replace(const char* path, const void* buf, size_t len, mode_t mode,
                       const char* keep_as, struct moat_error* err) WARN_UNUSED;
/* fsync of the directory that holds `path` (after a rename into it). 0 or -errno. */
int fsync_parent_dir(const char* path) WARN_UNUSED;
/* Creates the missing directories on the way to `path` (not `path` itself). 0 or -errno. */
int mkdir_parents(const char* path, mode_t mode) WARN_UNUSED;
/* Writes all of buf to fd, retrying on EINTR and short writes. */
int write_all(int fd, const void* buf, size_t len) WARN_UNUSED;
/* Reads up to len bytes, retrying on EINTR and short reads; returns bytes read (< len at EOF). */
ssize_t read_full(int fd, void* buf, size_t len) WARN_UNUSED;

/* Number of online CPUs (>= 1). */
int cpu_count(void);
/* Monotonic time in nanoseconds. */
uint64_t time_now_ns(void);
