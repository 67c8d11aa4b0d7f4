// The access log's output thread: see line_writer.h.
#include "observe/line_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pooled {

namespace {

// A batch that grew large during a burst is not kept around afterwards.
constexpr size_t kKeepCapacity = 256 << 10;

} // namespace

LineWriter::LineWriter(const std::string& output) {
    if (output == "stdout") {
        fd_ = STDOUT_FILENO;
    } else if (output == "stderr") {
        fd_ = STDERR_FILENO;
    } else {
        if (output.empty())
            throw std::runtime_error("access_log.output is empty");
        fd_ = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd_ < 0)
            throw std::runtime_error("cannot open access log '" + output +
                                     "': " + std::strerror(errno));
        owns_fd_ = true;
    }
    thread_ = std::thread([this] { run(); });
}

LineWriter::~LineWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (owns_fd_)
        ::close(fd_);
}

void LineWriter::write(std::string_view lines) {
    std::unique_lock lock(mutex_);
    written_.wait(lock, [&] { return pending_.size() < kMaxBuffered; });
    const size_t before = pending_.size();
    pending_.append(lines);
    ++appended_;
    lock.unlock();
    // The first line wakes the writer; later ones it finds when its linger ends, unless
    // they make the batch big enough to go now.
    if (before == 0 || (before < kLingerBytes && before + lines.size() >= kLingerBytes))
        wake_.notify_one();
}

void LineWriter::flush() {
    std::unique_lock lock(mutex_);
    const uint64_t target = appended_;
    ++flushing_;
    wake_.notify_one();
    written_.wait(lock, [&] { return done_ >= target; });
    --flushing_;
}

void LineWriter::run() {
    std::string batch;
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return !pending_.empty() || stopping_; });
        if (pending_.empty())
            return; // stopping with nothing left
        wake_.wait_for(lock, kLinger, [&] {
            return stopping_ || flushing_ > 0 || pending_.size() >= kLingerBytes;
        });
        batch.swap(pending_);
        const uint64_t through = appended_;
        lock.unlock();
        writeAll(batch);
        batch.clear();
        if (batch.capacity() > kKeepCapacity)
            batch.shrink_to_fit();
        lock.lock();
        done_ = through;
        written_.notify_all();
    }
}

void LineWriter::writeAll(const std::string& batch) {
    const char* data = batch.data();
    size_t left = batch.size();
    while (left > 0) {
        const ssize_t n = ::write(fd_, data, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) { // a non-blocking stdout (inherited): wait for room
                usleep(1000);
                continue;
            }
            // Disk full, reader gone: the lines cannot be delivered, and retrying forever
            // would block the loop behind a full buffer. Dropped, like a closed pipe's.
            return;
        }
        data += n;
        left -= static_cast<size_t>(n);
    }
}

} // namespace pooled
