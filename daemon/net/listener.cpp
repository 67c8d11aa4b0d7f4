// Listener: see listener.h.
#include "net/listener.h"

#include "core/worker.h"
#include "proxy/client_session.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace pooled {

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

Listener::Listener(Worker& worker, const ListenerConfig& config)
    : worker_(worker), config_(config) {
    uv_tcp_init(worker_.loop(), &tcp_);
    tcp_.data = this;
}

void Listener::start() {
    if (inherited_fd_ >= 0) {
        int rc = uv_tcp_open(&tcp_, inherited_fd_);
        if (rc == 0)
            rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 1024, &Listener::onConnection);
        if (rc != 0)
            throw std::runtime_error("cannot listen on inherited socket (fd " +
                                     std::to_string(inherited_fd_) + "): " + uv_strerror(rc));
        return;
    }
    sockaddr_storage address{};
    int rc = config_.address.find(':') != std::string::npos
                 ? uv_ip6_addr(config_.address.c_str(), config_.port,
                               reinterpret_cast<sockaddr_in6*>(&address))
                 : uv_ip4_addr(config_.address.c_str(), config_.port,
                               reinterpret_cast<sockaddr_in*>(&address));
    if (rc == 0)
        rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&address), 0);
    if (rc == 0)
        rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 1024, &Listener::onConnection);
    if (rc != 0)
        throw std::runtime_error("cannot listen on " + config_.address + ":" +
                                 std::to_string(config_.port) + ": " + uv_strerror(rc));
}

std::string Listener::boundAddress() const {
    sockaddr_storage address{};
    int length = sizeof address;
    uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&address), &length);
    return formatSockaddr(reinterpret_cast<const sockaddr*>(&address));
}

void Listener::onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<Listener*>(server->data);
    if (status != 0) {
        spdlog::warn("accept on {}: {}", self->boundAddress(), uv_strerror(status));
        return;
    }
    self->accept();
}

void Listener::accept() {
    bool over_limit =
        worker_.counters().client_connections >= worker_.config().limits.max_client_connections;
    auto session = std::make_unique<ClientSession>(worker_, config_);
    auto* raw = session.get();
    worker_.adoptSession(std::move(session)); // owns the handles from here on
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&tcp_), raw->stream()) != 0)
        worker_.endSession(raw);
    else if (over_limit)
        raw->refuse({503, "connection_limit_reached", "too many client connections"});
    else
        raw->start();
}

void Listener::close(std::function<void()> on_closed) {
    closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    closer_.arm(std::move(on_closed));
}

} // namespace pooled
