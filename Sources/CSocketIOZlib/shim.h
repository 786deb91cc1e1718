// The system zlib (Debian: zlib1g-dev), nothing else.
#include <zlib.h>
