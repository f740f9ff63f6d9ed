/* SPDX-License-Identifier: Apache-2.0 */
/* /dev/amber: see amberfs.h. */
#define FUSE_USE_VERSION 312
#include <arpa/inet.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "amberfs.h"
#include "client.h"
#include "devfs.h"
#include "jwt.h"
#include "pseudofs.h"

enum {
    INO_ROOT = 1,
    INO_URL, /* the settings, in the order of g_files and of struct settings */
    INO_IP,
    INO_APIKEY,
    INO_KBS_URL,
    INO_KBS_IP,
    INO_KBS_KEYID,
    INO_USERDATA,
    INO_RENEW,
    INO_TOKEN,
    INO_SECRET,
    INO_STATUS,
};
#define N_SETTINGS 7 /* INO_URL .. INO_USERDATA */

static const struct {
    const char* name;
    fuse_ino_t ino;
    mode_t mode;
} g_files[] = {
    {"endpoint_url", INO_URL, S_IFREG | 0666},
    {"endpoint_ip", INO_IP, S_IFREG | 0666},
    {"endpoint_apikey", INO_APIKEY, S_IFREG | 0666},
    {"kbs_url", INO_KBS_URL, S_IFREG | 0666},
    {"kbs_ip", INO_KBS_IP, S_IFREG | 0666},
    {"kbs_keyid", INO_KBS_KEYID, S_IFREG | 0666},
    {"userdata", INO_USERDATA, S_IFREG | 0666},
    {"renew", INO_RENEW, S_IFREG | 0666},
    {"token", INO_TOKEN, S_IFREG | 0444},
    {"secret", INO_SECRET, S_IFREG | 0444},
    {"status", INO_STATUS, S_IFREG | 0444},
};

#define VALUE_MAX       8192 /* a setting's bytes (userdata: 6 KiB of key in base64) */
#define STATUS_LINES    32
#define WORKERS_MAX     8  /* exchanges in flight; more reads wait with EAGAIN */
#define TOKEN_MIN_VALID 30 /* seconds a kept token must still be valid for a secret */

struct amberfs {
    struct devfs* dev;
    char* cacerts_pem; /* sgx.amber_cacerts' PEM text, or NULL: the system store */
    size_t cacerts_pem_len;
    uid_t owner_uid;
    gid_t owner_gid;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    char* settings[N_SETTINGS]; /* under lock; never NULL */
    char* token;                /* the last token (for secrets), under lock */
    char* renewed_token;        /* fetched by renew, for the next read of token */
    char* renewed_secret;
    size_t renewed_secret_len;
    char* status[STATUS_LINES]; /* a ring, status_next the oldest */
    size_t status_next;
    unsigned workers;
    volatile bool cancel; /* the connection ended: exchanges in flight stop */
    struct fuse_session* se;
    pthread_t thread;
    bool started;
    struct handle* open; /* under lock: freed at the end when no release came */
};

/* An open file: its content, made at open (settings, status) or at the first read (token,
 * secret: an exchange). */
struct handle {
    fuse_ino_t ino;
    unsigned refs;              /* the open file, and each worker reading it (under a->lock) */
    struct handle *prev, *next; /* the open handles (under a->lock) */
    pthread_mutex_t lock;       /* held while the content is fetched */
    bool loaded;
    int error; /* the fetch's errno, returned to every read */
    char* data;
    size_t len;
};

static struct amberfs* fs_of(fuse_req_t req) {
    return fuse_req_userdata(req);
}

static void wipe_free(char* s, size_t len) {
    if (s)
        OPENSSL_cleanse(s, len);
    free(s);
}

static void wipe_str(char* s) {
    wipe_free(s, s ? strlen(s) : 0);
}

/* Adds a status line "[INFO] ..." or "[ERROR] ..." (and logs it). */
PRINTF_FMT(3, 4) static void status(struct amberfs* a, bool error, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char* msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    for (char* p = msg; p && *p; p++) /* the far side's words reach a terminal: no escapes */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    char* line = xasprintf("[%s] %s\n", error ? "ERROR" : "INFO", msg ? msg : "");
    moat_log(error ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG, "/dev/amber: %s", msg ? msg : "");
    free(msg);
    pthread_mutex_lock(&a->lock);
    free(a->status[a->status_next]);
    a->status[a->status_next] = line;
    a->status_next            = (a->status_next + 1) % STATUS_LINES;
    pthread_mutex_unlock(&a->lock);
}

