/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: /dev/amber in the sandbox (amberfs.c), Gramine PR #1065's Amber / Intel
 * Trust Authority client (reference/attestation.md §4.4, docs/amber.md) on a FUSE connection of
 * its own, mounted only when the manifest sets an sgx.amber_* or sgx.kbs_* key.
 *
 *   endpoint_url, endpoint_ip, endpoint_apikey   the token service (sgx.amber_url/ip/apikey)
 *   kbs_url, kbs_ip, kbs_keyid                   the key broker (sgx.kbs_url/ip/keyid)
 *   userdata                                     base64 runtime data bound into the quote
 *                                                (sgx.amber_userdata: the public key a secret
 *                                                is wrapped to)
 *        read-write: a read gives the value, a write (one write, a trailing newline dropped)
 *        replaces it; a value that cannot be right (not https://, not an IP, not a UUID, not
 *        base64) is refused with EINVAL and an [ERROR] line in status
 *   token    read: a new token — nonce, quote over the binding report data, attest
 *   secret   read: the key broker's {"wrapped_key", "wrapped_swk"} for kbs_keyid, in exchange
 *            for the last token (a new one when there is none or it expires within 30 s)
 *   renew    write "token" or "secret": fetch it now; the next read of that file returns it
 *   status   [INFO] / [ERROR] lines, the latest last
 * A failed token or secret is an errno on the read (EACCES: refused by the service, e.g. the
 * API key; EHOSTUNREACH: no connection or TLS failed; EPROTO: a refusal or a malformed answer;
 * EDESTADDRREQ: no URL set), with the reason in status and moat's log.
 *
 * The exchanges are made by the supervisor, outside the sandbox, on worker threads (the FUSE
 * thread never waits on the network), over TLS verified against sgx.amber_cacerts or the
 * system store.
 */
#pragma once

#include "sandbox.h"

struct amberfs;
struct devfs;

/* The manifest's values (borrowed for the call; NULL: unset). cacerts_pem: the PEM text of
 * sgx.amber_cacerts, already checked against its measured hash by the caller. */
struct amberfs_config {
    const char *url, *ip, *apikey, *userdata;
    const char *kbs_url, *kbs_ip, *kbs_keyid;
    const char* cacerts_pem;
    size_t cacerts_pem_len;
};

/* Quotes come from `dev` (which must outlive the amberfs). */
struct amberfs* amberfs_new(struct devfs* dev, const struct amberfs_config* cfg,
                            struct moat_error* err);
void amberfs_set_owner(struct amberfs* a, uid_t uid, gid_t gid);
/* Serves the FUSE connection `fuse_fd` (taken over) on a thread of its own. */
int amberfs_start(struct amberfs* a, int fuse_fd, struct moat_error* err) WARN_UNUSED;
/* Waits for the connection to end and for exchanges in flight (cancelled). */
void amberfs_wait(struct amberfs* a);
void amberfs_free(struct amberfs* a);
