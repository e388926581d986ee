#include "CCurlShim.h"
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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

/* The engine thread's event loop: libcurl's socket interface driven by epoll. libcurl says
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to time out (TIMERFUNCTION); a
 * round acts only on the sockets that are ready, where curl_multi_perform and curl_multi_poll
 * walk every transfer on every wake-up. An eventfd in the same epoll set wakes the loop from
 * other threads. */
struct ccurl_loop {
    CURLM *multi;
    int epoll_fd;
    int event_fd;
    /* When libcurl wants CURL_SOCKET_TIMEOUT, in CLOCK_MONOTONIC milliseconds; -1 for never. */
    long long deadline_ms;
};

static long long ccurl_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int ccurl_socket_callback(CURL *easy, curl_socket_t socket, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    struct ccurl_loop *loop = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, socket, NULL);  /* already gone if closed */
        return 0;
    }
    struct epoll_event event = {0};
    event.data.fd = socket;
    if (what & CURL_POLL_IN) event.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) event.events |= EPOLLOUT;
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
}

static int ccurl_timer_callback(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    struct ccurl_loop *loop = userp;
    loop->deadline_ms = timeout_ms < 0 ? -1 : ccurl_now_ms() + timeout_ms;
    return 0;
}

void *ccurl_loop_new(void *multi) {
    struct ccurl_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL) return NULL;
    loop->multi = multi;
    loop->deadline_ms = -1;
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.fd = loop->event_fd;
    if (loop->epoll_fd < 0 || loop->event_fd < 0 || epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->event_fd, &event) != 0
        || curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, ccurl_socket_callback) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, loop) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, ccurl_timer_callback) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERDATA, loop) != CURLM_OK) {
        ccurl_loop_free(loop);
        return NULL;
    }
    return loop;
}

void ccurl_loop_free(void *pointer) {
    struct ccurl_loop *loop = pointer;
    if (loop == NULL) return;
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, NULL);
    if (loop->epoll_fd >= 0) close(loop->epoll_fd);
    if (loop->event_fd >= 0) close(loop->event_fd);
    free(loop);
}

int ccurl_loop_wakeup(void *pointer) {
    struct ccurl_loop *loop = pointer;
    uint64_t one = 1;
    return write(loop->event_fd, &one, sizeof one) == sizeof one ? 0 : -1;
}

int ccurl_loop_run_once(void *pointer, int max_wait_ms) {
    struct ccurl_loop *loop = pointer;
    int running = 0;
    int wait_ms = max_wait_ms;
    if (loop->deadline_ms >= 0) {
        long long left = loop->deadline_ms - ccurl_now_ms();
        if (left < wait_ms) wait_ms = left < 0 ? 0 : (int)left;
    }
    struct epoll_event events[128];
    int ready = epoll_wait(loop->epoll_fd, events, 128, wait_ms);
    int wait_error = ready < 0 ? errno : 0;  /* libcurl's calls below may change errno */
    for (int i = 0; i < ready; i++) {
        int fd = events[i].data.fd;
        if (fd == loop->event_fd) {
            uint64_t count;
            while (read(loop->event_fd, &count, sizeof count) == sizeof count) {}
            continue;
        }
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(loop->multi, fd, flags, &running);
    }
    if (loop->deadline_ms >= 0 && ccurl_now_ms() >= loop->deadline_ms) {
        loop->deadline_ms = -1;  /* the action may set a new one */
        curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    if (wait_error == 0 || wait_error == EINTR) return 0;
    errno = wait_error;  /* for the caller's log line */
    return -1;
}