static char* status_text(struct amberfs* a, size_t* len) {
    struct strbuf sb = STRBUF_INIT;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < STATUS_LINES; i++) {
        const char* l = a->status[(a->status_next + i) % STATUS_LINES];
        if (l)
            strbuf_puts(&sb, l);
    }
    pthread_mutex_unlock(&a->lock);
    char* s = strbuf_take(&sb, len);
    return s ? s : xstrdup("");
}

/* ------------------------------------------------------------------------------------------ */
/* Settings                                                                                     */

static const char* setting_name(fuse_ino_t ino) {
    for (size_t i = 0; i < ARRAY_SIZE(g_files); i++)
        if (g_files[i].ino == ino)
            return g_files[i].name;
    return "?";
}

/* Whether `v` can be the setting's value; else a reason. */
static const char* setting_invalid(fuse_ino_t ino, const char* v) {
    unsigned char a[16];
    uint8_t id[16], *out = NULL;
    size_t len = 0;
    if (!*v)
        return NULL;                 /* unset */
    for (const char* p = v; *p; p++) /* printable ASCII: values reach moat's log and headers */
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return "not printable ASCII without spaces";
    switch (ino) {
        case INO_URL:
        case INO_KBS_URL:
            return strncasecmp(v, "https://", 8) != 0 || !v[8] ? "not an https:// URL" : NULL;
        case INO_IP:
        case INO_KBS_IP:
            return inet_pton(AF_INET, v, a) != 1 && inet_pton(AF_INET6, v, a) != 1
                       ? "not a numeric IPv4 or IPv6 address"
                       : NULL;
        case INO_APIKEY:
            return strlen(v) > 256 ? "longer than 256 characters" : NULL;
        case INO_KBS_KEYID:
            return moat_uuid_parse(v, id, NULL) < 0 ? "not a UUID" : NULL;
        case INO_USERDATA:
            if (base64_decode_alloc(v, strlen(v), &out, &len) < 0)
                return "not base64";
            free(out);
            return NULL;
        default:
            return NULL;
    }
}

/* A copy of the settings (taken under the lock, used without it). */
struct snapshot {
    char* v[N_SETTINGS];
};

static void snapshot_take(struct amberfs* a, struct snapshot* s) {
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < N_SETTINGS; i++)
        s->v[i] = xstrdup(a->settings[i]);
    pthread_mutex_unlock(&a->lock);
}

static void snapshot_clear(struct snapshot* s) {
    for (size_t i = 0; i < N_SETTINGS; i++)
        wipe_str(s->v[i]);
}

#define SNAP(s, ino) ((s)->v[(ino)-INO_URL])

/* ------------------------------------------------------------------------------------------ */
/* The exchanges                                                                                */

static int quote_of(void* ctx, const uint8_t report_data[64], uint8_t** ret, size_t* ret_len,
                    struct moat_error* err) {
    struct amberfs* a = ctx;
    return devfs_quote(a->dev, report_data, ret, ret_len, err);
}

static int errno_of(int r) {
    switch (r) {
        case -EACCES:
        case -EHOSTUNREACH:
        case -EPROTO:
        case -EDESTADDRREQ:
        case -ENOPKG:
        case -EINVAL:
        case -ECANCELED:
        case -EFBIG:
            return -r;
        default:
            return EIO;
    }
}

/* The `exp` of a JWT (unverified: only to know when to fetch a new one), 0 if none. */
static long token_exp(const char* token) {
    struct amber_jwt t = {0};
    long exp           = 0;
    if (amber_jwt_decode(token, &t, NULL) == 0)
        exp = (long)json_integer_value(json_object_get(t.claims, "exp"));
    amber_jwt_clear(&t);
    return exp;
}

