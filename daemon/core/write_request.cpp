// writeParts and BufferPool: see write_request.h.
#include "core/write_request.h"

#include <cstring>

namespace pooled {

std::unique_ptr<char[]> BufferPool::take(size_t size) {
    if (size <= block_size_ && !free_.empty()) {
        auto block = std::move(free_.back());
        free_.pop_back();
        return block;
    }
    return std::make_unique<char[]>(size <= block_size_ ? block_size_ : size);
}

void BufferPool::give(std::unique_ptr<char[]> block, size_t size) {
    if (size <= block_size_ && free_.size() < max_free_)
        free_.push_back(std::move(block));
}

namespace {

struct WriteRequest {
    uv_write_t req;
    std::unique_ptr<char[]> bytes;
    size_t capacity;
    BufferPool* pool;
    void* owner;
    WriteDoneFn done;
};

void onWritten(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> w(static_cast<WriteRequest*>(req->data));
    w->pool->give(std::move(w->bytes), w->capacity);
    w->done(w->owner, status);
}

} // namespace

int writeParts(uv_stream_t* stream, std::initializer_list<std::string_view> parts,
               BufferPool& pool, void* owner, WriteDoneFn done) {
    uv_buf_t bufs[8];
    unsigned count = 0;
    size_t total = 0;
    for (auto part : parts) {
        if (part.empty() || count == 8)
            continue;
        bufs[count++] = uv_buf_init(const_cast<char*>(part.data()), static_cast<unsigned>(part.size()));
        total += part.size();
    }
    if (total == 0)
        return 0;
    size_t written = 0;
    // Only when nothing is queued: bytes must leave in order.
    if (uv_stream_get_write_queue_size(stream) == 0) {
        int rc = uv_try_write(stream, bufs, count);
        if (rc > 0)
            written = static_cast<size_t>(rc);
        else if (rc != UV_EAGAIN && rc != UV_ENOSYS)
            return rc;
    }
    if (written == total)
        return 0;
    auto w = std::make_unique<WriteRequest>();
    size_t rest = total - written;
    w->capacity = rest;
    w->bytes = pool.take(rest);
    w->capacity = rest <= pool.blockSize() ? pool.blockSize() : rest;
    size_t offset = 0, skip = written;
    for (unsigned i = 0; i < count; ++i) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        std::memcpy(w->bytes.get() + offset, bufs[i].base + skip, len - skip);
        offset += len - skip;
        skip = 0;
    }
    w->pool = &pool;
    w->owner = owner;
    w->done = done;
    w->req.data = w.get();
    uv_buf_t buf = uv_buf_init(w->bytes.get(), static_cast<unsigned>(rest));
    int rc = uv_write(&w->req, stream, &buf, 1, &onWritten);
    if (rc == 0)
        w.release(); // owned by libuv until onWritten
    return rc;
}

} // namespace pooled
