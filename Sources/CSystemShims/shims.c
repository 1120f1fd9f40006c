#define _GNU_SOURCE
#include <malloc.h>
#include "CSystemShims.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <pthread.h>

int sa_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int sa_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    return epoll_ctl(epfd, op, fd, &ev);
}

int sa_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buf[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, buf, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = buf[i].data.fd;
        events[i] = buf[i].events;
    }
    return n;
}

int sa_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int sa_accept(int fd, void *addr, uint32_t *addrlen) {
    socklen_t len = *addrlen;
    int r = accept4(fd, (struct sockaddr *)addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    *addrlen = len;
    return r;
}

int sa_malloc_trim(void) {
    return malloc_trim(0);
}

const void *sa_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len) {
    return memmem(haystack, haystack_len, needle, needle_len);
}

int sa_set_thread_name(const char *name) {
    char short_name[16];
    strncpy(short_name, name, sizeof short_name - 1);
    short_name[sizeof short_name - 1] = 0;
    return pthread_setname_np(pthread_self(), short_name);
}
