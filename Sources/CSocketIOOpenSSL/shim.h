// The system OpenSSL 3 (Debian: libssl-dev): only the headers the TLS binding uses.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
