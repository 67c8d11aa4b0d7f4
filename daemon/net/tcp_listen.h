// Binding a listening TCP handle and naming addresses: shared by the proxy
// listeners and the admin endpoint.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>

namespace pooled {

// Binds `tcp` to address:port (IPv4 or IPv6 literal) and listens. Throws
// std::runtime_error naming the address and `what` on failure.
void bindAndListen(uv_tcp_t& tcp, const std::string& address, uint16_t port, int backlog,
                   uv_connection_cb on_connection, const std::string& what = "");

// "127.0.0.1:3128" / "[::1]:3128" of the socket's local address.
std::string localAddress(const uv_tcp_t& tcp);

std::string formatSockaddr(const sockaddr* address);

} // namespace pooled
