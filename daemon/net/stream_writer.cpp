// StreamWriter: see stream_writer.h.
#include "net/stream_writer.h"

#include "core/buffer_pool.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace pooled {

namespace {

// Below this a remainder gets an allocation of its own size: a whole block per
// small write would let many tiny queued writes pin many blocks.
constexpr size_t kSmallRemainder = 4 * 1024;
// From this size a write to an idle writer goes straight to the socket (see writeRing).
constexpr size_t kDirectWrite = 16 * 1024;

struct WriteRequest {
    uv_write_t req;
    std::unique_ptr<char[]> bytes;
    size_t capacity;
    bool adopted; // the pool's read block, going back to it
    BufferPool* pool;
    void* owner;
    WriteDoneFn done;
};

void onWritten(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> w(static_cast<WriteRequest*>(req->data));
    if (w->adopted)
        w->pool->returnReadBlock(std::move(w->bytes));
    else
        w->pool->give(std::move(w->bytes), w->capacity);
    w->done(w->owner, status);
}

struct ShutdownRequest {
    uv_shutdown_t req;
    void* owner;
    WriteDoneFn done;
};

// The non-empty parts as libuv buffers; false if there are more than 8 (callers pass
// up to four).
bool gather(std::initializer_list<std::string_view> parts, uv_buf_t (&bufs)[8], unsigned& count,
            size_t& total) {
    count = 0;
    total = 0;
    for (auto part : parts) {
        if (part.empty())
            continue;
        if (count == 8)
            return false;
        bufs[count++] =
            uv_buf_init(const_cast<char*>(part.data()), static_cast<unsigned>(part.size()));
        total += part.size();
    }
    return true;
}

} // namespace

void StreamWriter::attach(uv_stream_t* stream, SendRing& ring) {
    abandon();
    stream_ = stream;
    ring_ = &ring;
    error_ = 0;
    refused_ = false;
}

int StreamWriter::write(std::initializer_list<std::string_view> parts) {
    if (error_ != 0)
        return error_;
    if (!ring_)
        return UV_EBADF;
    int rc = ring_->enabled() ? writeRing(parts) : writeDirect(parts);
    if (rc != 0)
        error_ = rc; // the socket's writing is over, as after a failed send
    return rc;
}

size_t StreamWriter::queued() const {
    if (!ring_)
        return 0;
    if (!ring_->enabled())
        return uv_stream_get_write_queue_size(stream_);
    // Nothing refused yet, and little: it all goes in this turn's flush.
    if (!in_flight_ && !refused_ && (!building_ || building_->unsent() < kDirectWrite))
        return 0;
    return (building_ ? building_->unsent() : 0) + (in_flight_ ? in_flight_->unsent() : 0);
}

SendOp* StreamWriter::building() {
    if (!building_) {
        uv_os_fd_t fd = -1;
        uv_fileno(reinterpret_cast<uv_handle_t*>(stream_), &fd);
        building_ = ring_->takeOp(this, fd);
        if (!in_flight_)
            ring_->ready(building_);
    }
    return building_;
}

int StreamWriter::writeRing(std::initializer_list<std::string_view> parts) {
    size_t skip = 0;
    uv_buf_t bufs[8];
    unsigned count;
    size_t total;
    if (!building_ && !in_flight_ && gather(parts, bufs, count, total) && total >= kDirectWrite) {
        // A body: straight to the socket, one syscall as in the batch, and what the
        // socket does not take is known at once (backpressure, the read block).
        int rc = uv_try_write(stream_, bufs, count);
        if (rc < 0 && rc != UV_EAGAIN)
            return rc;
        skip = rc > 0 ? static_cast<size_t>(rc) : 0;
        if (skip == total)
            return 0;
        refused_ = true;
    }
    BufferPool& pool = ring_->pool();
    for (auto part : parts) {
        if (skip >= part.size()) {
            skip -= part.size();
            continue;
        }
        part.remove_prefix(skip);
        skip = 0;
        while (!part.empty()) {
            SendOp* op = building();
            SendOp::Chunk* last = op->count ? &op->chunks[op->count - 1] : nullptr;
            // Into the last chunk while it has room (small heads and bodies share one).
            if (last && !last->adopted && last->size < last->capacity) {
                size_t n = std::min(part.size(), last->capacity - last->size);
                std::memcpy(last->block.get() + last->size, part.data(), n);
                last->size += n;
                op->total += n;
                part.remove_prefix(n);
                continue;
            }
            if (op->full()) {
                // Rare (many writes piled up behind a send the peer is slow to take): the
                // last chunk grows instead.
                growLast(*op, part);
                break;
            }
            SendOp::Chunk& chunk = op->chunks[op->count++];
            if (part.size() >= kSmallRemainder && pool.inReadBlock(part.data(), part.size())) {
                // A body just read into the loop's read block: sent from there.
                chunk.block = pool.adoptReadBlock();
                chunk.adopted = true;
                chunk.data = part.data();
                chunk.size = part.size();
            } else {
                chunk.capacity = part.size() <= SendRing::kSmallBlock ? SendRing::kSmallBlock
                                 : part.size() > pool.blockSize()     ? part.size()
                                                                      : pool.blockSize();
                chunk.block = chunk.capacity == SendRing::kSmallBlock ? ring_->takeSmallBlock()
                                                                       : pool.take(chunk.capacity);
                std::memcpy(chunk.block.get(), part.data(), part.size());
                chunk.data = chunk.block.get();
                chunk.size = part.size();
            }
            op->total += chunk.size;
            part.remove_prefix(chunk.size);
        }
    }
    return 0;
}

