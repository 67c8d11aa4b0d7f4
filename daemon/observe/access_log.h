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
    void write(const RequestRecord& record);
    void flush();

    // Pure formatting, exposed for tests.
    static std::string formatJson(const RequestRecord& record);
    static std::string formatText(const RequestRecord& record);

private:
    bool enabled_;
    bool json_;
    std::unique_ptr<LineWriter> writer_;
};

} // namespace pooled
