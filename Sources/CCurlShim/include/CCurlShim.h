#ifndef CCURLSHIM_H
#define CCURLSHIM_H

/// Initialises libcurl once for the whole process (CURL_GLOBAL_DEFAULT).
/// Returns 0 on success, a CURLcode otherwise. Safe to call more than once.
int ccurl_global_init(void);

/// The version string of the linked libcurl, e.g. "libcurl/7.88.1 OpenSSL/3.0.15 ...".
const char *ccurl_version(void);

#endif
