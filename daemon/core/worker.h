// The per-event-loop context. Everything mutable hangs off a Worker: config,
// listeners, client sessions, pools, DNS cache, access log, counters. Nothing is
// global, so N workers (a loop per thread, SO_REUSEPORT listeners) can come later.
#pragma once

#include "config/config.h"
#include "core/buffer_pool.h"
#include "core/closable.h"
#include "core/deadline_queue.h"
#include "core/intrusive_list.h"
#include "net/send_ring.h"
#include "observe/metrics.h"

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace pooled {

class AccessLog;
class AdminServer;
class ClientSession;
struct Exchange;
class Listener;
class PoolManager;
class Resolver;
class TlsContext;

struct WorkerCounters {
    uint64_t client_connections = 0; // open now
    uint64_t client_connections_total = 0;
    uint64_t requests = 0;
};

class Worker {
public:
    Worker(uv_loop_t* loop, std::shared_ptr<const Config> config);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Binds every listener; throws std::runtime_error naming the address on failure.
    void start();
    // Graceful stop: close listeners, finish in-flight requests up to the drain
    // timeout, close the rest; the loop then runs out of handles.
    void shutdown();
    bool draining() const { return draining_; }
    // Listening and not draining: what /readyz reports.
    bool ready() const { return started_ && !draining_; }
    // SIGHUP with a config that loaded: new work uses `next` (sessions keep the snapshot they
    // started with), changed listeners are re-bound, pools of removed routes drain. Throws
    // std::runtime_error, with the running config left in place, if a new address cannot be
    // bound.
    void reload(std::shared_ptr<const Config> next);
    // Sockets passed by systemd socket activation, used by the listeners in config order.
    void setInheritedListenFds(std::vector<int> fds) { inherited_fds_ = std::move(fds); }
    // One-line state for systemd's STATUS=.
    std::string statusLine() const;

    uv_loop_t* loop() const { return loop_; }
    const Config& config() const { return *config_; }
    const std::shared_ptr<const Config>& configPtr() const { return config_; }
    Metrics& metrics() { return metrics_; }
    const Metrics& metrics() const { return metrics_; }
    LiveGauges liveGauges() const;
    Resolver& resolver() { return *resolver_; }
    // DRBG, CA chains, TLS profiles and saved sessions for https upstreams. Built by
    // start(), which throws naming the key of a bad ca_file, certificate or key.
    TlsContext& tls();
    AccessLog& accessLog() { return *access_log_; }
    PoolManager& pools() { return *pools_; }
    std::minstd_rand& random() { return random_; }
    WorkerCounters& counters() { return counters_; }
    // One read buffer per loop, as Node does: reads are parsed and forwarded (or
    // copied) before the next read, so idle connections cost no buffer memory.
    uv_buf_t readBuffer() { return uv_buf_init(read_slab_.data(), static_cast<unsigned>(read_slab_.size())); }
    uint64_t nextConnectionId() { return ++last_connection_id_; }
    BufferPool& writeBuffers() { return write_buffers_; }
    // Where connections' writes go: batched per loop turn through io_uring, or not.
    SendRing& sendRing() { return *send_ring_; }

    // Loop iterations so far: a connection returned at tick T is handed out only
    // after a later poll, so a FIN sent right after the response is seen first.
    uint64_t tick() const { return tick_; }
    // Runs fn after the next poll phase.
    void defer(std::function<void()> fn);

    // Takes ownership of a closing object and frees it from its close callback.
    void retire(std::unique_ptr<Closable> object);

    void adoptSession(std::unique_ptr<ClientSession> session);
    // The session is done; it is closed and freed from its close callback.
    void endSession(ClientSession* session);
    size_t sessionCount() const { return sessions_.size(); }
    // Exchanges of connections gone idle, kept for the next request (a bounded few).
    std::unique_ptr<Exchange> takeExchange();
    void keepExchange(std::unique_ptr<Exchange> exchange);
    // Client connection timeouts: one timer per duration, not one per connection.
    DeadlineTimers& clientTimers() { return client_timers_; }

private:
    static void onPrepare(uv_prepare_t* handle);
    static void onCheck(uv_check_t* handle);
    void runDeferred();
    static void onIdle(uv_idle_t*) {}
    static void onDrainTimer(uv_timer_t* handle);
    void finishShutdown();
    std::vector<ClientSession*> sessionList() const;

    uv_loop_t* loop_;
    std::shared_ptr<const Config> config_;
    // Before everything that writes: freed after every connection.
    BufferPool write_buffers_;
    std::unique_ptr<SendRing> send_ring_;
    std::unique_ptr<TlsContext> tls_; // before the pools: freed after their connections
    std::unique_ptr<Resolver> resolver_;
    std::unique_ptr<AccessLog> access_log_;
    std::unique_ptr<PoolManager> pools_;
    std::unique_ptr<AdminServer> admin_;
    std::vector<int> inherited_fds_;
    Metrics metrics_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    // Owned: adoptSession releases each into the list, endSession hands it to retire().
    IntrusiveList<ClientSession> sessions_;
    DeadlineTimers client_timers_;
    std::vector<std::unique_ptr<Exchange>> spare_exchanges_;
    std::unordered_map<Closable*, std::unique_ptr<Closable>> closing_;
    std::minstd_rand random_;
    WorkerCounters counters_;
    std::vector<char> read_slab_;
    uint64_t last_connection_id_ = 0;

    uv_prepare_t prepare_;
    uv_check_t check_;
    uv_idle_t idle_;
    uv_timer_t drain_timer_;
    HandleCloser closer_;
    uint64_t tick_ = 0;
    std::vector<std::pair<uint64_t, std::function<void()>>> deferred_;
    bool draining_ = false;
    bool started_ = false;
    bool finished_ = false;
};

} // namespace pooled
