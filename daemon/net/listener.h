// A listening TCP socket; each accepted connection becomes a ClientSession.
#pragma once

#include "config/config.h"
#include "core/closable.h"
#include "net/tcp_listen.h"

#include <uv.h>

#include <string>

namespace pooled {

class Worker;

class Listener : public Closable {
public:
    Listener(Worker& worker, const ListenerConfig& config);
    // Binds and listens; throws std::runtime_error naming the address.
    void start();
    // The bound address, e.g. "127.0.0.1:3128" (the real port when 0 was asked).
    std::string boundAddress() const;
    const ListenerConfig& config() const { return config_; }
    // Socket activation: start() listens on this already bound socket instead of binding.
    void setInheritedFd(int fd) { inherited_fd_ = fd; }
    // A reload that keeps the address may change what the listener routes to.
    void setRoute(std::string route) { config_.route = std::move(route); }
    void close(std::function<void()> on_closed) override;

private:
    static void onConnection(uv_stream_t* server, int status);
    void accept();

    Worker& worker_;
    ListenerConfig config_;
    uv_tcp_t tcp_;
    int inherited_fd_ = -1;
    HandleCloser closer_;
};

} // namespace pooled
