// bindAndListen and address formatting: see tcp_listen.h.
#include "net/tcp_listen.h"

#include <netinet/in.h>

#include <stdexcept>

namespace pooled {

void bindAndListen(uv_tcp_t& tcp, const std::string& address, uint16_t port, int backlog,
                   uv_connection_cb on_connection, const std::string& what) {
    sockaddr_storage storage{};
    int rc = address.find(':') != std::string::npos
                 ? uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&storage))
                 : uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&storage));
    if (rc == 0)
        rc = uv_tcp_bind(&tcp, reinterpret_cast<const sockaddr*>(&storage), 0);
    if (rc == 0)
        rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp), backlog, on_connection);
    if (rc != 0)
        throw std::runtime_error("cannot listen on " + address + ":" + std::to_string(port) +
                                 (what.empty() ? "" : " (" + what + ")") + ": " +
                                 uv_strerror(rc));
}

std::string localAddress(const uv_tcp_t& tcp) {
    sockaddr_storage address{};
    int length = sizeof address;
    uv_tcp_getsockname(&tcp, reinterpret_cast<sockaddr*>(&address), &length);
    return formatSockaddr(reinterpret_cast<const sockaddr*>(&address));
}

std::string formatSockaddr(const sockaddr* address) {
    char host[64] = "";
    if (address->sa_family == AF_INET6) {
        auto* a6 = reinterpret_cast<const sockaddr_in6*>(address);
        uv_ip6_name(a6, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(a6->sin6_port));
    }
    auto* a4 = reinterpret_cast<const sockaddr_in*>(address);
    uv_ip4_name(a4, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a4->sin_port));
}

} // namespace pooled
