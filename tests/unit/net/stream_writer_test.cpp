// Specifies StreamWriter on a real libuv loop, over a socketpair whose reader is driven
// by the test, in both of its modes: batched through the loop's SendRing (io_uring) and
// written at once (uv_try_write, the rest queued). Either way bytes leave in order, the
// caller's buffers are free when write() returns, and the rest of the pool's read block
// is sent from the block itself, which comes back once written.
#include "core/buffer_pool.h"
#include "core/closable.h"
#include "net/send_ring.h"
#include "net/stream_writer.h"

#include <sys/socket.h>
#include <csignal>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace pooled;

struct Harness {
    uv_loop_t loop{};
    uv_pipe_t pipe{};
    uv_idle_t busy{}; // keeps the loop alive and polling, as a Worker's listeners do
    int peer = -1; // the reading end, non-blocking reads
    BufferPool pool{64 * 1024, 4, 256 * 1024};
    std::unique_ptr<SendRing> ring;
    int writes_done = 0;
    int last_status = 1;
    int shutdowns = 0;
    int shutdown_status = 1;
    StreamWriter writer{this, &Harness::onDone};

    explicit Harness(bool use_uring) {
        uv_loop_init(&loop);
        uv_idle_init(&loop, &busy);
        uv_idle_start(&busy, [](uv_idle_t*) {});
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        int small = 4096; // so that a large write cannot complete at once
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        uv_pipe_init(&loop, &pipe, 0);
        REQUIRE(uv_pipe_open(&pipe, sv[0]) == 0);
        peer = sv[1];
        std::string why;
        ring = std::make_unique<SendRing>(&loop, pool, use_uring, why);
        if (use_uring && !ring->enabled())
            WARN("io_uring unavailable here (" << why << "): the ring mode is not tested");
        writer.attach(stream(), *ring);
    }
    ~Harness() {
        writer.abandon();
        uv_close(reinterpret_cast<uv_handle_t*>(&pipe), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&busy), nullptr);
        HandleCloser closer;
        ring->closeHandles(closer);
        closer.arm([] {});
        uv_run(&loop, UV_RUN_DEFAULT);
        ring.reset();
        uv_loop_close(&loop);
        close(peer);
    }
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe); }

    static void onDone(void* owner, int status) {
        auto* self = static_cast<Harness*>(owner);
        ++self->writes_done;
        self->last_status = status;
    }
    static void onShutdown(void* owner, int status) {
        auto* self = static_cast<Harness*>(owner);
        ++self->shutdowns;
        self->shutdown_status = status;
    }

    // One loop turn as the Worker runs it: the ring is flushed around the poll.
    void turn() {
        ring->flush(64);
        uv_run(&loop, UV_RUN_NOWAIT);
        ring->flush(64);
    }
    // Reads up to `n` bytes from the peer while letting the loop write them; stops early
    // at the peer's EOF (then eof is set).
    std::string drain(size_t n, bool* eof = nullptr) {
        std::string got;
        char chunk[8192];
        // Bounded in time, not in spins: on a loaded machine the kernel's io_uring worker
        // may need many turns before a send waiting for room completes.
        auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (got.size() < n && std::chrono::steady_clock::now() < give_up) {
            turn();
            ssize_t r = recv(peer, chunk, sizeof chunk, MSG_DONTWAIT);
            if (r > 0)
                got.append(chunk, static_cast<size_t>(r));
            if (r == 0 && eof) {
                *eof = true;
                break;
            }
        }
        turn(); // the write callback
        return got;
    }
    bool peerHasBytes() {
        char c;
        return recv(peer, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }
};

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>('a' + i % 23);
    return s;
}

} // namespace

TEST_CASE("bytes leave in the order written, and the caller may reuse its buffers at once") {
    bool use_uring = GENERATE(true, false);
    Harness h(use_uring);
    std::string big = pattern(100 * 1024);
    std::string expected = big;
    REQUIRE(h.writer.write({"head:", big}) == 0);
    big.assign(big.size(), 'x');
    for (char c = '0'; c <= '9'; ++c) {
        std::string one(1, c);
        REQUIRE(h.writer.write({one}) == 0);
    }
    CHECK(h.drain(5 + expected.size() + 10) == "head:" + expected + "0123456789");
    CHECK(h.writer.queued() == 0);
    CHECK(h.writes_done >= 1);
    CHECK(h.last_status == 0);
}