static int fetch_token(struct amberfs* a, char** ret) {
    struct snapshot s;
    snapshot_take(a, &s);
    struct moat_error err = {0};
    uint8_t* rd           = NULL;
    size_t rd_len         = 0;
    int r                 = 0;
    const char* url       = SNAP(&s, INO_URL);
    if (*SNAP(&s, INO_USERDATA) &&
        base64_decode_alloc(SNAP(&s, INO_USERDATA), strlen(SNAP(&s, INO_USERDATA)), &rd, &rd_len) <
            0)
        r = moat_error_set(&err, -EINVAL, "userdata is not base64");
    struct amber_endpoint ep       = {.url             = url,
                                      .ip              = SNAP(&s, INO_IP),
                                      .api_key         = SNAP(&s, INO_APIKEY),
                                      .cacerts_pem     = a->cacerts_pem,
                                      .cacerts_pem_len = a->cacerts_pem_len,
                                      .cancel          = &a->cancel};
    enum amber_client_api api      = amber_client_api_of(url);
    struct amber_token_request req = {.service          = &ep,
                                      .api              = api,
                                      .tdx              = devfs_quote_is_vm(a->dev),
                                      .runtime_data     = rd,
                                      .runtime_data_len = rd_len,
                                      .quote            = quote_of,
                                      .quote_ctx        = a};
    char* token                    = NULL;
    if (r == 0)
        r = amber_client_token(&req, &token, &err);
    free(rd);
    if (r < 0) {
        status(a, true, "token: %s", err.msg);
        snapshot_clear(&s);
        return r;
    }
    status(a, false, "token saved (%zu bytes) from %s, %s%s", strlen(token), url,
           amber_client_api_name(api),
           devfs_quote_is_simulated(a->dev)
               ? "; its quote is SIMULATED: the token proves nothing about hardware"
               : "");
    snapshot_clear(&s);
    pthread_mutex_lock(&a->lock);
    wipe_str(a->token);
    a->token = xstrdup(token);
    pthread_mutex_unlock(&a->lock);
    *ret = token;
    return 0;
}

static int fetch_secret(struct amberfs* a, char** ret, size_t* ret_len) {
    pthread_mutex_lock(&a->lock);
    char* token =
        a->token && token_exp(a->token) > time(NULL) + TOKEN_MIN_VALID ? xstrdup(a->token) : NULL;
    pthread_mutex_unlock(&a->lock);
    int r = 0;
    if (!token && (r = fetch_token(a, &token)) < 0) {
        status(a, true, "secret: no token to present");
        return r;
    }
    struct snapshot s;
    snapshot_take(a, &s);
    struct amber_endpoint kbs = {.url             = SNAP(&s, INO_KBS_URL),
                                 .ip              = SNAP(&s, INO_KBS_IP),
                                 .cacerts_pem     = a->cacerts_pem,
                                 .cacerts_pem_len = a->cacerts_pem_len,
                                 .cancel          = &a->cancel};
    struct moat_error err     = {0};
    r = amber_client_transfer(&kbs, SNAP(&s, INO_KBS_KEYID), token, ret, ret_len, &err);
    if (r < 0)
        status(a, true, "secret: %s", err.msg);
    else
        status(a, false, "secret saved (%zu bytes) for key %s", *ret_len, SNAP(&s, INO_KBS_KEYID));
    snapshot_clear(&s);
    wipe_str(token);
    return r;
}

