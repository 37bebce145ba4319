/* LD_PRELOAD shim for benchmarking only: sets TCP_NODELAY on every socket a process accepts.
 *
 * `moat demo-server --http` serves with `axum::serve` and leaves Nagle's algorithm on, so a
 * response written in two pieces (headers, then the event-stream body) waits for the client's
 * delayed ACK: about 40 ms per request on Linux. That is a property of the demo server, not of
 * what the gateway costs; `moat-loadgen --demo-nodelay-preload nodelay.so` measures both sides
 * with it removed. Build: cc -shared -fPIC -O2 -o nodelay.so nodelay.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int c = real(fd, addr, len);
    nodelay(c);
    return c;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int c = real(fd, addr, len, flags);
    nodelay(c);
    return c;
}
