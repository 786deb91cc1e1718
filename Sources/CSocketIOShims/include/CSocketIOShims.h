#ifndef CSOCKETIO_SHIMS_H
#define CSOCKETIO_SHIMS_H

#include <zlib.h>
#include <openssl/ssl.h>
#include <openssl/bio.h>

// Real functions for zlib's function-like macros, which Swift cannot import. No state, no logic.

/// deflateInit2 (a macro that passes ZLIB_VERSION and sizeof(z_stream)).
int CShims_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy);

/// inflateInit2 (a macro, like deflateInit2).
int CShims_inflateInit2(z_streamp strm, int windowBits);

/// The version of the zlib the process runs with (zlibVersion()).
const char *CShims_zlibVersion(void);

// OpenSSL macro wrappers.

/// SSL_CTX_set_min_proto_version.
int CShims_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version);

/// SSL_CTX_set_max_proto_version.
int CShims_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version);

/// SSL_CTX_set_mode; returns the new mode.
long CShims_SSL_CTX_set_mode(SSL_CTX *ctx, long mode);

/// BIO_pending: bytes waiting to be read from a memory BIO.
long CShims_BIO_pending(BIO *bio);

/// SSL_CTX_set_tlsext_servername_callback plus its argument (SNI).
long CShims_SSL_CTX_set_servername_callback(SSL_CTX *ctx, int (*callback)(SSL *, int *, void *), void *arg);

/// The SSL_OP_* option bits the server sets (they are built with a function-like macro).
uint64_t CShims_SSL_OP_NO_COMPRESSION(void);
uint64_t CShims_SSL_OP_NO_RENEGOTIATION(void);
uint64_t CShims_SSL_OP_CIPHER_SERVER_PREFERENCE(void);

/// OpenSSL_version_num (the runtime library's version).
unsigned long CShims_OpenSSL_version_num(void);

#endif
