#ifndef CCURLSHIM_H
#define CCURLSHIM_H

#include <stddef.h>
#include <stdint.h>

/// Non-variadic wrappers around libcurl, because Swift cannot call C variadic functions such as
/// curl_easy_setopt. Handles are passed as opaque pointers; the only logic is the engine
/// thread's epoll loop (`ccurl_loop_*`), whose callbacks libcurl calls as C functions.

/// Initialises libcurl once for the whole process (CURL_GLOBAL_DEFAULT).
/// Returns 0 on success, a CURLcode otherwise. Safe to call more than once.
int ccurl_global_init(void);

/// The version string of the linked libcurl, e.g. "libcurl/7.88.1 OpenSSL/3.0.15 ...".
const char *ccurl_version(void);

typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t count, void *userdata);

/// Easy handles.
void *ccurl_easy_init(void);
void ccurl_easy_cleanup(void *easy);
void ccurl_easy_reset(void *easy);
/// Blocking transfer (command-line tools only; the relay itself uses the multi interface).
int ccurl_easy_perform(void *easy);
const char *ccurl_easy_strerror(int code);

/// Per-request options. Each returns a CURLcode (0 = ok).
int ccurl_easy_set_url(void *easy, const char *url);
/// POST with a copy of `length` bytes of `body` (libcurl copies them: CURLOPT_COPYPOSTFIELDS).
int ccurl_easy_set_post_body(void *easy, const void *body, long length);
/// Takes a header list built with ccurl_slist_append; the caller frees it after the transfer.
int ccurl_easy_set_headers(void *easy, void *slist);
int ccurl_easy_set_timeouts(void *easy, long total_ms, long connect_ms);
/// Sets NOSIGNAL, HTTP/2 over TLS when offered, no redirects, TCP_NODELAY and keepalive.
int ccurl_easy_set_defaults(void *easy);
int ccurl_easy_set_write_callback(void *easy, ccurl_data_callback callback, void *userdata);
int ccurl_easy_set_header_callback(void *easy, ccurl_data_callback callback, void *userdata);
int ccurl_easy_set_private(void *easy, void *pointer);
void *ccurl_easy_get_private(void *easy);
long ccurl_easy_get_response_code(void *easy);
/// Total time of the transfer in microseconds.
long long ccurl_easy_get_total_time_us(void *easy);

/// Header lists.
void *ccurl_slist_append(void *list, const char *header);
void ccurl_slist_free_all(void *list);

/// Multi handles.
void *ccurl_multi_init(void);
void ccurl_multi_cleanup(void *multi);
int ccurl_multi_add(void *multi, void *easy);
int ccurl_multi_remove(void *multi, void *easy);
int ccurl_multi_set_max_total_connections(void *multi, long count);
/// CURLMOPT_MAXCONNECTS: idle connections kept for reuse (libcurl's default, four per easy
/// handle currently added, shrinks whenever few transfers are running).
int ccurl_multi_set_max_cached_connections(void *multi, long count);
/// Reads the next finished transfer: returns 1 and fills `easy` and `result`, or 0 if none.
int ccurl_multi_next_done(void *multi, void **easy, int *result);

/// The engine thread's event loop: the multi handle's socket interface on epoll (the one piece
/// of logic here, since libcurl's socket and timer callbacks are C). Only the engine thread
/// runs it; `ccurl_loop_wakeup` may be called from any thread.
/// Registers the callbacks on `multi`; NULL if epoll or the eventfd cannot be made.
void *ccurl_loop_new(void *multi);
void ccurl_loop_free(void *loop);
/// Makes the current or next `ccurl_loop_run_once` return at once. 0 on success.
int ccurl_loop_wakeup(void *loop);
/// Waits (at most `max_wait_ms`, less when libcurl's timer is due sooner) for ready sockets,
/// a wake-up or the timer, and lets libcurl act on them. Finished transfers are then read
/// with ccurl_multi_next_done. Returns 0, or -1 if epoll failed.
int ccurl_loop_run_once(void *loop, int max_wait_ms);

/// Ignores SIGPIPE for the process (writes to a closed socket must not kill the relay).
void ccurl_ignore_sigpipe(void);

#endif
