#include "CSocketIOShims.h"

int CShims_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}

int CShims_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}

const char *CShims_zlibVersion(void) {
    return zlibVersion();
}
