// HostPool: see host_pool.h.
#include "pool/host_pool.h"

#include "core/clock.h"
#include "core/worker.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "proxy/access_control.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace pooled {

HostPool::HostPool(PoolManager& manager, Worker& worker, PoolKey key)
    : manager_(manager), worker_(worker), key_(std::move(key)),
      learned_idle_ms_(manager.learnedIdleMs(key_)) {}

HostPool::~HostPool() {
    *alive_ = false;
    // Connections still here are closed through the worker, which frees them later.
    for (auto& [raw, owned] : connections_) {
        owned->setEvents(nullptr);
        worker_.retire(std::move(owned));
    }
}

uint32_t HostPool::busyCount() const {
    return static_cast<uint32_t>(connections_.size() - idle_.size()) - connecting_;
}

HostPoolStats HostPool::stats() const {
    HostPoolStats s;
    s.idle = static_cast<uint32_t>(idle_.size());
    s.connecting = connecting_;
    s.active = busyCount();
    s.pending = static_cast<uint32_t>(waiters_.size());
    s.idle_timeout_ms = effectiveIdleTimeoutMs();
    return s;
}

int64_t HostPool::effectiveIdleTimeoutMs() const {
    int64_t configured = worker_.config().pool.idle_timeout.count();
    return learned_idle_ms_ >= 0 ? std::min(configured, learned_idle_ms_) : configured;
}

bool HostPool::canOpen() const {
    const auto& pool = worker_.config().pool;
    return connections_.size() < pool.max_connections_per_host &&
           connecting_ < pool.max_connecting_per_host;
}

bool HostPool::hasIdleNotYetEligible() const {
    for (auto* c : idle_)
        if (c->releasedTick() >= worker_.tick())
            return true;
    return false;
}

UpstreamConnection* HostPool::takeIdle(const PoolWaiter& waiter, bool allow_stale) {
    if (waiter.require_fresh)
        return nullptr;
    // A reload may have denied where an idle connection goes: close those rather than
    // reuse them. Swept once per config; the one handed out is checked every time, as it
    // may have come back to the pool after the sweep.
    const auto& config = worker_.configPtr();
    if (idle_swept_for_.owner_before(config) || config.owner_before(idle_swept_for_)) {
        idle_swept_for_ = config;
        std::vector<UpstreamConnection*> denied;
        for (auto* c : idle_)
            if (!allowedNow(*c))
                denied.push_back(c);
        for (auto* c : denied)
            discard(*c, "destination_denied");
    }
    int64_t now = monotonicUs();
    int64_t fresh_us = worker_.config().pool.fresh_idle_threshold.count() * 1000;
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
        UpstreamConnection* c = *it;
        if (c->releasedTick() >= worker_.tick())
            continue; // returned during this turn: let a pending FIN arrive first
        if (waiter.prefer_fresh && !allow_stale && c->everUsed() &&
            now - c->idleSinceUs() > fresh_us)
            continue;
        idle_.erase(std::next(it).base());
        if (!allowedNow(*c)) {
            discard(*c, "destination_denied"); // may serve waiters: look again from scratch
            return takeIdle(waiter, allow_stale);
        }
        return c;
    }
    return nullptr;
}

bool HostPool::allowedNow(const UpstreamConnection& connection) const {
    return !connection.peerAddress() ||
           destinationAllowed(worker_.config().access, connection.peerAddress());
}

Checkout HostPool::checkout(PoolWaiter& waiter) {
    if (waiters_.empty()) {
        if (auto* c = takeIdle(waiter, false))
            return {Checkout::Kind::Ready, c, {}};
    }
    if (waiters_.size() >= worker_.config().pool.max_pending)
        return {Checkout::Kind::Failed, nullptr,
                {503, "connection_limit_reached",
                 "too many requests waiting for " + key_.toString()}};
    enqueue(waiter);
    if (!idle_.empty()) {
        // Returned this turn, or skipped by a waiter ahead that needs a fresh one:
        // either way serveWaiters() sorts it out on the next turn.
        scheduleServe();
    } else if (waiters_.size() > connecting_ && canOpen() && manager_.reserveSlot(*this)) {
        openOne();
    }
    return {Checkout::Kind::Queued, nullptr, {}};
}

void HostPool::enqueue(PoolWaiter& waiter) {
    waiters_.push_back(&waiter);
    waiter.queued_in_ = this;
    waiter.position_ = std::prev(waiters_.end());
}

void HostPool::dequeue(PoolWaiter& waiter) {
    if (waiter.queued_in_ != this)
        return;
    waiters_.erase(waiter.position_);
    waiter.queued_in_ = nullptr;
}

