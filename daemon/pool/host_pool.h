// The connections to one PoolKey: idle ones reused most-recent-first, a bounded
// FIFO of waiting requests, and the limits (per host, idle, connecting, pending).
// It drives its connections while they connect or sit idle.
#pragma once

#include "config/config.h"
#include "http/proxy_status.h"
#include "pool/pool_key.h"
#include "pool/pool_stream.h"
#include "pool/upstream_events.h"

#include <cstdint>
#include <list>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pooled {

class HostPool;
class PoolManager;
class UpstreamConnection;
class Worker;

// A request waiting for a connection. Its owner must cancel() it before dying.
class PoolWaiter {
public:
    virtual ~PoolWaiter() = default;
    // The stream is the waiter's until it releases or discards it through the pool.
    virtual void onPoolStream(PoolStream stream) = 0;
    virtual void onPoolError(const ProxyError& error) = 0;

    bool prefer_fresh = false;  // cannot be replayed: avoid long-idle connections
    bool require_fresh = false; // a retry after a reused connection failed
    bool queued() const { return queued_in_ != nullptr; }
    HostPool* queuedIn() const { return queued_in_; }

private:
    friend class HostPool;
    HostPool* queued_in_ = nullptr;
    std::list<PoolWaiter*>* list_ = nullptr; // the queue, or a batch being failed
    std::list<PoolWaiter*>::iterator position_;
};

struct Checkout {
    enum class Kind { Ready, Queued, Failed };
    Kind kind;
    PoolStream stream; // Ready
    ProxyError error;  // Failed
};

// Where a connection is, as its pool sees it. Every move goes through HostPool::transition,
// which asserts it is legal (Envoy's owning lists): a connection is in exactly one state.
enum class PoolEntryState : uint8_t { Connecting, Idle, Busy };

struct HostPoolStats {
    uint32_t active = 0; // busy with a request
    uint32_t idle = 0;
    uint32_t connecting = 0;
    uint32_t pending = 0;
    int64_t idle_timeout_ms = 0; // learned or configured
};

class HostPool : public UpstreamEvents {
public:
    HostPool(PoolManager& manager, Worker& worker, PoolKey key);
    ~HostPool() override;

    Checkout checkout(PoolWaiter& waiter);
    void cancel(PoolWaiter& waiter);
    // The request is done with the connection: keep it idle if reuseVerdict allows.
    // `request_done`: the request went out whole and its response was read whole.
    void release(UpstreamConnection& connection, bool request_done);
    // Close the connection; it is never reused. `cause` labels the closed-connections metric:
    // a Proxy-Status token, or what ended the request (client_disconnected, ...).
    void discard(UpstreamConnection& connection, std::string_view cause);
    // Hand the connection over for good (an upgraded tunnel); it leaves the pool.
    std::unique_ptr<UpstreamConnection> detach(UpstreamConnection& connection);
    // Global limit pressure: close the least recently used idle connection.
    bool closeOldestIdle();
    // Capacity freed somewhere: open connections for waiters if allowed.
    void openForWaiters();
    void closeIdle();
    // Fails every waiter queued now; one that a handler queues meanwhile stays queued.
    void failWaiters(const ProxyError& error);

    bool empty() const { return connections_.empty() && waiters_.empty(); }
    HostPoolStats stats() const;
    const PoolKey& key() const { return key_; }
    int64_t effectiveIdleTimeoutMs() const;
    int64_t learnedIdleMs() const { return learned_idle_ms_; }

    // UpstreamEvents: connections being opened or sitting idle report here.
    void onUpstreamConnected(UpstreamConnection& connection) override;
    void onUpstreamConnectFailed(UpstreamConnection& connection, const ProxyError& error) override;
    void onUpstreamError(UpstreamConnection& connection, const ProxyError& error) override;

private:
    struct Entry {
        std::unique_ptr<UpstreamConnection> connection;
        PoolEntryState state;
    };
    // The one place a connection changes state: keeps idle_ and the counts in step.
    void transition(UpstreamConnection& connection, PoolEntryState to);
    // Takes the connection out of the pool, whatever its state; null if it is not here.
    std::unique_ptr<UpstreamConnection> remove(UpstreamConnection& connection);
    uint32_t count(PoolEntryState state) const { return counts_[static_cast<size_t>(state)]; }
    UpstreamConnection* takeIdle(const PoolWaiter& waiter, bool allow_stale);
    bool hasIdleNotYetEligible() const;
    bool canOpen() const;
    void openOne();
    void enqueue(PoolWaiter& waiter);
    // Fails the first `n` waiters. They leave the queue before any handler runs, so one
    // that a handler queues meanwhile (a retry) is not failed with them.
    void failFirst(size_t n, const ProxyError& error);
    void dequeue(PoolWaiter& waiter);
    void scheduleServe();
    void serveWaiters();
    void giveTo(PoolWaiter& waiter, UpstreamConnection& connection);
    void learnIdleClose(int64_t idle_ms);
    // Does the running config still allow this connection's destination address?
    bool allowedNow(const UpstreamConnection& connection) const;

    PoolManager& manager_;
    Worker& worker_;
    PoolKey key_;
    std::unordered_map<UpstreamConnection*, Entry> connections_;
    // The Idle entries, back = most recently used (LIFO reuse); Connecting and Busy ones are
    // only counted.
    std::vector<UpstreamConnection*> idle_;
    uint32_t counts_[3] = {0, 0, 0};
    std::list<PoolWaiter*> waiters_;
    int64_t learned_idle_ms_ = -1; // -1 = nothing learned yet
    // The config whose destination rules the idle set was last swept with: the sweep runs
    // once per reload, not per checkout (weak: compared by identity, never kept alive).
    std::weak_ptr<const Config> idle_swept_for_;
    bool serve_scheduled_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace pooled
