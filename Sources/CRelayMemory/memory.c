#include "CRelayMemory.h"

#if defined(__GLIBC__)
#include <malloc.h>
int relay_malloc_trim(void) { return malloc_trim(0); }
#else
int relay_malloc_trim(void) { return 0; }
#endif
