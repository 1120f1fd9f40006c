#ifndef SWITCHAUTH_CSYSTEMSHIMS_H
#define SWITCHAUTH_CSYSTEMSHIMS_H
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

/* struct epoll_event is packed on x86_64, which Swift cannot import faithfully; these wrappers take
   and return plain integers instead. */
enum {
    SA_EPOLLIN = 0x001,
    SA_EPOLLOUT = 0x004,
    SA_EPOLLERR = 0x008,
    SA_EPOLLHUP = 0x010,
    SA_EPOLLEXCLUSIVE = 1u << 28,
    SA_EPOLL_CTL_ADD = 1,
    SA_EPOLL_CTL_DEL = 2,
    SA_EPOLL_CTL_MOD = 3,
    /* Linux's option name, which Glibc's Swift module does not export: bind now, choose the port at connect. */
    SA_IP_BIND_ADDRESS_NO_PORT = IP_BIND_ADDRESS_NO_PORT
};
int sa_epoll_create(void);
int sa_epoll_ctl(int epfd, int op, int fd, uint32_t events);
/* Waits like epoll_wait; writes ready descriptors and their event masks into fds/events. */
int sa_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms);
int sa_eventfd(void);
/* accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU extension Glibc's module does not export). */
int sa_accept(int fd, void *addr, uint32_t *addrlen);
/* malloc_trim(0): hands free heap back to the kernel (malloc.h is not in Glibc's module). */
int sa_malloc_trim(void);
/* memmem (a GNU extension Glibc's module does not export): the first needle in haystack, or NULL. */
const void *sa_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len);
/* The calling thread's name as the kernel shows it (top -H, ps -L, perf; at most 15 bytes are
   kept): pthread_setname_np is a GNU extension Glibc's module does not export. */
int sa_set_thread_name(const char *name);
#endif
