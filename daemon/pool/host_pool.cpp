// HostPool: see host_pool.h.
#include "pool/host_pool.h"

#include "core/assert.h"
#include "core/clock.h"
#include "core/worker.h"
#include "pool/pool_manager.h"
#include "pool/upstream_connection.h"
#include "pool/reuse_policy.h"
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
    for (auto& [raw, entry] : connections_) {
        entry.connection->setEvents(nullptr);
        worker_.retire(std::move(entry.connection));
    }
}

void HostPool::transition(UpstreamConnection& connection, PoolEntryState to) {
    auto it = connections_.find(&connection);
    POOLED_ASSERT(it != connections_.end(), "only a pool's own connections change state");
    PoolEntryState from = it->second.state;
    // Connecting -> Idle | Busy, Idle -> Busy, Busy -> Idle; leaving the pool is remove().
    POOLED_ASSERT(from != to && to != PoolEntryState::Connecting,
                  "a connection never returns to connecting, nor moves to where it is");
    if (from == PoolEntryState::Idle) {
        auto idle = std::find(idle_.begin(), idle_.end(), &connection);
        POOLED_ASSERT(idle != idle_.end(), "an Idle entry is in the idle list");
        idle_.erase(idle);
    }
    if (to == PoolEntryState::Idle) {
        POOLED_ASSERT(std::find(idle_.begin(), idle_.end(), &connection) == idle_.end(),
                      "a connection is in the idle list once");
        idle_.push_back(&connection);
    }
    --counts_[static_cast<size_t>(from)];
    ++counts_[static_cast<size_t>(to)];
    it->second.state = to;
    POOLED_ASSERT(count(PoolEntryState::Idle) == idle_.size(), "the idle count is the idle list");
}

std::unique_ptr<UpstreamConnection> HostPool::remove(UpstreamConnection& connection) {
    auto it = connections_.find(&connection);
    if (it == connections_.end())
        return nullptr;
    PoolEntryState state = it->second.state;
    if (state == PoolEntryState::Idle) {
        auto idle = std::find(idle_.begin(), idle_.end(), &connection);
        POOLED_ASSERT(idle != idle_.end(), "an Idle entry is in the idle list");
        idle_.erase(idle);
    }
    POOLED_ASSERT(count(state) > 0, "a state's count covers its entries");
    --counts_[static_cast<size_t>(state)];
    auto owned = std::move(it->second.connection);
    connections_.erase(it);
    POOLED_ASSERT(count(PoolEntryState::Idle) + count(PoolEntryState::Busy) +
                          count(PoolEntryState::Connecting) ==
                      connections_.size(),
                  "every connection is counted in exactly one state");
    return owned;
}

HostPoolStats HostPool::stats() const {
    HostPoolStats s;
    s.idle = count(PoolEntryState::Idle);
    s.connecting = count(PoolEntryState::Connecting);
    s.active = count(PoolEntryState::Busy);
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
           count(PoolEntryState::Connecting) < pool.max_connecting_per_host;
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
        if (!allowedNow(*c)) {
            discard(*c, "destination_denied"); // may serve waiters: look again from scratch
            return takeIdle(waiter, allow_stale);
        }
        transition(*c, PoolEntryState::Busy);
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
            return {Checkout::Kind::Ready, PoolStream(*c), {}};
    }
    if (waiters_.size() >= worker_.config().pool.max_pending)
        return {Checkout::Kind::Failed, {},
                {503, "connection_limit_reached",
                 "too many requests waiting for " + key_.toString()}};
    enqueue(waiter);
    if (!idle_.empty()) {
        // Returned this turn, or skipped by a waiter ahead that needs a fresh one:
        // either way serveWaiters() sorts it out on the next turn.
        scheduleServe();
    } else if (waiters_.size() > count(PoolEntryState::Connecting) && canOpen() &&
               manager_.reserveSlot(*this)) {
        openOne();
    }
    return {Checkout::Kind::Queued, {}, {}};
}

void HostPool::enqueue(PoolWaiter& waiter) {
    POOLED_ASSERT(!waiter.queued(), "a waiter waits in one queue at a time");
    waiters_.push_back(&waiter);
    waiter.queued_in_ = this;
    waiter.list_ = &waiters_;
    waiter.position_ = std::prev(waiters_.end());
}

void HostPool::dequeue(PoolWaiter& waiter) {
    if (waiter.queued_in_ != this)
        return;
    waiter.list_->erase(waiter.position_);
    waiter.queued_in_ = nullptr;
    waiter.list_ = nullptr;
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
    connections_.emplace(c, Entry{std::move(owned), PoolEntryState::Connecting});
    ++counts_[static_cast<size_t>(PoolEntryState::Connecting)];
    worker_.metrics().onUpstreamCreated();
    c->setEvents(this);
    c->open();
}