void HostPool::cancel(PoolWaiter& waiter) {
    dequeue(waiter);
    if (empty())
        manager_.scheduleSweep();
}

void HostPool::openOne() {
    auto owned = std::make_unique<UpstreamConnection>(worker_, key_, worker_.nextConnectionId());
    auto* c = owned.get();
    const auto& pool = worker_.config().pool;
    if (pool.max_connection_lifetime.count() > 0) {
        // Up to 10 % earlier, so connections opened together do not expire together.
        int64_t lifetime_us = pool.max_connection_lifetime.count() * 1000;
        std::uniform_int_distribution<int64_t> jitter(0, lifetime_us / 10);
        c->setExpiresUs(c->createdUs() + lifetime_us - jitter(worker_.random()));
    }
    connections_.emplace(c, std::move(owned));
    worker_.metrics().onUpstreamCreated();
    ++connecting_;
    c->setEvents(this);
    c->open();
}

void HostPool::giveTo(PoolWaiter& waiter, UpstreamConnection& connection) {
    dequeue(waiter);
    waiter.onPoolConnection(connection);
}

void HostPool::scheduleServe() {
    if (serve_scheduled_)
        return;
    serve_scheduled_ = true;
    std::weak_ptr<bool> alive = alive_;
    worker_.defer([this, alive] {
        if (alive.expired())
            return;
        serve_scheduled_ = false;
        serveWaiters();
    });
}

void HostPool::serveWaiters() {
    // Callbacks may queue or cancel other waiters: look at the list afresh each time.
    auto serveFromIdle = [this](bool allow_stale) {
        bool progress = true;
        while (progress && !waiters_.empty()) {
            progress = false;
            for (auto* waiter : waiters_) {
                if (auto* c = takeIdle(*waiter, allow_stale)) {
                    giveTo(*waiter, *c);
                    progress = true;
                    break;
                }
            }
        }
    };
    serveFromIdle(false);
    if (hasIdleNotYetEligible() && !waiters_.empty())
        scheduleServe();
    openForWaiters();
    // No room for fresh connections: an older idle one beats waiting for a slot.
    if (waiters_.size() > connecting_ && !canOpen())
        serveFromIdle(true);
    // The queue is served: what release() kept above max_idle_per_host for it goes.
    while (waiters_.empty() && idle_.size() > worker_.config().pool.max_idle_per_host)
        discard(*idle_.front(), "max_idle");
}

void HostPool::openForWaiters() {
    while (waiters_.size() > connecting_ && canOpen()) {
        if (!manager_.reserveSlot(*this))
            break;
        openOne();
    }
}

void HostPool::onUpstreamConnected(UpstreamConnection& connection) {
    --connecting_;
    if (!waiters_.empty()) {
        giveTo(*waiters_.front(), connection);
        return;
    }
    // Nobody waits any more (a client went away, or the queue drained while it
    // connected): keep it warm for the next one, within max_idle_per_host like a
    // released one (after a burst, idle connections over the cap lingered until their
    // idle timeout).
    if (idle_.size() >= worker_.config().pool.max_idle_per_host) {
        discard(connection, "max_idle");
        return;
    }
    connection.setReleasedTick(0);
    connection.enterIdle(effectiveIdleTimeoutMs());
    idle_.push_back(&connection);
}

void HostPool::onUpstreamConnectFailed(UpstreamConnection& connection, const ProxyError& error) {
    --connecting_;
    if (spdlog::should_log(spdlog::level::debug)) // toString() allocates: only when logged
        spdlog::debug("connect to {} failed: {} {}", key_.toString(), error.token, error.detail);
    auto it = connections_.find(&connection);
    if (it != connections_.end()) {
        auto owned = std::move(it->second);
        connections_.erase(it);
        worker_.retire(std::move(owned));
        worker_.metrics().onUpstreamClosed(error.token);
        manager_.slotFreed();
    }
    // Fail the waiters that no remaining connection will serve; opening another
    // connection at once would only repeat the failure.
    while (!waiters_.empty() && waiters_.size() > connecting_ + busyCount()) {
        PoolWaiter* waiter = waiters_.front();
        dequeue(*waiter);
        waiter->onPoolError(error);
    }
    if (empty())
        manager_.scheduleSweep();
}

void HostPool::onUpstreamError(UpstreamConnection& connection, const ProxyError& error) {
    // Only idle connections report here: the origin closed one, it timed out, or it
    // sent bytes nobody asked for. Only a close says how long the origin keeps idle ones.
    const std::string_view token = error.token;
    if (token == "idle_timeout") {
        discard(connection, "idle_timeout");
        return;
    }
    if (token == "http_protocol_error") {
        discard(connection, "unsolicited_bytes");
        return;
    }
    learnIdleClose((monotonicUs() - connection.idleSinceUs()) / 1000);
    discard(connection, "origin_closed");
}