TEST_CASE("with the ring, a turn's small writes wait for the flush and then leave together; "
          "until the socket refuses some, none of it counts as queued") {
    Harness h(true);
    if (!h.ring->enabled())
        return;
    REQUIRE(h.writer.write({"GET / HTTP/1.1\r\n"}) == 0);
    REQUIRE(h.writer.write({"Host: a\r\n", "\r\n"}) == 0);
    CHECK_FALSE(h.peerHasBytes());
    CHECK(h.writer.queued() == 0);
    h.ring->flush(1);
    CHECK(h.writer.queued() == 0);
    char buf[64];
    ssize_t r = recv(h.peer, buf, sizeof buf, MSG_DONTWAIT);
    REQUIRE(r == 27); // one send: a reader sees it whole
    CHECK(std::string(buf, 27) == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(h.writes_done == 1);
}

TEST_CASE("with the ring, a body goes to the socket at once even beside an empty part (a head "
          "already sent), and what piles up for the flush counts as queued past 16 KiB") {
    Harness h(true);
    if (!h.ring->enabled())
        return;
    std::string body = pattern(20 * 1024);
    REQUIRE(h.writer.write({"", body}) == 0);
    CHECK(h.peerHasBytes()); // not waiting for the flush
    CHECK(h.writer.queued() > 0); // the 4 KiB socket refused the rest: the origin waits
    CHECK(h.drain(body.size()) == body);
    CHECK(h.writer.queued() == 0);

    // Many small writes in one turn (a chunked body, say): backpressure sees them.
    for (int i = 0; i < 20; ++i)
        REQUIRE(h.writer.write({"0123456789abcdef", pattern(1000)}) == 0);
    CHECK_FALSE(h.peerHasBytes());
    CHECK(h.writer.queued() == 20 * 1016);
    h.drain(20 * 1016);
    CHECK(h.writer.queued() == 0);
}

TEST_CASE("a large write goes to the socket at once; the rest of the read block is sent from "
          "the block itself, which comes back once written") {
    bool use_uring = GENERATE(true, false);
    Harness h(use_uring);
    char fallback_bytes[16];
    uv_buf_t fallback = uv_buf_init(fallback_bytes, sizeof fallback_bytes);
    uv_buf_t block = h.pool.readBlock(fallback);
    REQUIRE(block.len == 256 * 1024);
    std::string expected = pattern(block.len);
    std::copy(expected.begin(), expected.end(), block.base);

    REQUIRE(h.writer.write({"head:", std::string_view(block.base, block.len)}) == 0);
    CHECK(h.peerHasBytes());
    REQUIRE(h.writer.queued() > 0); // the socket takes a few KiB at a time
    h.turn();
    REQUIRE(h.writer.queued() > 0);
    // The write holds the block: readers get their fallback until it is done.
    CHECK(h.pool.readBlock(fallback).base == fallback_bytes);
    CHECK_FALSE(h.pool.inReadBlock(block.base, 1));

    CHECK(h.drain(5 + expected.size()) == "head:" + expected);
    CHECK(h.writer.queued() == 0);
    CHECK(h.last_status == 0);
    CHECK(h.pool.readBlock(fallback).base == block.base); // the same block, back again
}

TEST_CASE("shutdownAfterFlush ends the stream after the last queued byte; later writes fail") {
    bool use_uring = GENERATE(true, false);
    Harness h(use_uring);
    std::string body = pattern(64 * 1024);
    REQUIRE(h.writer.write({body}) == 0);
    REQUIRE(h.writer.shutdownAfterFlush(&Harness::onShutdown) == 0);
    CHECK(h.writer.write({"late"}) != 0);
    bool eof = false;
    CHECK(h.drain(body.size() + 1, &eof) == body);
    CHECK(eof);
    CHECK(h.shutdowns == 1);
    CHECK(h.shutdown_status == 0);
}

TEST_CASE("a write the peer can no longer take fails through the callback, and so do later "
          "ones") {
    bool use_uring = GENERATE(true, false);
    Harness h(use_uring);
    signal(SIGPIPE, SIG_IGN); // as the daemon does: the error comes back as EPIPE
    close(h.peer);
    h.peer = -1;
    int rc = h.writer.write({pattern(1000)});
    for (int i = 0; i < 100 && rc == 0 && h.last_status == 1; ++i)
        h.turn();
    // At once (uv_try_write) or from the flush (the ring): never a success.
    CHECK((rc != 0 || (h.last_status != 0 && h.last_status != 1)));
    CHECK(h.writer.write({"more"}) != 0);
}

TEST_CASE("abandoned: bytes not yet flushed still go before the close, a send waiting for "
          "room is cancelled, and no callback runs") {
    Harness h(true);
    if (!h.ring->enabled())
        return;
    SECTION("written in the turn the connection closes") {
        REQUIRE(h.writer.write({"last words"}) == 0);
        h.writer.abandon();
        uv_close(reinterpret_cast<uv_handle_t*>(&h.pipe), nullptr);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        char buf[64];
        ssize_t r = recv(h.peer, buf, sizeof buf, 0);
        REQUIRE(r == 10);
        CHECK(std::string(buf, 10) == "last words");
        CHECK(recv(h.peer, buf, sizeof buf, 0) == 0); // then the close
        uv_pipe_init(&h.loop, &h.pipe, 0);             // for the destructor's close
    }
    SECTION("waiting for a peer that does not read") {
        REQUIRE(h.writer.write({pattern(512 * 1024)}) == 0);
        h.turn();
        REQUIRE(h.writer.queued() > 0);
        h.writer.abandon();
        uv_close(reinterpret_cast<uv_handle_t*>(&h.pipe), nullptr);
        for (int i = 0; i < 10; ++i)
            h.turn();
        // The cancelled send let go of the socket: the peer reads what came, then EOF.
        std::string got;
        char buf[65536];
        ssize_t r;
        while ((r = recv(h.peer, buf, sizeof buf, 0)) > 0)
            got.append(buf, static_cast<size_t>(r));
        CHECK(r == 0);
        CHECK(got.size() < 512 * 1024);
        uv_pipe_init(&h.loop, &h.pipe, 0);
    }
    CHECK(h.writes_done == 0);
}

TEST_CASE("abandoned with the submission queue full and the kernel refusing a submit, a send "
          "waiting for room still ends, so the close lets go of the socket") {
    Harness h(true);
    if (!h.ring->enabled())
        return;
    REQUIRE(h.writer.write({pattern(512 * 1024)}) == 0);
    h.turn();
    REQUIRE(h.writer.queued() > 0); // in the kernel, waiting for a peer that does not read

    // Writers with bytes for the next flush, on a socket of their own.
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    uv_pipe_t other{};
    uv_pipe_init(&h.loop, &other, 0);
    REQUIRE(uv_pipe_open(&other, sv[0]) == 0);
    std::vector<std::unique_ptr<StreamWriter>> fillers;
    for (int i = 0; i < 300; ++i) {
        fillers.push_back(std::make_unique<StreamWriter>(&h, &Harness::onDone));
        fillers.back()->attach(reinterpret_cast<uv_stream_t*>(&other), *h.ring);
        REQUIRE(fillers.back()->write({"x"}) == 0);
    }
    // The ring is set up for one submitting thread (IORING_SETUP_SINGLE_ISSUER): from any
    // other the kernel refuses every submit (EEXIST). Abandoned there, the fillers' last
    // bytes fill the submission queue, and the waiting send's cancel finds no room.
    std::thread elsewhere([&] {
        for (auto& filler : fillers)
            filler->abandon();
        h.writer.abandon();
    });
    elsewhere.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&h.pipe), nullptr);
    // The peer reads what came, then must meet the end: not the rest of the 512 KiB,
    // which a send left in the kernel would deliver as the loop runs.
    std::string got;
    bool eof = false;
    char buf[65536];
    for (int i = 0; i < 2000 && !eof; ++i) {
        h.turn();
        ssize_t r = recv(h.peer, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0)
            got.append(buf, static_cast<size_t>(r));
        eof = r == 0;
        if (r < 0)
            usleep(1000);
    }
    CHECK(eof);
    CHECK(got.size() < 512 * 1024);
    CHECK(h.writes_done == 0);
    uv_close(reinterpret_cast<uv_handle_t*>(&other), nullptr);
    close(sv[1]);
    uv_pipe_init(&h.loop, &h.pipe, 0); // for the destructor's close
}
