// All pools of one worker, keyed by PoolKey, and the limit they share
// (max_connections_total): at the limit an idle connection elsewhere is closed,
// or the request waits for capacity.
#pragma once

#include "pool/host_pool.h"
#include "pool/pool_key.h"

#include <memory>
#include <unordered_map>
#include <unordered_set>

namespace pooled {

class Worker;

class PoolManager {
public:
    explicit PoolManager(Worker& worker);
    ~PoolManager();

    Checkout checkout(const PoolKey& key, PoolWaiter& waiter);
    void cancel(PoolWaiter& waiter);
    void release(UpstreamConnection& connection, bool request_done);
    // `cause` labels the closed-connections metric (see HostPool::discard).
    void discard(UpstreamConnection& connection, std::string_view cause);
    std::unique_ptr<UpstreamConnection> detach(UpstreamConnection& connection);

    // HostPool calls: a slot for a new connection (may close an idle one elsewhere).
    bool reserveSlot(HostPool& requester);
    // True while some pool has requests blocked by max_connections_total.
    bool hasStarvedPools() const;
    // What a pool learned about its origin's idle timeout outlives the pool itself
    // (a pool left empty is dropped; its next connection must not race the origin).
    int64_t learnedIdleMs(const PoolKey& key) const;
    void slotFreed();
    // Pools that became empty are dropped on a later turn (bounded memory).
    void scheduleSweep();

    // Shutdown: close idle connections now, busy ones when their request ends.
    void closeIdle();
    void failAllWaiters();
    uint32_t totalConnections() const { return total_; }
    const std::unordered_map<PoolKey, std::unique_ptr<HostPool>, PoolKeyHash>& pools() const {
        return pools_;
    }

private:
    HostPool& poolFor(const PoolKey& key);

    Worker& worker_;
    std::unordered_map<PoolKey, std::unique_ptr<HostPool>, PoolKeyHash> pools_;
    std::unordered_set<HostPool*> starved_; // waiting for global capacity
    std::unordered_map<PoolKey, int64_t, PoolKeyHash> learned_idle_ms_; // bounded
    uint32_t total_ = 0;
    bool sweep_scheduled_ = false;
    // The deferred sweep checks this: the Worker's shutdown frees the manager.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace pooled
