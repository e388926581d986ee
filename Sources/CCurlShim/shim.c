#include "CCurlShim.h"
#include <curl/curl.h>
#include <pthread.h>

static pthread_once_t ccurl_once = PTHREAD_ONCE_INIT;
static int ccurl_init_result = 0;

static void ccurl_do_init(void) {
    ccurl_init_result = (int)curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ccurl_global_init(void) {
    pthread_once(&ccurl_once, ccurl_do_init);
    return ccurl_init_result;
}

const char *ccurl_version(void) {
    return curl_version();
}
