// Appends whole lines to a file descriptor from a writer thread of its own, so the event
// loop never waits on the disk or a pipe. Lines collect in one buffer (group commit): the
// writer, woken by the first line, gathers for up to kLinger (or kLingerBytes) before one
// write(2), so under load a wake-up and a write carry thousands of lines instead of one
// loop turn's few dozen, and the cost on the loop is a short mutex hold and an append.
// nginx's `access_log ... buffer= flush=` does the same without the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace pooled {

class LineWriter {
public:
    // "stdout", "stderr" or a file path (created, appended to). Throws std::runtime_error
    // if the file cannot be opened.
    explicit LineWriter(const std::string& output);
    // Writes what is buffered, then stops the thread.
    ~LineWriter();
    LineWriter(const LineWriter&) = delete;
    LineWriter& operator=(const LineWriter&) = delete;

    // Whole newline-terminated lines. Thread-safe. Blocks only when kMaxBuffered bytes
    // wait already, i.e. the output is stuck: losing records silently would be worse.
    void write(std::string_view lines);
    // Returns once every line written before the call has been handed to the kernel.
    void flush();

    static constexpr size_t kMaxBuffered = 4 << 20;
    // How long a line may wait for company; flush() and stopping cut it short.
    static constexpr std::chrono::milliseconds kLinger{10};
    static constexpr size_t kLingerBytes = 64 << 10;

private:
    void run();
    void writeAll(const std::string& batch);

    int fd_ = -1;
    bool owns_fd_ = false;
    std::mutex mutex_;
    std::condition_variable wake_;    // lines waiting, or stopping
    std::condition_variable written_; // a batch reached the kernel, or room in the buffer
    std::string pending_;             // guarded by mutex_
    uint64_t appended_ = 0;           // write() calls so far (guarded)
    uint64_t done_ = 0;               // of those, handed to the kernel (guarded)
    bool stopping_ = false;           // guarded
    int flushing_ = 0;                // flush() calls waiting (guarded)
    std::thread thread_;              // last: starts once everything above exists
};

} // namespace pooled
