// SendRing: see send_ring.h.
#include "net/send_ring.h"

#include "core/buffer_pool.h"
#include "core/closable.h"
#include "net/stream_writer.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pooled {

namespace {

// Enough for every send of a busy turn; a fuller queue is submitted early.
constexpr unsigned kEntries = 256;
// Ops and small blocks kept for reuse beyond this are freed: a burst of ten
// thousand writers must not pin their ops for good.
constexpr size_t kMaxFreeOps = 256;
constexpr size_t kMaxFreeSmallBlocks = 256;

} // namespace

SendRing::SendRing(uv_loop_t* loop, BufferPool& pool, bool use_uring, std::string& why)
    : pool_(pool) {
    if (!use_uring) {
        why = "off in the configuration";
        return;
    }
    auto ring = std::make_unique<io_uring>();
    // Completions of sends that waited for room are posted only when this (the loop's)
    // thread asks, in a flush or after the eventfd: no interrupting task work. The ring
    // flags when such work waits (TASKRUN_FLAG), for the window the eventfd is off.
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                   IORING_SETUP_TASKRUN_FLAG;
    int rc = io_uring_queue_init_params(kEntries, ring.get(), &params);
    if (rc == -EINVAL) { // before Linux 6.1
        params = io_uring_params{};
        rc = io_uring_queue_init_params(kEntries, ring.get(), &params);
    }
    if (rc < 0) {
        why = std::string("io_uring_setup: ") + std::strerror(-rc);
        return;
    }
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0 || io_uring_register_eventfd(ring.get(), event_fd_) < 0 ||
        uv_poll_init(loop, &event_poll_, event_fd_) != 0) {
        why = std::string("eventfd: ") + std::strerror(errno);
        io_uring_queue_exit(ring.get());
        if (event_fd_ >= 0)
            close(event_fd_);
        event_fd_ = -1;
        return;
    }
    event_poll_.data = this;
    uv_poll_start(&event_poll_, UV_READABLE, &SendRing::onEventFd);
    // Like the Worker's other bookkeeping handles, it must not keep the loop alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(&event_poll_));
    ring_ = std::move(ring);
}

SendRing::~SendRing() {
    if (!ring_)
        return;
    // Ops still in the kernel are cancelled by the teardown, before ops_ frees them.
    io_uring_queue_exit(ring_.get());
    close(event_fd_);
}

void SendRing::closeHandles(HandleCloser& closer) {
    if (ring_)
        closer.add(reinterpret_cast<uv_handle_t*>(&event_poll_));
}

std::unique_ptr<char[]> SendRing::takeSmallBlock() {
    if (small_free_.empty())
        return std::make_unique_for_overwrite<char[]>(kSmallBlock);
    auto block = std::move(small_free_.back());
    small_free_.pop_back();
    return block;
}

SendOp* SendRing::takeOp(StreamWriter* writer, int fd) {
    SendOp* op;
    if (!free_ops_.empty()) {
        op = free_ops_.back();
        free_ops_.pop_back();
    } else {
        ops_.push_back(std::make_unique<SendOp>());
        op = ops_.back().get();
        op->slot = ops_.size() - 1;
    }
    op->writer = writer;
    op->fd = fd;
    return op;
}

void SendRing::release(SendOp::Chunk& chunk) {
    if (chunk.adopted)
        pool_.returnReadBlock(std::move(chunk.block));
    else if (chunk.capacity == kSmallBlock && small_free_.size() < kMaxFreeSmallBlocks)
        small_free_.push_back(std::move(chunk.block));
    else if (chunk.block)
        pool_.give(std::move(chunk.block), chunk.capacity);
    chunk = SendOp::Chunk{};
}

void SendRing::recycle(SendOp* op) {
    for (unsigned i = 0; i < op->count; ++i)
        release(op->chunks[i]);
    op->writer = nullptr;
    op->fd = -1;
    op->count = 0;
    op->total = op->sent = 0;
    op->shutdown_done = nullptr;
    op->listed = false;
    if (free_ops_.size() < kMaxFreeOps) {
        free_ops_.push_back(op);
        return;
    }
    // Swap-remove from ops_: the last op takes this one's slot.
    size_t slot = op->slot;
    std::swap(ops_[slot], ops_.back());
    ops_[slot]->slot = slot;
    ops_.pop_back();
}

io_uring_sqe* SendRing::sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (!sqe) { // full: submit what is queued (completions are read at the flush)
        io_uring_submit(ring_.get());
        sqe = io_uring_get_sqe(ring_.get());
    }
    return sqe;
}

bool SendRing::submitNow(io_uring_sqe* sqe) {
    io_uring_submit(ring_.get());
    if (io_uring_sq_ready(ring_.get()) == 0)
        return true;
    // The kernel took nothing (an error, or too early a kernel's full completion queue):
    // ours, the last entry, would go with some later submit, long after its fd closed
    // and perhaps became another socket's. Only this thread submits, so it is ours still
    // to turn into a no-op.
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, nullptr);
    return false;
}

void SendRing::drop(SendOp* op) {
    if (op->listed)
        op->writer = nullptr; // submit() recycles it
    else
        recycle(op);
}

