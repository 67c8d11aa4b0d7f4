// writeParts and BufferPool: see write_request.h.
#include "core/write_request.h"

#include <cstring>
#include <functional>

namespace pooled {

namespace {

// Below this a remainder gets an allocation of its own size: a whole block per
// small write would let many tiny queued writes pin many blocks.
constexpr size_t kSmallRemainder = 4 * 1024;

} // namespace

std::unique_ptr<char[]> BufferPool::take(size_t size) {
    if (size == block_size_ && !free_.empty()) {
        auto block = std::move(free_.back());
        free_.pop_back();
        return block;
    }
    return std::make_unique_for_overwrite<char[]>(size);
}

void BufferPool::give(std::unique_ptr<char[]> block, size_t capacity) {
    if (capacity == block_size_ && free_.size() < max_free_)
        free_.push_back(std::move(block));
}

uv_buf_t BufferPool::readBlock(uv_buf_t fallback) {
    if (!read_block_) {
        if (read_block_made_)
            return fallback; // adopted by a write still in flight
        // Made on first use: a loop that never streams a response never pays for it.
        read_block_ = std::make_unique_for_overwrite<char[]>(read_block_size_);
        read_block_made_ = true;
    }
    return uv_buf_init(read_block_.get(), static_cast<unsigned>(read_block_size_));
}

bool BufferPool::inReadBlock(const char* data, size_t size) const {
    if (!read_block_)
        return false;
    // Compared as addresses: the bytes may come from anywhere.
    std::less_equal<const char*> le;
    const char* begin = read_block_.get();
    return le(begin, data) && le(data + size, begin + read_block_size_);
}

namespace {

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
    w->owner = owner;
    w->done = done;
    w->req.data = w.get();
    int rc = uv_write(&w->req, stream, &buf, 1, &onWritten);
    if (rc == 0)
        w.release(); // owned by libuv until onWritten
    else if (w->adopted)
        pool.returnReadBlock(std::move(w->bytes));
    return rc;
}

} // namespace pooled
