// BufferPool: see buffer_pool.h.
#include "core/buffer_pool.h"

#include <functional>

namespace pooled {

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

} // namespace pooled
