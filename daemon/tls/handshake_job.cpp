// TLS handshake steps off the event loop: see handshake_job.h.
#include "tls/handshake_job.h"

#include "tls/tls_session.h"

#include <mbedtls/ssl.h>

namespace pooled {

HandshakeQueue::HandshakeQueue() = default;
HandshakeQueue::~HandshakeQueue() = default;

HandshakeJob* HandshakeJob::start(uv_loop_t* loop, HandshakeQueue& queue,
                                  std::shared_ptr<TlsSession> session,
                                  std::function<void(int)> done) {
    auto job = std::make_unique<HandshakeJob>();
    job->loop_ = loop;
    job->queue_ = &queue;
    job->session_ = std::move(session);
    job->done_ = std::move(done);
    job->req_.data = job.get();
    job->session_->deferSends();
    HandshakeJob* handle = job.get();
    if (queue.running) {
        queue.waiting.push_back(std::move(job)); // owned by the queue until it runs
        return handle;
    }
    return submit(std::move(job)) ? handle : nullptr;
}

// Owned by the queued request until afterWork; false if it could not be queued and
// has run here (done included) already.
bool HandshakeJob::submit(std::unique_ptr<HandshakeJob> job) {
    job->queue_->running = true;
    if (uv_queue_work(job->loop_, &job->req_, &HandshakeJob::work, &HandshakeJob::afterWork) ==
        0) {
        job.release(); // afterWork takes it back
        return true;
    }
    // Cannot happen with a valid loop and callbacks; run it here rather than hang.
    uv_work_t* req = &job->req_;
    work(req);
    job.release();
    afterWork(req, 0);
    return false;
}

void HandshakeJob::runNext(HandshakeQueue& queue) {
    while (!queue.running && !queue.waiting.empty()) {
        std::unique_ptr<HandshakeJob> next = std::move(queue.waiting.front());
        queue.waiting.pop_front();
        if (next->done_)
            submit(std::move(next));
        // else cancelled before its turn: nothing to compute, freed here
    }
}

void HandshakeJob::work(uv_work_t* req) {
    auto* self = static_cast<HandshakeJob*>(req->data);
    std::lock_guard lock(self->queue_->crypto_lock);
    self->rc_ = self->session_->runSteps(false);
}

void HandshakeJob::afterWork(uv_work_t* req, int status) {
    std::unique_ptr<HandshakeJob> self(static_cast<HandshakeJob*>(req->data));
    if (status != 0)
        self->rc_ = MBEDTLS_ERR_SSL_INTERNAL_ERROR; // cancelled: only uv_cancel does that
    // The next one starts computing first: `done` may queue another job behind it.
    self->queue_->running = false;
    runNext(*self->queue_);
    if (self->done_)
        self->done_(self->rc_);
}

} // namespace pooled
