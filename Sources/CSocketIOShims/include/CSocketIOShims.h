#ifndef CSOCKETIO_SHIMS_H
#define CSOCKETIO_SHIMS_H

#include <zlib.h>

// Real functions for zlib's function-like macros, which Swift cannot import. No state, no logic.

/// deflateInit2 (a macro that passes ZLIB_VERSION and sizeof(z_stream)).
int CShims_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy);

/// inflateInit2 (a macro, like deflateInit2).
int CShims_inflateInit2(z_streamp strm, int windowBits);

/// The version of the zlib the process runs with (zlibVersion()).
const char *CShims_zlibVersion(void);

#endif