// `connection` is Busy already: the waiter may release or discard it before this returns.
void HostPool::giveTo(PoolWaiter& waiter, UpstreamConnection& connection) {
    dequeue(waiter);
    waiter.onPoolStream(PoolStream(connection));
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
    if (waiters_.size() > count(PoolEntryState::Connecting) && !canOpen())
        serveFromIdle(true);
    // The queue is served: what release() kept above max_idle_per_host for it goes.
    while (waiters_.empty() && idle_.size() > worker_.config().pool.max_idle_per_host)
        discard(*idle_.front(), "max_idle");
}

void HostPool::openForWaiters() {
    while (waiters_.size() > count(PoolEntryState::Connecting) && canOpen()) {
        if (!manager_.reserveSlot(*this))
            break;
        openOne();
    }
}

void HostPool::onUpstreamConnected(UpstreamConnection& connection) {
    if (!waiters_.empty()) {
        transition(connection, PoolEntryState::Busy);
        giveTo(*waiters_.front(), connection);
        // A connect slot is free again: the next wave starts now for those still waiting,
        // rather than when a response releases a connection (a burst of slow handshakes
        // otherwise stalls at max_connecting_per_host).
        openForWaiters();
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
    transition(connection, PoolEntryState::Idle);
}

void HostPool::onUpstreamConnectFailed(UpstreamConnection& connection, const ProxyError& error) {
    if (spdlog::should_log(spdlog::level::debug)) // toString() allocates: only when logged
        spdlog::debug("connect to {} failed: {} {}", key_.toString(), error.token, error.detail);
    if (auto owned = remove(connection)) {
        worker_.retire(std::move(owned));
        worker_.metrics().onUpstreamClosed(error.token);
        manager_.slotFreed();
    }
    // Fail the waiters that no remaining connection will serve; opening another connection
    // at once would only repeat the failure. Those are taken off the queue first: a handler
    // may queue a new request (a retry), which must not get this error too.
    size_t serviceable = count(PoolEntryState::Connecting) + count(PoolEntryState::Busy);
    if (waiters_.size() > serviceable)
        failFirst(waiters_.size() - serviceable, error);
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

void HostPool::release(UpstreamConnection& connection, bool request_done) {
    const auto& pool = worker_.config().pool;
    connection.setEvents(this);
    learnIdleClose(connection.keepAliveHintMs()); // -1 (no hint) is ignored
    ReuseFacts facts;
    facts.request_done = request_done;
    facts.response_allows_reuse = connection.responseAllowsReuse();
    facts.draining = worker_.draining();
    facts.idle_timeout_ms = effectiveIdleTimeoutMs();
    facts.requests = connection.requests();
    facts.max_requests = pool.max_requests_per_connection;
    facts.now_us = connection.expiresUs() != 0 ? monotonicUs() : 0;
    facts.expires_us = connection.expiresUs();
    facts.idle = idle_.size();
    facts.max_idle = pool.max_idle_per_host;
    facts.waiters = waiters_.size();
    facts.others_starved = waiters_.empty() && manager_.hasStarvedPools();
    ReuseVerdict verdict = reuseVerdict(facts);
    if (!verdict.keep) {
        discard(connection, verdict.cause);
        return;
    }
    connection.enterIdle(facts.idle_timeout_ms);
    connection.setReleasedTick(worker_.tick());
    transition(connection, PoolEntryState::Idle);
    if (!waiters_.empty())
        scheduleServe();
}

void HostPool::discard(UpstreamConnection& connection, std::string_view cause) {
    auto owned = remove(connection);
    if (!owned)
        return;
    worker_.metrics().onUpstreamClosed(cause);
    owned->setEvents(nullptr);
    worker_.retire(std::move(owned));
    manager_.slotFreed();
    openForWaiters();
    if (empty())
        manager_.scheduleSweep();
}

std::unique_ptr<UpstreamConnection> HostPool::detach(UpstreamConnection& connection) {
    auto owned = remove(connection);
    if (!owned)
        return nullptr;
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
    failFirst(waiters_.size(), error);
}

// Envoy's purgePendingRequests: the batch is spliced off the queue before any handler runs
// (iterators stay valid), so a waiter a handler queues meanwhile lands in the queue, not in
// the batch. A waiter of the batch whose owner cancels it meanwhile (its client went away)
// is taken out of the batch by dequeue(), as it would be out of the queue.
void HostPool::failFirst(size_t n, const ProxyError& error) {
    POOLED_ASSERT(n <= waiters_.size(), "fails only waiters that are queued");
    std::list<PoolWaiter*> batch;
    batch.splice(batch.end(), waiters_, waiters_.begin(), std::next(waiters_.begin(), n));
    for (PoolWaiter* waiter : batch)
        waiter->list_ = &batch;
    while (!batch.empty()) {
        PoolWaiter* waiter = batch.front();
        dequeue(*waiter);
        waiter->onPoolError(error);
    }
}

} // namespace pooled
