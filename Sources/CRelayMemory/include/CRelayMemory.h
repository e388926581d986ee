#ifndef C_RELAY_MEMORY_H
#define C_RELAY_MEMORY_H

/// Returns heap memory glibc holds after frees to the system (malloc_trim(0)); 1 if any was
/// released. A no-op returning 0 where glibc's malloc_trim is not available.
int relay_malloc_trim(void);

#endif
