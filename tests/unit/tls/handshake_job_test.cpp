// Specification of HandshakeJob's contract with its owner: the handle start() returns
// is the one to cancel until `done` runs, also when the thread pool refuses the job and
// its steps run on the loop instead, and also for a job that `done` starts.
#include "config/config.h"
#include "pool/pool_key.h"
#include "tls/handshake_job.h"
#include "tls/tls_context.h"
#include "tls/tls_session.h"

#include <catch2/catch.hpp>

#include <memory>

using namespace pooled;

namespace {

// Ciphertext of a session nobody connects: the steps stop at "want read" after the
// ClientHello, which collects in the session (sends are deferred during a job).
struct NoTransport : TlsSession::Transport {
    int sendCiphertext(const char*, size_t) override { return 0; }
};

// The first job is refused, as uv_queue_work would refuse one without a callback; the
// rest go to libuv's thread pool.
int refusals_left = 0;
int refuseFirst(uv_loop_t* loop, uv_work_t* req, uv_work_cb work, uv_after_work_cb after) {
    if (refusals_left > 0) {
        --refusals_left;
        return UV_EINVAL;
    }
    return uv_queue_work(loop, req, work, after);
}

// An owner as UpstreamConnection is one: it keeps the handle of its current job, and the
// first job's `done` starts a second one.
struct Owner {
    uv_loop_t* loop;
    HandshakeQueue& queue;
    std::shared_ptr<TlsSession> session;
    HandshakeJob* job = nullptr;
    int first_done = 0;
    int second_done = 0;

    void startFirst() {
        job = HandshakeJob::start(loop, queue, session, [this](int) {
            job = nullptr;
            ++first_done;
            job = HandshakeJob::start(loop, queue, session, [this](int) {
                job = nullptr;
                ++second_done;
            });
        });
    }
};

} // namespace

TEST_CASE("a handshake job the thread pool refuses runs its done on a later turn, and a job "
          "that done starts keeps its cancel handle",
          "[tls]") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    {
        Config config;
        TlsContext context(config);
        NoTransport transport;
        HandshakeQueue queue;
        queue.queue_work = &refuseFirst;
        refusals_left = 1;
        Owner owner{
            &loop, queue,
            std::make_shared<TlsSession>(context, PoolKey{"https", "origin.test", 443}, transport)};

        owner.startFirst();
        CHECK(refusals_left == 0);     // the first job was refused...
        CHECK(owner.first_done == 0);  // ...and its done waits for the loop
        REQUIRE(owner.job != nullptr); // the handle the owner would cancel
        for (int i = 0; i < 1000 && owner.first_done == 0; ++i)
            uv_run(&loop, UV_RUN_ONCE);
        REQUIRE(owner.first_done == 1);
        // The second job, started from the first's done, is on the thread pool: its handle
        // is the owner's, not lost to the first start() returning.
        REQUIRE(owner.job != nullptr);
        owner.job->cancel(); // the connection goes away
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(owner.second_done == 0);
    }
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a handshake job the thread pool refuses can be cancelled before its done runs",
          "[tls]") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    {
        Config config;
        TlsContext context(config);
        NoTransport transport;
        HandshakeQueue queue;
        queue.queue_work = &refuseFirst;
        refusals_left = 1;
        auto session =
            std::make_shared<TlsSession>(context, PoolKey{"https", "origin.test", 443}, transport);
        int done = 0;
        HandshakeJob* job = HandshakeJob::start(&loop, queue, session, [&](int) { ++done; });
        REQUIRE(job != nullptr);
        job->cancel();
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(done == 0);
        CHECK_FALSE(queue.running); // the next job may start
    }
    CHECK(uv_loop_close(&loop) == 0);
}