void HostPool::learnIdleClose(int64_t idle_ms) {
    // The origin closes idle connections after about idle_ms (seen, or announced with
    // Keep-Alive: timeout=N): stay safely below it.
    if (idle_ms <= 0)
        return;
    int64_t margin = std::min<int64_t>(worker_.config().pool.keepalive_margin.count(), idle_ms / 4);
    int64_t learned = std::max<int64_t>(idle_ms - margin, 50);
    if (learned_idle_ms_ < 0 || learned < learned_idle_ms_) {
        learned_idle_ms_ = learned;
        if (spdlog::should_log(spdlog::level::debug)) // toString() allocates: only when logged
            spdlog::debug("{}: origin idle limit about {} ms; idle timeout now {} ms",
                          key_.toString(), idle_ms, learned);
    }
}

void HostPool::removeIdle(UpstreamConnection& connection) {
    auto it = std::find(idle_.begin(), idle_.end(), &connection);
    if (it != idle_.end())
        idle_.erase(it);
}

// Why release() did not keep a connection, for the closed-connections metric.
std::string_view HostPool::closeCause(const UpstreamConnection& connection, bool reusable,
                                      int64_t idle_timeout) const {
    const auto& pool = worker_.config().pool;
    if (!reusable || !connection.responseAllowsReuse())
        return "not_reusable";
    if (worker_.draining())
        return "shutdown";
    if (idle_timeout <= 0)
        return "idle_timeout";
    if (pool.max_requests_per_connection != 0 &&
        connection.requests() >= pool.max_requests_per_connection)
        return "max_requests";
    if (connection.expiresUs() != 0 && monotonicUs() >= connection.expiresUs())
        return "lifetime";
    return idle_.size() >= pool.max_idle_per_host ? "max_idle" : "pool_full";
}

void HostPool::release(UpstreamConnection& connection, bool reusable) {
    const auto& pool = worker_.config().pool;
    connection.setEvents(this);
    learnIdleClose(connection.keepAliveHintMs()); // -1 (no hint) is ignored
    int64_t idle_timeout = effectiveIdleTimeoutMs();
    // Idle connections that queued requests will take next turn are not idle: the cap
    // must not close them only for those requests to open new ones.
    bool idle_room = idle_.size() < pool.max_idle_per_host || idle_.size() < waiters_.size();
    bool keep = reusable && connection.responseAllowsReuse() && !worker_.draining() &&
                idle_timeout > 0 && idle_room &&
                (pool.max_requests_per_connection == 0 ||
                 connection.requests() < pool.max_requests_per_connection) &&
                (connection.expiresUs() == 0 || monotonicUs() < connection.expiresUs());
    // Another origin waits for a slot under max_connections_total: an idle
    // connection here is worth less than its waiting request.
    if (keep && waiters_.empty() && manager_.hasStarvedPools())
        keep = false;
    if (!keep) {
        discard(connection, closeCause(connection, reusable, idle_timeout));
        return;
    }
    connection.enterIdle(idle_timeout);
    connection.setReleasedTick(worker_.tick());
    idle_.push_back(&connection);
    if (!waiters_.empty())
        scheduleServe();
}

void HostPool::discard(UpstreamConnection& connection, std::string_view cause) {
    removeIdle(connection);
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return;
    worker_.metrics().onUpstreamClosed(cause);
    auto owned = std::move(it->second);
    connections_.erase(it);
    owned->setEvents(nullptr);
    worker_.retire(std::move(owned));
    manager_.slotFreed();
    openForWaiters();
    if (empty())
        manager_.scheduleSweep();
}

std::unique_ptr<UpstreamConnection> HostPool::detach(UpstreamConnection& connection) {
    removeIdle(connection);
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return nullptr;
    auto owned = std::move(it->second);
    connections_.erase(it);
    worker_.metrics().onUpstreamClosed("upgraded"); // leaves the pool as a tunnel
    manager_.slotFreed();
    openForWaiters();
    return owned;
}

bool HostPool::closeOldestIdle() {
    for (auto* c : idle_) {
        if (c->releasedTick() < worker_.tick()) {
            discard(*c, "pool_full");
            return true;
        }
    }
    return false;
}

void HostPool::closeIdle() {
    while (!idle_.empty())
        discard(*idle_.front(), "drained");
}

void HostPool::failWaiters(const ProxyError& error) {
    while (!waiters_.empty()) {
        PoolWaiter* waiter = waiters_.front();
        dequeue(*waiter);
        waiter->onPoolError(error);
    }
}

} // namespace pooled
