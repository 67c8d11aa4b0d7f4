// Writing to a libuv stream without a copy in the common case: bytes go out at
// once with uv_try_write when nothing is queued; only what the socket did not
// take is copied into a pooled block and queued with uv_write. The owner must
// outlive its queued writes: libuv runs write callbacks (ECANCELED) before a
// handle's close callback, so an owner freed from its close callback is safe.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

namespace pooled {

using WriteDoneFn = void (*)(void* owner, int status);

// Reused write blocks of one size, per loop: fresh heap pages fault on first
// touch, which costs more than the copy itself.
class BufferPool {
public:
    explicit BufferPool(size_t block_size, size_t max_free = 32)
        : block_size_(block_size), max_free_(max_free) {}
    std::unique_ptr<char[]> take(size_t size);
    void give(std::unique_ptr<char[]> block, size_t size);
    size_t blockSize() const { return block_size_; }

private:
    size_t block_size_;
    size_t max_free_;
    std::vector<std::unique_ptr<char[]>> free_;
};

// Writes the concatenation of `parts`. Returns 0 or a libuv error (then no
// callback runs). `done` runs only if something had to be queued.
int writeParts(uv_stream_t* stream, std::initializer_list<std::string_view> parts,
               BufferPool& pool, void* owner, WriteDoneFn done);

} // namespace pooled
