/* bench §2's "floor" row: the floor of CPU per request for a connection-pooling proxy on
 * this kernel. 4 syscalls per request like pooled (read the request, write it upstream,
 * read the response, write it back; epoll_wait shared), no HTTP work: one epoll loop,
 * each accepted client paired at accept with its own upstream connection, kept for the
 * client's life, bytes copied as they come. Not a proxy: it cannot route, and it relies
 * on request/response traffic (one write always fits; see below).
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

#define MAXFD 65536
static int peer[MAXFD];  /* the other side of each open fd; -1 once closed */
static char buf[65536];

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
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[512];
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
    perror("floor_relay: epoll");
    return 1;
  }
  for (;;) {
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
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {  /* EOF or error on either side ends both */
        close_pair(fd);
        continue;
      }
      /* One write per read: requests and responses of up to 64 KiB fit in a loopback
       * socket's buffer, whose reader (wrk, the origin) drains it. A partial write would
       * need buffering and EPOLLOUT, work the floor does not measure: close both sides
       * instead, which wrk shows as a connection closed by the server. */
      if (write(peer[fd], buf, r) != r) close_pair(fd);
    }
  }
}
