// Worker, the operations side: configuration reload (SIGHUP), the live gauges the
// admin endpoint exports, and the one-line status systemd shows. Kept apart from
// worker.cpp, which is the request-path side of the Worker.
#include "core/worker.h"

#include "net/listener.h"
#include "observe/access_log.h"
#include "observe/admin_server.h"
#include "pool/pool_manager.h"
#include "tls/tls_context.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <tuple>

namespace pooled {

namespace {

bool sameAccessLog(const AccessLogConfig& a, const AccessLogConfig& b) {
    return a.enabled == b.enabled && a.format == b.format && a.output == b.output;
}

bool sameAdmin(const AdminConfig& a, const AdminConfig& b) {
    return a.enabled == b.enabled && (!a.enabled || (a.address == b.address && a.port == b.port));
}

} // namespace

LiveGauges Worker::liveGauges() const {
    LiveGauges live;
    live.client_connections = counters_.client_connections;
    live.client_connections_total = counters_.client_connections_total;
    live.ready = ready();
    live.io_uring = send_ring_->enabled();
    live.sends = send_ring_->sends();
    live.send_batches = send_ring_->batches();
    if (pools_) {
        for (const auto& [key, pool] : pools_->pools()) {
            const HostPoolStats s = pool->stats();
            live.pools.push_back({key.toString(), s.active, s.idle, s.connecting, s.pending});
        }
    }
    return live;
}

std::string Worker::statusLine() const {
    uint32_t upstream = pools_ ? pools_->totalConnections() : 0;
    return std::string(draining_ ? "draining" : "serving") + ": " +
           std::to_string(listeners_.size()) + " listeners, " +
           std::to_string(counters_.client_connections) + " clients, " +
           std::to_string(counters_.requests) + " requests, " + std::to_string(upstream) +
           " upstream connections";
}

void Worker::reload(std::shared_ptr<const Config> next) {
    if (draining_)
        throw std::runtime_error("draining: reload ignored");
    const Config& old = *config_;

    // 1. Everything that can fail is built first; on failure it is dropped again and the
    //    running configuration stays whole.
    std::vector<Listener*> order;                      // the new listener list, in config order
    std::vector<std::unique_ptr<Listener>> fresh;      // listeners to bind now
    std::vector<bool> kept(listeners_.size(), false);
    std::unique_ptr<AdminServer> fresh_admin;
    std::unique_ptr<AccessLog> fresh_log;
    try {
        tls().prepare(*next); // TLS profiles of new routes; a bad file fails the reload
        for (const auto& lc : next->listeners) {
            Listener* match = nullptr;
            for (size_t i = 0; i < listeners_.size() && !match; ++i) {
                const auto& current = listeners_[i]->config();
                if (!kept[i] && current.address == lc.address && current.port == lc.port) {
                    kept[i] = true;
                    match = listeners_[i].get();
                }
            }
            if (!match) {
                fresh.push_back(std::make_unique<Listener>(*this, lc));
                match = fresh.back().get();
                match->start();
            }
            order.push_back(match);
        }
        if (!sameAdmin(old.admin, next->admin) && next->admin.enabled) {
            fresh_admin = std::make_unique<AdminServer>(*this, next->admin);
            fresh_admin->start();
        }
        if (!sameAccessLog(old.access_log, next->access_log))
            fresh_log = std::make_unique<AccessLog>(next->access_log);
    } catch (...) {
        for (auto& listener : fresh)
            retire(std::move(listener));
        retire(std::move(fresh_admin));
        throw;
    }

    // 2. Commit. Sessions already running keep the snapshot they started with.
    std::vector<std::unique_ptr<Listener>> next_listeners;
    for (size_t n = 0; n < order.size(); ++n) {
        std::unique_ptr<Listener> owned;
        for (auto* pool : {&listeners_, &fresh})
            for (auto& candidate : *pool)
                if (candidate.get() == order[n])
                    owned = std::move(candidate);
        owned->setRoute(next->listeners[n].route);
        next_listeners.push_back(std::move(owned));
    }
    for (auto& listener : listeners_) {
        if (!listener)
            continue; // kept
        spdlog::info("reload: closing listener {}", listener->boundAddress());
        retire(std::move(listener));
    }
    listeners_ = std::move(next_listeners);

    if (!sameAdmin(old.admin, next->admin)) {
        retire(std::move(admin_));
        admin_ = std::move(fresh_admin);
        if (admin_)
            spdlog::info("admin listening on {}", admin_->boundAddress());
    }
    if (fresh_log) {
        access_log_->flush();
        access_log_ = std::move(fresh_log); // the old one drains its queue as it goes
    }
    spdlog::set_level(spdlog::level::from_str(next->log_level));
    if (next->buffers.read_buffer != old.buffers.read_buffer || !(next->dns.max_ttl == old.dns.max_ttl &&
        next->dns.min_ttl == old.dns.min_ttl && next->dns.negative_ttl == old.dns.negative_ttl &&
        next->dns.timeout == old.dns.timeout && next->dns.tries == old.dns.tries))
        spdlog::warn("reload: buffers.read_buffer and dns settings take effect after a restart");

    // Pools of upstreams no route names any more get no new work from routes: their idle
    // connections close now, busy ones finish their request and then time out idle.
    std::set<std::tuple<std::string, std::string, uint16_t>> still_routed;
    for (const auto& r : next->routes)
        still_routed.emplace(r.upstream.scheme, r.upstream.host, r.upstream.port);
    for (const auto& r : old.routes) {
        if (still_routed.count({r.upstream.scheme, r.upstream.host, r.upstream.port}))
            continue;
        for (const auto& [key, pool] : pools_->pools())
            if (key.scheme == r.upstream.scheme && key.host == r.upstream.host &&
                key.port == r.upstream.port)
                pool->closeIdle();
    }

    config_ = std::move(next);
    for (const auto& listener : listeners_) {
        if (listener->config().route.empty())
            spdlog::info("listening on {}", listener->boundAddress());
        else
            spdlog::info("listening on {} route={}", listener->boundAddress(),
                         listener->config().route);
    }
}

} // namespace pooled
