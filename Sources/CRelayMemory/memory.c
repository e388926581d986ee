#define _GNU_SOURCE
#include "CRelayMemory.h"
#include <pthread.h>

int relay_name_this_thread(const char *name) { return pthread_setname_np(pthread_self(), name); }

#if defined(__GLIBC__)
#include <malloc.h>
int relay_malloc_trim(void) { return malloc_trim(0); }
#else
int relay_malloc_trim(void) { return 0; }
#endif
