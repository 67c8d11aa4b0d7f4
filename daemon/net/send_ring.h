// A loop's sends batched through io_uring. StreamWriters queue bytes during a loop
// turn; the Worker flushes them (prepare and check phases) with one io_uring_enter
// for all of them, instead of one write(2) per send. On a machine where a syscall's
// entry and exit cost more than a small loopback send (a VM with PTI: this one),
// that is what a proxy's CPU per request is made of (bench/README.md §2).
//
// Ordering: a writer has at most one sendmsg in the kernel at a time, with
// MSG_WAITALL, so its bytes leave in order; what it writes meanwhile waits in its
// next op. Completions of sends the socket could take at once are read right after
// the submit; the rest (a full socket: backpressure) arrive later, announced by an
// eventfd the loop polls.
#pragma once

#include <uv.h>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct io_uring;
struct io_uring_sqe;

namespace pooled {

class BufferPool;
class HandleCloser;
class StreamWriter;
using WriteDoneFn = void (*)(void* owner, int status);

// Bytes of one writer for one sendmsg. The ring owns it from the writer's first write
// until the kernel is done with it, so a writer can go at any time (abandon()).
struct SendOp {
    static constexpr unsigned kMaxChunks = 8;
    struct Chunk {
        std::unique_ptr<char[]> block;
        size_t capacity = 0;
        const char* data = nullptr; // in block
        size_t size = 0;
        bool adopted = false; // the BufferPool's read block, going back to it
    };
    StreamWriter* writer = nullptr; // null once abandoned
    int fd = -1;
    Chunk chunks[kMaxChunks];
    unsigned count = 0;
    size_t total = 0; // bytes in chunks
    size_t sent = 0;
    WriteDoneFn shutdown_done = nullptr; // shutdown(SHUT_WR) once everything is sent
    size_t slot = 0;       // index in SendRing::ops_
    bool listed = false;   // in SendRing::ready_
    iovec iov[kMaxChunks];
    msghdr msg{};

    bool full() const { return count == kMaxChunks; }
    size_t unsent() const { return total - sent; }
};

class SendRing {
public:
    // `use_uring` false, or io_uring not usable here (an old kernel; a container's
    // seccomp profile; then `why` says so): enabled() is false and writers write(2) as
    // they go.
    SendRing(uv_loop_t* loop, BufferPool& pool, bool use_uring, std::string& why);
    SendRing(const SendRing&) = delete;
    SendRing& operator=(const SendRing&) = delete;
    ~SendRing();
    bool enabled() const { return ring_ != nullptr; }
    uint64_t sends() const { return sends_; }
    uint64_t batches() const { return batches_; }

    BufferPool& pool() { return pool_; }
    // Small writes are copied into blocks of this size, kept per loop.
    static constexpr size_t kSmallBlock = 4096;
    std::unique_ptr<char[]> takeSmallBlock();

    SendOp* takeOp(StreamWriter* writer, int fd);
    // Submitted at the next flush.
    void ready(SendOp* op) {
        op->listed = true;
        ready_.push_back(op);
    }
    // The writer no longer wants an op that is not in the kernel: freed now, or by the
    // flush that comes to it in ready_.
    void drop(SendOp* op);
    // The writer is gone: its op in the kernel is cancelled, the op freed once it ends
    // (an op waiting in ready_, the rest of a short send, is dropped).
    void cancel(SendOp* op);
    // The writer is going and its fd closes next: `op` is submitted at once, without
    // waiting for room in the socket, and freed once it ends.
    void sendDetached(SendOp* op);
    // Nobody refers to `op` any more and the kernel is done with it.
    void recycle(SendOp* op);
    // The chunk's block goes back where it came from; the chunk is left empty.
    void release(SendOp::Chunk& chunk);

    // Submits what is ready, then runs completions; repeats while completions make
    // more ready, up to `rounds` times.
    void flush(int rounds);
    bool idle() const { return ready_.empty(); }
    // Before the loop closes: the eventfd's poll handle.
    void closeHandles(HandleCloser& closer);

private:
    static void onEventFd(uv_poll_t* handle, int status, int events);
    void submit(SendOp* op);
    void fillIov(SendOp* op);
    void reap();
    void complete(SendOp* op, int result);
    io_uring_sqe* sqe();
    // Submits at once; false (and `sqe`, the last queued, made a no-op) if the kernel
    // did not take it.
    bool submitNow(io_uring_sqe* sqe);

    std::unique_ptr<io_uring> ring_; // initialised, or null
    int event_fd_ = -1;
    uv_poll_t event_poll_{};
    BufferPool& pool_;
    std::vector<std::unique_ptr<char[]>> small_free_;
    std::vector<std::unique_ptr<SendOp>> ops_; // every op that exists
    std::vector<SendOp*> free_ops_;
    std::vector<SendOp*> ready_;
    std::vector<SendOp*> submitting_; // ready_ while a flush round walks it
    uint64_t sends_ = 0;
    uint64_t batches_ = 0;
};

} // namespace pooled
