#include "CCurlShim.h"
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>

static pthread_once_t ccurl_once = PTHREAD_ONCE_INIT;
static int ccurl_init_result = 0;

static void ccurl_do_init(void) {
    ccurl_init_result = (int)curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ccurl_global_init(void) {
    pthread_once(&ccurl_once, ccurl_do_init);
    return ccurl_init_result;
}

const char *ccurl_version(void) { return curl_version(); }

void *ccurl_easy_init(void) { return curl_easy_init(); }
void ccurl_easy_cleanup(void *easy) { curl_easy_cleanup((CURL *)easy); }
void ccurl_easy_reset(void *easy) { curl_easy_reset((CURL *)easy); }
const char *ccurl_easy_strerror(int code) { return curl_easy_strerror((CURLcode)code); }

int ccurl_easy_set_url(void *easy, const char *url) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_URL, url);
}

int ccurl_easy_set_post_body(void *easy, const void *body, long length) {
    CURLcode rc = curl_easy_setopt((CURL *)easy, CURLOPT_POST, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt((CURL *)easy, CURLOPT_POSTFIELDSIZE, length);
    if (rc == CURLE_OK) rc = curl_easy_setopt((CURL *)easy, CURLOPT_COPYPOSTFIELDS, length > 0 ? body : "");
    return (int)rc;
}

int ccurl_easy_set_headers(void *easy, void *slist) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_HTTPHEADER, (struct curl_slist *)slist);
}

int ccurl_easy_set_timeouts(void *easy, long total_ms, long connect_ms) {
    CURLcode rc = curl_easy_setopt((CURL *)easy, CURLOPT_TIMEOUT_MS, total_ms);
    if (rc == CURLE_OK) rc = curl_easy_setopt((CURL *)easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    return (int)rc;
}

int ccurl_easy_set_defaults(void *easy) {
    CURL *e = (CURL *)easy;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    return (int)rc;
}

int ccurl_easy_set_write_callback(void *easy, ccurl_data_callback callback, void *userdata) {
    CURLcode rc = curl_easy_setopt((CURL *)easy, CURLOPT_WRITEFUNCTION, callback);
    if (rc == CURLE_OK) rc = curl_easy_setopt((CURL *)easy, CURLOPT_WRITEDATA, userdata);
    return (int)rc;
}

int ccurl_easy_set_header_callback(void *easy, ccurl_data_callback callback, void *userdata) {
    CURLcode rc = curl_easy_setopt((CURL *)easy, CURLOPT_HEADERFUNCTION, callback);
    if (rc == CURLE_OK) rc = curl_easy_setopt((CURL *)easy, CURLOPT_HEADERDATA, userdata);
    return (int)rc;
}

int ccurl_easy_set_private(void *easy, void *pointer) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_PRIVATE, pointer);
}

void *ccurl_easy_get_private(void *easy) {
    char *pointer = NULL;
    curl_easy_getinfo((CURL *)easy, CURLINFO_PRIVATE, &pointer);
    return pointer;
}

long ccurl_easy_get_response_code(void *easy) {
    long code = 0;
    curl_easy_getinfo((CURL *)easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

long long ccurl_easy_get_total_time_us(void *easy) {
    curl_off_t total = 0;
    curl_easy_getinfo((CURL *)easy, CURLINFO_TOTAL_TIME_T, &total);
    return (long long)total;
}

void *ccurl_slist_append(void *list, const char *header) {
    return curl_slist_append((struct curl_slist *)list, header);
}

void ccurl_slist_free_all(void *list) { curl_slist_free_all((struct curl_slist *)list); }

void *ccurl_multi_init(void) { return curl_multi_init(); }
void ccurl_multi_cleanup(void *multi) { curl_multi_cleanup((CURLM *)multi); }
int ccurl_multi_add(void *multi, void *easy) { return (int)curl_multi_add_handle((CURLM *)multi, (CURL *)easy); }
int ccurl_multi_remove(void *multi, void *easy) { return (int)curl_multi_remove_handle((CURLM *)multi, (CURL *)easy); }
int ccurl_multi_perform(void *multi, int *running) { return (int)curl_multi_perform((CURLM *)multi, running); }
int ccurl_multi_poll(void *multi, int timeout_ms) { return (int)curl_multi_poll((CURLM *)multi, NULL, 0, timeout_ms, NULL); }
int ccurl_multi_wakeup(void *multi) { return (int)curl_multi_wakeup((CURLM *)multi); }

int ccurl_multi_set_max_total_connections(void *multi, long count) {
    return (int)curl_multi_setopt((CURLM *)multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, count);
}

int ccurl_multi_set_max_cached_connections(void *multi, long count) {
    return (int)curl_multi_setopt((CURLM *)multi, CURLMOPT_MAXCONNECTS, count);
}

int ccurl_multi_next_done(void *multi, void **easy, int *result) {
    int queued = 0;
    CURLMsg *message;
    while ((message = curl_multi_info_read((CURLM *)multi, &queued)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *easy = message->easy_handle;
            *result = (int)message->data.result;
            return 1;
        }
    }
    return 0;
}

void ccurl_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int ccurl_easy_perform(void *easy) {
    return (int)curl_easy_perform((CURL *)easy);
}
