// Listener: see listener.h.
#include "net/listener.h"

#include "core/worker.h"
#include "proxy/client_session.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace pooled {

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
    bindAndListen(tcp_, config_.address, config_.port, 1024, &Listener::onConnection);
}

std::string Listener::boundAddress() const {
    return localAddress(tcp_);
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
    else if (over_limit) {
        worker_.metrics().onDenied("client_limit");
        raw->refuse({503, "connection_limit_reached", "too many client connections"});
    } else
        raw->start();
}

void Listener::close(std::function<void()> on_closed) {
    closer_.add(reinterpret_cast<uv_handle_t*>(&tcp_));
    closer_.arm(std::move(on_closed));
}

} // namespace pooled
