/* bench §2's "floor" row: the floor of CPU per request for a connection-pooling proxy on
 * this kernel, with pooled's syscall pattern and no HTTP work: one epoll loop, one read(2)
 * per readable socket, and the sends of a loop turn submitted together through io_uring
 * (one io_uring_enter per turn; epoll_wait shared too), as pooled does. Each accepted
 * client is paired at accept with its own upstream connection, kept for the client's
 * life, bytes copied as they come. Not a proxy: it cannot route, and it relies on
 * request/response traffic (one send always fits; see below).
 *
 *   floor_relay LISTEN_PORT UPSTREAM_PORT     (both on 127.0.0.1; bench/run builds it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#define MAXFD 65536
static int peer[MAXFD];  /* the other side of each open fd; -1 once closed */
static char *bufs[MAXFD]; /* one per fd: a send reads it until the turn's submit */
static struct io_uring ring;

static void close_pair(int fd) {
  int p = peer[fd];
  close(fd);
  close(p);
  peer[fd] = peer[p] = -1;  /* events for them still in this epoll batch are skipped */
}

static struct sockaddr_in loopback(const char *port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  return a;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: floor_relay LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  struct sockaddr_in la = loopback(argv[1]), ua = loopback(argv[2]);
  int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&la, sizeof la) || listen(ls, 4096)) {
    perror("floor_relay: listen");
    return 1;
  }
  if (io_uring_queue_init(4096, &ring, 0)) {
    perror("floor_relay: io_uring");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[512];
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
    perror("floor_relay: epoll");
    return 1;
  }
  for (;;) {
    /* The turn's sends, then their completions (only failures matter: they close). */
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
      int fd = (int)cqe->user_data;
      if (cqe->res < 0 && peer[fd] >= 0) close_pair(fd);
      io_uring_cqe_seen(&ring, cqe);
    }
    int n = epoll_wait(ep, evs, 512, -1);
    if (n < 0 && errno != EINTR) {
      perror("floor_relay: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          /* Blocking connect: loopback, once per client, outside the per-request path. */
          int u = socket(AF_INET, SOCK_STREAM, 0);
          if (u < 0 || c >= MAXFD || u >= MAXFD ||  /* peer[] has no room: refuse */
              connect(u, (struct sockaddr *)&ua, sizeof ua) ||
              fcntl(u, F_SETFL, O_NONBLOCK)) {
            close(c);
            if (u >= 0) close(u);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          peer[c] = u;
          peer[u] = c;
          ev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
          ev.data.fd = u;
          epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
        }
        continue;
      }
      if (peer[fd] < 0) continue;  /* closed earlier in this batch */
      if (!bufs[fd] && !(bufs[fd] = malloc(65536))) {
        close_pair(fd);
        continue;
      }
      ssize_t r = read(fd, bufs[fd], 65536);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {  /* EOF or error on either side ends both */
        close_pair(fd);
        continue;
      }
      /* One send per read, submitted with the turn's others: requests and responses of up
       * to 64 KiB fit in a loopback socket's buffer, whose reader (wrk, the origin) drains
       * it. A send that cannot go at once (MSG_DONTWAIT) fails and closes both sides
       * instead of being buffered, work the floor does not measure: wrk shows it as a
       * connection closed by the server. */
      struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
      if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
      }
      io_uring_prep_send(sqe, peer[fd], bufs[fd], r, MSG_DONTWAIT | MSG_NOSIGNAL);
      sqe->user_data = (unsigned)fd;
    }
  }
}
