#ifndef C_RELAY_MEMORY_H
#define C_RELAY_MEMORY_H

/// Returns heap memory glibc holds after frees to the system (malloc_trim(0)); 1 if any was
/// released. A no-op returning 0 where glibc's malloc_trim is not available.
int relay_malloc_trim(void);

/// Names the calling thread as the kernel shows it (`top -H`, perf, /proc/.../comm); Linux keeps
/// at most 15 characters and refuses longer names. Returns 0 on success.
int relay_name_this_thread(const char *name);

#endif
