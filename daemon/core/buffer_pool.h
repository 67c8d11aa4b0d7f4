// The loop's reusable write blocks and its one lendable read block.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <vector>

namespace pooled {

// Reused write blocks of one size, per loop: fresh heap pages fault on first
// touch, which costs more than the copy itself. Also the loop's one lendable read
// block: streams whose bytes go straight to another socket (upstream responses)
// read into it while it is here, and a write that must queue the rest of it
// adopts the block instead of copying; until that write is done, readers fall back
// to their small buffer, so one block is all the memory this costs per loop.
class BufferPool {
public:
    static constexpr size_t kReadBlockSize = 256 * 1024;

    explicit BufferPool(size_t block_size, size_t max_free = 32,
                        size_t read_block_size = kReadBlockSize)
        : block_size_(block_size), max_free_(max_free), read_block_size_(read_block_size) {}
    std::unique_ptr<char[]> take(size_t size);
    // `capacity` as take() sized it.
    void give(std::unique_ptr<char[]> block, size_t capacity);
    size_t blockSize() const { return block_size_; }

    // The read block, or `fallback` while a write holds it.
    uv_buf_t readBlock(uv_buf_t fallback);
    size_t readBlockSize() const { return read_block_size_; }
    bool inReadBlock(const char* data, size_t size) const;
    // The read block moves to the caller; the bytes in it stay where they are.
    std::unique_ptr<char[]> adoptReadBlock() { return std::move(read_block_); }
    // An adopted block comes back once its write is done (or failed: then its reader
    // may still be looking at bytes in it, which stay untouched until the next read).
    void returnReadBlock(std::unique_ptr<char[]> block) { read_block_ = std::move(block); }

private:
    size_t block_size_;
    size_t max_free_;
    size_t read_block_size_;
    std::vector<std::unique_ptr<char[]>> free_;
    std::unique_ptr<char[]> read_block_;
    bool read_block_made_ = false;
};

} // namespace pooled
