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
    submit(std::move(job));
    return handle;
}

// Owned by the queued request (or the fallback timer) until afterWork.
void HandshakeJob::submit(std::unique_ptr<HandshakeJob> job) {
    job->queue_->running = true;
    if (job->queue_->queue_work(job->loop_, &job->req_, &HandshakeJob::work,
                                &HandshakeJob::afterWork) == 0) {
        job.release(); // afterWork takes it back
        return;
    }
    // libuv refuses only a missing callback; rather than hang, the steps run here, and
    // `done` on the next turn, never inside start(): its caller learns the handle only
    // when start returns, so a job that `done` started meanwhile would lose its handle
    // (and its cancel) to that assignment.
    work(&job->req_);
    HandshakeJob* self = job.release();
    uv_timer_init(self->loop_, &self->fallback_timer_);
    self->fallback_timer_.data = self;
    uv_timer_start(
        &self->fallback_timer_,
        [](uv_timer_t* timer) {
            uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* handle) {
                afterWork(&static_cast<HandshakeJob*>(handle->data)->req_, 0);
            });
        },
        0, 0);
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