void SendRing::cancel(SendOp* op) {
    if (op->listed) { // not in the kernel: the rest of a short send
        op->writer = nullptr;
        return;
    }
    op->writer = nullptr;
    // Until then the kernel holds the socket open: a send waiting for room would keep
    // the connection from closing for as long as the peer does not read.
    if (io_uring_sqe* sqe = this->sqe()) {
        io_uring_prep_cancel(sqe, op, 0);
        io_uring_sqe_set_data(sqe, nullptr);
        if (submitNow(sqe)) // now: rare, and the close follows
            return;
    }
    // No way to the kernel just now (the queue full and a submit failing): the send
    // must end anyway. The fd is still the writer's socket (abandon() comes before the
    // close); shut down, it fails the waiting send, which lets go of it.
    ::shutdown(op->fd, SHUT_RDWR);
}

void SendRing::sendDetached(SendOp* op) {
    if (op->listed) { // rare: no faster way out of the lists than a search
        for (auto* list : {&ready_, &submitting_})
            for (SendOp*& entry : *list)
                if (entry == op)
                    entry = nullptr;
        op->listed = false;
    }
    op->writer = nullptr;
    op->shutdown_done = nullptr;
    if (io_uring_sqe* sqe = this->sqe()) {
        fillIov(op);
        io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        io_uring_sqe_set_data(sqe, op);
        if (submitNow(sqe)) {
            ++sends_;
            ++batches_;
            return;
        }
    }
    recycle(op); // best effort: those last bytes are lost
}

void SendRing::fillIov(SendOp* op) {
    // The iovecs start where the last (short) send ended.
    unsigned n = 0;
    size_t skip = op->sent;
    for (unsigned i = 0; i < op->count; ++i) {
        SendOp::Chunk& chunk = op->chunks[i];
        if (skip >= chunk.size) {
            skip -= chunk.size;
            continue;
        }
        op->iov[n].iov_base = const_cast<char*>(chunk.data) + skip;
        op->iov[n].iov_len = chunk.size - skip;
        skip = 0;
        ++n;
    }
    op->msg = msghdr{};
    op->msg.msg_iov = op->iov;
    op->msg.msg_iovlen = n;
}

void SendRing::submit(SendOp* op) {
    if (!op)
        return; // sent detached meanwhile
    op->listed = false;
    StreamWriter* writer = op->writer;
    if (!writer) { // abandoned before it was sent
        recycle(op);
        return;
    }
    if (writer->building_ == op) {
        writer->building_ = nullptr;
        writer->in_flight_ = op;
    }
    if (op->unsent() == 0) { // only a shutdown to do
        writer->onSent(op, 0);
        return;
    }
    fillIov(op);
    io_uring_sqe* sqe = this->sqe();
    if (!sqe) {
        complete(op, -EAGAIN);
        return;
    }
    // MSG_WAITALL: the kernel finishes a send the socket could not take at once
    // instead of completing it short.
    io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data(sqe, op);
    ++sends_;
}

void SendRing::complete(SendOp* op, int result) {
    StreamWriter* writer = op->writer;
    if (!writer) { // abandoned: nobody waits for it
        recycle(op);
        return;
    }
    if (result < 0) {
        writer->onSent(op, result); // negative errno: libuv's error codes on Unix
        return;
    }
    op->sent += static_cast<size_t>(result);
    if (op->unsent() > 0) { // short (a signal, say): the rest goes in the next round
        ready(op);
        return;
    }
    writer->onSent(op, 0);
}

void SendRing::reap() {
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
        auto* op = static_cast<SendOp*>(io_uring_cqe_get_data(cqe));
        int result = cqe->res;
        io_uring_cqe_seen(ring_.get(), cqe);
        if (op) // null: a cancellation's own completion
            complete(op, result);
    }
}

void SendRing::flush(int rounds) {
    if (!ring_)
        return;
    if (ready_.empty())
        return;
    // Completions posted inside our own submit are read right after it: they need no
    // wake-up (an eventfd write, an epoll event, a read(2) each turn).
    io_uring_cq_eventfd_toggle(ring_.get(), false);
    for (int round = 0; round < rounds && !ready_.empty(); ++round) {
        submitting_.swap(ready_);
        for (SendOp* op : submitting_)
            submit(op);
        submitting_.clear();
        if (io_uring_submit_and_get_events(ring_.get()) > 0)
            ++batches_;
        // Sends the sockets could take completed inside the submit: their callbacks run
        // now and may write more, which the next round sends.
        reap();
    }
    io_uring_cq_eventfd_toggle(ring_.get(), true);
    // What arrived while the eventfd was off woke nobody: a send that got room then
    // (its retry is work waiting for us), a completion posted after the last look.
    if (IO_URING_READ_ONCE(*ring_->sq.kflags) & IORING_SQ_TASKRUN)
        io_uring_get_events(ring_.get());
    reap();
}

void SendRing::onEventFd(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<SendRing*>(handle->data);
    if (status < 0)
        return;
    uint64_t count;
    while (read(self->event_fd_, &count, sizeof count) > 0) {
    }
    io_uring_get_events(self->ring_.get());
    self->reap();
    // What the callbacks wrote goes in this turn's check-phase flush.
}

} // namespace pooled
