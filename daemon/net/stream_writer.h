// One connection's outgoing bytes. With the loop's SendRing, small writes are copied
// and leave in the loop's next batch (net/send_ring.h); large ones (a body) go out at
// once with uv_try_write when nothing is queued, as everything does without a ring.
// What the socket did not take is queued: copied, or, for the rest of the pool's read
// block, sent from the block itself. Either way the caller's buffers are free when
// write() returns, and bytes leave in the order written.
#pragma once

#include "net/send_ring.h"

#include <uv.h>

#include <cstddef>
#include <initializer_list>
#include <string_view>

namespace pooled {

class StreamWriter {
public:
    // `done(owner, status)` runs when queued bytes are out (status 0) or failed. With a
    // ring it runs after every batch the writer had in it; without one, only after a
    // write that had to be queued (libuv: also with UV_ECANCELED when the handle closes).
    StreamWriter(void* owner, WriteDoneFn done) : owner_(owner), done_(done) {}
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;
    ~StreamWriter() { abandon(); }

    // For a freshly initialised handle.
    void attach(uv_stream_t* stream, SendRing& ring);
    // Writes the concatenation of `parts`. 0, or an error: no callback comes for it, so the
    // caller must act on it (the peer is gone), and it sticks (later writes fail with it).
    int write(std::initializer_list<std::string_view> parts);
    // Bytes the socket did not take (and bytes written behind them): what backpressure
    // is about. A few KiB waiting only for this turn's flush do not count.
    size_t queued() const;
    // Once every queued byte is out: shutdown(SHUT_WR), then done(owner, status); not
    // at all if abandoned first (without a ring, libuv runs it with UV_ECANCELED then).
    // Later writes fail. 0, or an error (then `done` does not run).
    int shutdownAfterFlush(WriteDoneFn done);
    // Before the handle is closed: bytes not yet handed to the kernel go now as far as the
    // socket takes them, a send waiting for room is cancelled, no callback runs any more
    // (without a ring, libuv cancels its queued writes with UV_ECANCELED).
    void abandon();

private:
    friend class SendRing;
    int writeDirect(std::initializer_list<std::string_view> parts);
    int writeRing(std::initializer_list<std::string_view> parts);
    SendOp* building();
    void growLast(SendOp& op, std::string_view part);
    // The ring is done with `op`, its in-flight op: `status` 0 or a libuv error.
    void onSent(SendOp* op, int status);
    static void onShutdown(uv_shutdown_t* req, int status);

    void* owner_;
    WriteDoneFn done_;
    uv_stream_t* stream_ = nullptr;
    SendRing* ring_ = nullptr;
    SendOp* building_ = nullptr;  // takes new writes; submitted after in_flight_
    SendOp* in_flight_ = nullptr; // in the kernel (or about to be)
    // Sticky: a failed send ends the connection's writing; so does shutdownAfterFlush.
    int error_ = 0;
    bool refused_ = false; // a direct write was short: building_ holds its rest
};

} // namespace pooled
