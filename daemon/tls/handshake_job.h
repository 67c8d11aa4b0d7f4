// The costly steps of one TLS handshake (certificate and key exchange checks, ECDHE:
// about 3 ms of CPU for a full mbedTLS 2.28 handshake) on libuv's thread pool, so that a
// burst of new https connections does not stall every other request on the loop. The
// session is shared with the job, so it outlives a connection freed meanwhile; its
// ciphertext is deferred (TlsSession::deferSends) and flushed by the owner in `done`.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace pooled {

class HandshakeJob;
class TlsSession;

// One per TlsContext: its CA certificates and client keys are shared by every session
// and not thread safe (mbedTLS caches a comb table in an ECP group on first use; see
// TlsSession::nextStepIsCostly), so its handshakes compute one at a time. The others
// wait here, on the loop, rather than in pool threads blocked on the lock: those
// threads also check proxy credentials (proxy/auth_check.h).
struct HandshakeQueue {
    HandshakeQueue();
    ~HandshakeQueue(); // frees jobs still waiting (none once the loop has run dry)
    HandshakeQueue(const HandshakeQueue&) = delete;
    HandshakeQueue& operator=(const HandshakeQueue&) = delete;

    std::mutex crypto_lock; // held by the running job; the queue already makes it one
    bool running = false;
    std::deque<std::unique_ptr<HandshakeJob>> waiting;
    // How a job reaches the thread pool; a test puts one here that refuses.
    int (*queue_work)(uv_loop_t*, uv_work_t*, uv_work_cb, uv_after_work_cb) = &uv_queue_work;
};

class HandshakeJob {
public:
    // Runs session->runSteps(false) on the pool, after the jobs `queue` holds already.
    // `done(rc)` runs on the loop thread with runSteps' result unless cancel() was
    // called first, and never inside start(): the handle returned stays valid (for
    // cancel) until done runs, even if done starts the next job.
    static HandshakeJob* start(uv_loop_t* loop, HandshakeQueue& queue,
                               std::shared_ptr<TlsSession> session, std::function<void(int)> done);
    // The connection is going away: done is dropped, and the session freed on the loop
    // in the after-work callback (a queued uv_work_t cannot be freed before that), or
    // at once if the job was still waiting its turn.
    void cancel() { done_ = nullptr; }

private:
    static void submit(std::unique_ptr<HandshakeJob> job);
    static void runNext(HandshakeQueue& queue);
    static void work(uv_work_t* req);
    static void afterWork(uv_work_t* req, int status);

    uv_work_t req_{};
    uv_timer_t fallback_timer_{}; // reports a job the thread pool refused, on the next turn
    uv_loop_t* loop_ = nullptr;
    HandshakeQueue* queue_ = nullptr;
    std::shared_ptr<TlsSession> session_;
    std::function<void(int)> done_;
    int rc_ = 0;
};

} // namespace pooled
