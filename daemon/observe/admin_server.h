// The admin endpoint: a small HTTP/1.1 server on its own listener, apart from the
// proxy listeners so that probes and scrapes never queue behind client traffic and
// can be bound elsewhere (or not at all).
//   GET /healthz  200 while the process runs its loop
//   GET /readyz   200 listening and not draining, else 503
//   GET /metrics  Prometheus text format
//   GET /pools    JSON of the live pool state
// Each response closes its connection: probes and scrapers open one per request,
// and it keeps this server free of pipelining and keep-alive state.
#pragma once

#include "config/config.h"
#include "core/closable.h"

#include <uv.h>

#include <memory>
#include <string>
#include <unordered_map>

namespace pooled {

class AdminConnection;
class Worker;

class AdminServer : public Closable {
public:
    AdminServer(Worker& worker, AdminConfig config);
    ~AdminServer() override;
    // Binds and listens; throws std::runtime_error naming the address.
    void start();
    std::string boundAddress() const;
    const AdminConfig& config() const { return config_; }
    void close(std::function<void()> on_closed) override;

    // AdminConnection calls: the body of a response for `method` `target`.
    struct Reply {
        int status = 200;
        std::string content_type = "text/plain; charset=utf-8";
        std::string body;
    };
    Reply respond(const std::string& method, const std::string& target) const;
    // The connection is done; it is closed and freed by the Worker.
    void endConnection(AdminConnection* connection);

private:
    static void onConnection(uv_stream_t* server, int status);
    std::string poolsJson() const;

    Worker& worker_;
    AdminConfig config_;
    uv_tcp_t tcp_;
    HandleCloser closer_;
    std::unordered_map<AdminConnection*, std::unique_ptr<AdminConnection>> connections_;
    bool closed_ = false;
};

} // namespace pooled