/* Drops a reference to h; the last one unlinks and frees it, its content wiped. */
static void handle_put(struct amberfs* a, struct handle* h) {
    pthread_mutex_lock(&a->lock);
    bool last = --h->refs == 0;
    if (last) {
        if (h->prev)
            h->prev->next = h->next;
        else
            a->open = h->next;
        if (h->next)
            h->next->prev = h->prev;
    }
    pthread_mutex_unlock(&a->lock);
    if (last) {
        pthread_mutex_destroy(&h->lock);
        wipe_free(h->data, h->len);
        free(h);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Workers: a read of token or secret, a write to renew                                         */

struct work {
    struct amberfs* a;
    fuse_req_t req;
    struct handle* h; /* a read */
    size_t size;
    off_t off;
    char what[8]; /* a renew: "token" or "secret" */
};

static void reply_slice(fuse_req_t req, const struct handle* h, size_t size, off_t off) {
    if (h->error)
        fuse_reply_err(req, h->error);
    else if (off < 0 || (size_t)off >= h->len)
        fuse_reply_buf(req, NULL, 0);
    else {
        size_t n = h->len - (size_t)off;
        fuse_reply_buf(req, h->data + off, n < size ? n : size);
    }
}

static void load(struct amberfs* a, struct handle* h) {
    char* data = NULL;
    size_t len = 0;
    int r      = 0;
    pthread_mutex_lock(&a->lock);
    char** renewed = h->ino == INO_TOKEN ? &a->renewed_token : &a->renewed_secret;
    data           = TAKE_PTR(*renewed);
    len            = h->ino == INO_TOKEN ? (data ? strlen(data) : 0) : a->renewed_secret_len;
    pthread_mutex_unlock(&a->lock);
    if (!data && h->ino == INO_TOKEN && (r = fetch_token(a, &data)) == 0)
        len = strlen(data);
    else if (!data && h->ino == INO_SECRET)
        r = fetch_secret(a, &data, &len);
    h->loaded = true;
    h->error  = r < 0 ? errno_of(r) : 0;
    h->data   = data;
    h->len    = len;
}

static void* worker(void* arg) {
    struct work* w    = arg;
    struct amberfs* a = w->a;
    if (w->h) {
        pthread_mutex_lock(&w->h->lock);
        if (!w->h->loaded)
            load(a, w->h);
        reply_slice(w->req, w->h, w->size, w->off);
        pthread_mutex_unlock(&w->h->lock);
        handle_put(a, w->h);
    } else {
        char* data = NULL;
        size_t len = 0;
        int r = !strcmp(w->what, "token") ? fetch_token(a, &data) : fetch_secret(a, &data, &len);
        if (r == 0) {
            pthread_mutex_lock(&a->lock);
            if (!strcmp(w->what, "token")) {
                wipe_str(a->renewed_token);
                a->renewed_token = data;
            } else {
                wipe_free(a->renewed_secret, a->renewed_secret_len);
                a->renewed_secret     = data;
                a->renewed_secret_len = len;
            }
            pthread_mutex_unlock(&a->lock);
            fuse_reply_write(w->req, w->size);
        } else
            fuse_reply_err(w->req, errno_of(r));
    }
    pthread_mutex_lock(&a->lock);
    a->workers--;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
    free(w);
    return NULL;
}

/* Runs w on a thread of its own; false (w freed) when WORKERS_MAX are busy. */
static bool dispatch(struct work* w) {
    struct amberfs* a = w->a;
    pthread_mutex_lock(&a->lock);
    bool ok = a->workers < WORKERS_MAX && !a->cancel;
    if (ok) {
        a->workers++;
        if (w->h)
            w->h->refs++; /* a release during the exchange (the reader killed) leaves it */
    }
    pthread_mutex_unlock(&a->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (ok && pthread_create(&t, &attr, worker, w) != 0) {
        pthread_mutex_lock(&a->lock);
        a->workers--;
        pthread_mutex_unlock(&a->lock);
        if (w->h)
            handle_put(a, w->h);
        ok = false;
    }
    pthread_attr_destroy(&attr);
    if (!ok)
        free(w);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* FUSE operations                                                                              */

static int attr_of(struct amberfs* a, fuse_ino_t ino, struct stat* st) {
    memset(st, 0, sizeof(*st));
    st->st_ino   = ino;
    st->st_nlink = 1;
    st->st_uid   = a->owner_uid;
    st->st_gid   = a->owner_gid;
    if (ino == INO_ROOT) {
        st->st_mode  = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_files); i++) {
        if (g_files[i].ino == ino) {
            st->st_mode = g_files[i].mode;
            return 0;
        }
    }
    return -ENOENT;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    for (size_t i = 0; parent == INO_ROOT && i < ARRAY_SIZE(g_files); i++)
        if (!strcmp(name, g_files[i].name))
            e.ino = g_files[i].ino;
    if (!e.ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    (void)attr_of(fs_of(req), e.ino, &e.attr);
    e.entry_timeout = 1.0;
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)fi;
    struct stat st;
    int r = attr_of(fs_of(req), ino, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                       struct fuse_file_info* fi) {
    (void)attr;
    (void)fi;
    if (!pseudofs_setattr_ok(to_set)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    op_getattr(req, ino, NULL);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info* fi) {
    (void)fi;
    if (ino != INO_ROOT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    _cleanup_free_ char* buf = xmalloc(size);
    size_t pos               = 0;
    for (size_t i = off < 0 ? 0 : (size_t)off; i < ARRAY_SIZE(g_files) + 2; i++) {
        const char* name = i == 0 ? "." : i == 1 ? ".." : g_files[i - 2].name;
        struct stat st   = {.st_ino  = i < 2 ? INO_ROOT : g_files[i - 2].ino,
                            .st_mode = i < 2 ? S_IFDIR : S_IFREG};
        size_t need      = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
        if (pos + need > size)
            break;
        pos += fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)i + 1);
    }
    fuse_reply_buf(req, buf, pos);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct amberfs* a = fs_of(req);
    if (ino == INO_ROOT) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY &&
        (ino == INO_TOKEN || ino == INO_SECRET || ino == INO_STATUS)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    struct handle* h = xcalloc(1, sizeof(*h));
    h->ino           = ino;
    pthread_mutex_init(&h->lock, NULL);
    if (ino >= INO_URL && ino <= INO_USERDATA) {
        pthread_mutex_lock(&a->lock);
        h->data = xstrdup(a->settings[ino - INO_URL]);
        pthread_mutex_unlock(&a->lock);
        h->len    = strlen(h->data);
        h->loaded = true;
    } else if (ino == INO_STATUS || ino == INO_RENEW) {
        h->data   = ino == INO_STATUS ? status_text(a, &h->len) : xstrdup("");
        h->len    = strlen(h->data);
        h->loaded = true;
    }
    h->refs = 1;
    pthread_mutex_lock(&a->lock);
    h->next = a->open;
    if (a->open)
        a->open->prev = h;
    a->open = h;
    pthread_mutex_unlock(&a->lock);
    fi->fh        = (uintptr_t)h;
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info* fi) {
    (void)ino;
    struct handle* h = (struct handle*)(uintptr_t)fi->fh;
    pthread_mutex_lock(&h->lock);
    bool loaded = h->loaded;
    if (loaded)
        reply_slice(req, h, size, off);
    pthread_mutex_unlock(&h->lock);
    if (loaded)
        return;
    struct work* w = xcalloc(1, sizeof(*w));
    *w             = (struct work){.a = fs_of(req), .req = req, .h = h, .size = size, .off = off};
    if (!dispatch(w))
        fuse_reply_err(req, EAGAIN);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
    (void)off;
    (void)fi;
    struct amberfs* a = fs_of(req);
    size_t n          = size;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\0' || buf[n - 1] == '\r'))
        n--;
    if (n > VALUE_MAX || memchr(buf, '\0', n)) {
        status(a, true, "%s: a value of %zu bytes is refused", setting_name(ino), size);
        fuse_reply_err(req, EINVAL);
        return;
    }
    char* v = xstrndup(buf, n);
    if (ino == INO_RENEW) {
        bool ok = !strcmp(v, "token") || !strcmp(v, "secret");
        if (!ok) {
            status(a, true, "renew: write \"token\" or \"secret\"");
            fuse_reply_err(req, EINVAL);
        } else {
            struct work* w = xcalloc(1, sizeof(*w));
            *w             = (struct work){.a = a, .req = req, .size = size};
            snprintf(w->what, sizeof(w->what), "%s", v);
            if (!dispatch(w))
                fuse_reply_err(req, EAGAIN);
        }
        free(v);
        return;
    }
    const char* why = setting_invalid(ino, v);
    if (why) {
        /* the value itself is not repeated: it may be a key */
        status(a, true, "%s: the value written is %s", setting_name(ino), why);
        wipe_str(v);
        fuse_reply_err(req, EINVAL);
        return;
    }
    pthread_mutex_lock(&a->lock);
    wipe_str(a->settings[ino - INO_URL]);
    a->settings[ino - INO_URL] = v;
    if (ino == INO_URL || ino == INO_IP || ino == INO_APIKEY || ino == INO_USERDATA) {
        wipe_str(a->token); /* a token of another service or binding is not presented */
        a->token = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    status(a, false, "%s set", setting_name(ino));
    fuse_reply_write(req, size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    handle_put(fs_of(req), (struct handle*)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    if (ino != INO_ROOT)
        fuse_reply_err(req, ENOTDIR);
    else
        fuse_reply_open(req, fi);
}

static const struct fuse_lowlevel_ops g_ops = {
    .lookup  = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .open    = op_open,
    .read    = op_read,
    .write   = op_write,
    .release = op_release,
};

/* ------------------------------------------------------------------------------------------ */

struct amberfs* amberfs_new(struct devfs* dev, const struct amberfs_config* cfg,
                            struct moat_error* err) {
    struct amberfs* a         = xcalloc(1, sizeof(*a));
    a->dev                    = dev;
    const char* v[N_SETTINGS] = {cfg->url,    cfg->ip,        cfg->apikey,  cfg->kbs_url,
                                 cfg->kbs_ip, cfg->kbs_keyid, cfg->userdata};
    for (size_t i = 0; i < N_SETTINGS; i++)
        a->settings[i] = xstrdup(v[i] ? v[i] : "");
    if (cfg->cacerts_pem) {
        a->cacerts_pem     = xmemdup(cfg->cacerts_pem, cfg->cacerts_pem_len);
        a->cacerts_pem_len = cfg->cacerts_pem_len;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->idle, NULL);
    char* argv[]          = {(char*)"moat-amber", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    a->se                 = fuse_session_new(&args, &g_ops, sizeof(g_ops), a);
    fuse_opt_free_args(&args);
    if (!a->se) {
        moat_error_set(err, -EIO, "cannot create the /dev/amber FUSE session");
        amberfs_free(a);
        return NULL;
    }
    const char* url = a->settings[INO_URL - INO_URL];
    status(a, false, "initialized: token service %s (%s), key broker %s, TLS trust: %s",
           *url ? url : "(not set)", *url ? amber_client_api_name(amber_client_api_of(url)) : "-",
           *a->settings[INO_KBS_URL - INO_URL] ? a->settings[INO_KBS_URL - INO_URL] : "(not set)",
           a->cacerts_pem ? "sgx.amber_cacerts" : "the system's CAs");
    return a;
}

void amberfs_set_owner(struct amberfs* a, uid_t uid, gid_t gid) {
    a->owner_uid = uid;
    a->owner_gid = gid;
}

int amberfs_start(struct amberfs* a, int fuse_fd, struct moat_error* err) {
    if (pseudofs_start(a->se, fuse_fd, &a->thread, "/dev/amber", err) < 0)
        return err->code;
    a->started = true;
    return 0;
}

void amberfs_wait(struct amberfs* a) {
    if (!a)
        return;
    if (a->started) {
        pthread_join(a->thread, NULL);
        a->started = false;
    }
    pthread_mutex_lock(&a->lock);
    a->cancel = true; /* the app is gone: nobody waits for an answer */
    while (a->workers)
        pthread_cond_wait(&a->idle, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

void amberfs_free(struct amberfs* a) {
    if (!a)
        return;
    amberfs_wait(a);
    if (a->se)
        fuse_session_destroy(a->se);
    while (a->open) { /* files the sandbox had open when it ended */
        a->open->refs = 1;
        handle_put(a, a->open);
    }
    for (size_t i = 0; i < N_SETTINGS; i++)
        wipe_str(a->settings[i]);
    wipe_str(a->token);
    wipe_str(a->renewed_token);
    wipe_free(a->renewed_secret, a->renewed_secret_len);
    for (size_t i = 0; i < STATUS_LINES; i++)
        free(a->status[i]);
    free(a->cacerts_pem);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
