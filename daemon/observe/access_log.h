// The per-request latency log: one JSON (or text) line per finished request,
// written by a LineWriter thread so the loop never waits on I/O.
#pragma once

#include "config/config.h"
#include "observe/line_writer.h"
#include "observe/request_record.h"

#include <memory>
#include <string>

namespace pooled {

class AccessLog {
public:
    // Throws std::runtime_error if the output cannot be opened.
    explicit AccessLog(const AccessLogConfig& config);
    ~AccessLog();
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    bool enabled() const { return enabled_; }
    // Formats the record into this turn's batch. Loop thread only.
    void write(const RequestRecord& record);
    // Called once per loop turn (Worker's check phase): hands the turn's lines to the
    // writer thread in one go, so a busy loop pays one handoff per turn, not per request.
    void endOfTurn();
    // endOfTurn(), then waits until everything written is on the output.
    void flush();

    // Pure formatting, exposed for tests.
    static std::string formatJson(const RequestRecord& record);
    static std::string formatText(const RequestRecord& record);

private:
    bool enabled_;
    bool json_;
    std::unique_ptr<LineWriter> writer_;
    std::string batch_; // lines of this loop turn, newline-terminated
};

} // namespace pooled
