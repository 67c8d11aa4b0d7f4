// Specifies writeParts and BufferPool on a real libuv loop, over a socketpair whose reader
// is driven by the test: what the socket does not take at once is queued, copied unless it
// is the rest of the pool's read block, which the write then holds until it is done.
#include "core/write_request.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <vector>

namespace {

using namespace pooled;

struct Harness {
    uv_loop_t loop{};
    uv_pipe_t pipe{};
    int peer = -1; // the reading end, blocking
    int writes_done = 0;
    int last_status = 1;

    Harness() {
        uv_loop_init(&loop);
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        int small = 4096; // so that a large write cannot complete at once
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        uv_pipe_init(&loop, &pipe, 0);
        REQUIRE(uv_pipe_open(&pipe, sv[0]) == 0);
        peer = sv[1];
    }
    ~Harness() {
        uv_close(reinterpret_cast<uv_handle_t*>(&pipe), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        close(peer);
    }
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe); }

    static void onDone(void* owner, int status) {
        auto* self = static_cast<Harness*>(owner);
        ++self->writes_done;
        self->last_status = status;
    }

    // Reads `n` bytes from the peer while letting the loop write them.
    std::string drain(size_t n) {
        std::string got;
        char chunk[8192];
        for (int spins = 0; got.size() < n && spins < 100000; ++spins) {
            uv_run(&loop, UV_RUN_NOWAIT);
            ssize_t r = recv(peer, chunk, sizeof chunk, MSG_DONTWAIT);
            if (r > 0)
                got.append(chunk, static_cast<size_t>(r));
        }
        uv_run(&loop, UV_RUN_NOWAIT); // the write callback
        return got;
    }
};

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>('a' + i % 23);
    return s;
}

} // namespace

TEST_CASE("the unsent rest of the read block is queued in the block itself, which comes back "
          "once written") {
    Harness h;
    BufferPool pool(64 * 1024, 4, 256 * 1024);
    char fallback_bytes[16];
    uv_buf_t fallback = uv_buf_init(fallback_bytes, sizeof fallback_bytes);
    uv_buf_t block = pool.readBlock(fallback);
    REQUIRE(block.len == 256 * 1024);
    std::string expected = pattern(block.len);
    std::copy(expected.begin(), expected.end(), block.base);

    REQUIRE(writeParts(h.stream(), {"head:", std::string_view(block.base, block.len)}, pool, &h,
                       &Harness::onDone) == 0);
    REQUIRE(uv_stream_get_write_queue_size(h.stream()) > 0);
    // The write holds the block: readers get their fallback until it is done.
    CHECK(pool.readBlock(fallback).base == fallback_bytes);
    CHECK_FALSE(pool.inReadBlock(block.base, 1));

    std::string got = h.drain(5 + expected.size());
    CHECK(got == "head:" + expected);
    CHECK(h.writes_done == 1);
    CHECK(h.last_status == 0);
    CHECK(pool.readBlock(fallback).base == block.base); // the same block, back again
}

TEST_CASE("bytes from elsewhere are copied when queued: the caller may reuse them at once") {
    Harness h;
    BufferPool pool(64 * 1024, 4, 256 * 1024);
    std::string bytes = pattern(200 * 1024);
    std::string expected = bytes;
    REQUIRE(writeParts(h.stream(), {bytes}, pool, &h, &Harness::onDone) == 0);
    REQUIRE(uv_stream_get_write_queue_size(h.stream()) > 0);
    bytes.assign(bytes.size(), 'x');
    CHECK(h.drain(expected.size()) == expected);
    CHECK(h.writes_done == 1);
}

TEST_CASE("small queued remainders queue in order behind a queued write") {
    Harness h;
    BufferPool pool(64 * 1024, 4, 256 * 1024);
    std::string big = pattern(100 * 1024);
    REQUIRE(writeParts(h.stream(), {big}, pool, &h, &Harness::onDone) == 0);
    for (char c = '0'; c <= '9'; ++c) {
        std::string one(1, c);
        REQUIRE(writeParts(h.stream(), {one}, pool, &h, &Harness::onDone) == 0);
    }
    CHECK(h.drain(big.size() + 10) == big + "0123456789");
    CHECK(h.writes_done == 11);
}