void StreamWriter::growLast(SendOp& op, std::string_view part) {
    BufferPool& pool = ring_->pool();
    SendOp::Chunk& last = op.chunks[op.count - 1];
    size_t size = last.size + part.size();
    // Doubled: the writes that follow append in place (linear, not quadratic, copying).
    size_t capacity = std::max(2 * size, pool.blockSize());
    auto block = pool.take(capacity);
    std::memcpy(block.get(), last.data, last.size);
    std::memcpy(block.get() + last.size, part.data(), part.size());
    ring_->release(last);
    last.block = std::move(block);
    last.capacity = capacity;
    last.data = last.block.get();
    last.size = size;
    op.total += part.size();
}

int StreamWriter::writeDirect(std::initializer_list<std::string_view> parts) {
    BufferPool& pool = ring_->pool();
    uv_buf_t bufs[8];
    unsigned count;
    size_t total;
    if (!gather(parts, bufs, count, total))
        return UV_EINVAL;
    if (total == 0)
        return 0;
    size_t written = 0;
    // Only when nothing is queued: bytes must leave in order.
    if (uv_stream_get_write_queue_size(stream_) == 0) {
        int rc = uv_try_write(stream_, bufs, count);
        if (rc > 0)
            written = static_cast<size_t>(rc);
        else if (rc != UV_EAGAIN && rc != UV_ENOSYS)
            return rc;
    }
    if (written == total)
        return 0;
    auto w = std::make_unique<WriteRequest>();
    size_t rest = total - written;
    // Where the remainder starts: bufs[first] from offset `skip`.
    unsigned first = 0;
    size_t skip = written;
    while (skip >= bufs[first].len) {
        skip -= bufs[first].len;
        ++first;
    }
    const char* rest_begin = bufs[first].base + skip;
    uv_buf_t buf;
    if (first + 1 == count && rest >= kSmallRemainder && pool.inReadBlock(rest_begin, rest)) {
        // The rest of a read block: the write keeps the block instead of a copy.
        w->bytes = pool.adoptReadBlock();
        w->adopted = true;
        buf = uv_buf_init(const_cast<char*>(rest_begin), static_cast<unsigned>(rest));
    } else {
        w->adopted = false;
        w->capacity = rest < kSmallRemainder || rest > pool.blockSize() ? rest : pool.blockSize();
        w->bytes = pool.take(w->capacity);
        size_t offset = 0;
        for (unsigned i = first; i < count; ++i) {
            std::memcpy(w->bytes.get() + offset, bufs[i].base + skip, bufs[i].len - skip);
            offset += bufs[i].len - skip;
            skip = 0;
        }
        buf = uv_buf_init(w->bytes.get(), static_cast<unsigned>(rest));
    }
    w->pool = &pool;
    w->owner = owner_;
    w->done = done_;
    w->req.data = w.get();
    int rc = uv_write(&w->req, stream_, &buf, 1, &onWritten);
    if (rc == 0)
        w.release(); // owned by libuv until onWritten
    else if (w->adopted)
        pool.returnReadBlock(std::move(w->bytes));
    return rc;
}

int StreamWriter::shutdownAfterFlush(WriteDoneFn done) {
    if (error_ != 0)
        return error_;
    if (!ring_)
        return UV_EBADF;
    if (!ring_->enabled()) {
        auto request = std::make_unique<ShutdownRequest>();
        request->owner = owner_;
        request->done = done;
        request->req.data = request.get();
        // libuv runs it once its write queue is flushed (UV_ECANCELED if closed first).
        int rc = uv_shutdown(&request->req, stream_, &StreamWriter::onShutdown);
        if (rc == 0)
            request.release(); // owned by libuv until onShutdown
        error_ = rc == 0 ? UV_EPIPE : rc;
        return rc;
    }
    building()->shutdown_done = done;
    error_ = UV_EPIPE;
    return 0;
}

void StreamWriter::onShutdown(uv_shutdown_t* req, int status) {
    std::unique_ptr<ShutdownRequest> request(static_cast<ShutdownRequest*>(req->data));
    request->done(request->owner, status);
}

void StreamWriter::onSent(SendOp* op, int status) {
    in_flight_ = nullptr;
    refused_ = false;
    WriteDoneFn shutdown_done = op->shutdown_done;
    int fd = op->fd;
    ring_->recycle(op);
    if (status < 0) {
        error_ = status;
        if (building_) // never to be sent
            ring_->drop(building_);
        building_ = nullptr;
    } else if (building_) {
        ring_->ready(building_);
    }
    done_(owner_, status);
    // Unless the owner closed (abandon) meanwhile.
    if (shutdown_done && ring_) {
        if (status == 0)
            status = ::shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
        shutdown_done(owner_, status);
    }
}

void StreamWriter::abandon() {
    if (!ring_)
        return;
    if (building_ && !in_flight_ && building_->unsent() > 0) {
        // Written just before the close (a TLS close_notify, a tunnel's last bytes): it
        // goes now, while the fd is still this socket's, as far as the socket takes it.
        ring_->sendDetached(building_);
        building_ = nullptr;
    }
    if (building_)
        ring_->drop(building_);
    if (in_flight_)
        ring_->cancel(in_flight_);
    building_ = in_flight_ = nullptr;
    ring_ = nullptr;
    stream_ = nullptr;
}

} // namespace pooled
