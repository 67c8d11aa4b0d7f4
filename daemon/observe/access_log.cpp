// The per-request latency log: formats a RequestRecord as one JSON or text line and hands it to
// a private asynchronous spdlog logger, so the event loop only pays for formatting and a queue
// push, never for I/O.
#include "observe/access_log.h"

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace pooled {

namespace {

// Records queued between the loop and the writer thread. A JSON line is ~400 bytes, so this is
// a few MB of slack, enough to absorb a burst or a short stall of the output.
constexpr size_t kQueueItems = 8192;

// ---------------------------------------------------------------------------------------------
// Formatting helpers. Everything appends to a fmt::memory_buffer (inline storage, no iostreams)
// because this runs once per request on the loop thread.

void lit(fmt::memory_buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

template <typename Int>
void num(fmt::memory_buffer& out, Int v) {
    const fmt::format_int f(v);
    out.append(f.data(), f.data() + f.size());
}

void digits(char* p, unsigned value, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
}

// RFC 3339 UTC with microseconds. Converted by hand (Howard Hinnant's days->civil algorithm)
// rather than gmtime_r: it is exact, branch-light and touches no libc state.
void appendTime(fmt::memory_buffer& out, int64_t unix_us) {
    constexpr int64_t kUsPerDay = int64_t{86400} * 1000000;
    int64_t days = unix_us / kUsPerDay;
    int64_t rem = unix_us % kUsPerDay;
    if (rem < 0) { // floor division, so pre-1970 instants still format correctly
        rem += kUsPerDay;
        --days;
    }
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int64_t day = doy - (153 * mp + 2) / 5 + 1;
    const int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    if (year < 0 || year > 9999) { // RFC 3339 has exactly four year digits; clamp nonsense clocks
        year = year < 0 ? 0 : 9999;
    }

    const int64_t secs = rem / 1000000;
    char buf[27]; // YYYY-MM-DDTHH:MM:SS.uuuuuuZ
    digits(buf, static_cast<unsigned>(year), 4);
    buf[4] = '-';
    digits(buf + 5, static_cast<unsigned>(month), 2);
    buf[7] = '-';
    digits(buf + 8, static_cast<unsigned>(day), 2);
    buf[10] = 'T';
    digits(buf + 11, static_cast<unsigned>(secs / 3600), 2);
    buf[13] = ':';
    digits(buf + 14, static_cast<unsigned>(secs / 60 % 60), 2);
    buf[16] = ':';
    digits(buf + 17, static_cast<unsigned>(secs % 60), 2);
    buf[19] = '.';
    digits(buf + 20, static_cast<unsigned>(rem % 1000000), 6);
    buf[26] = 'Z';
    out.append(buf, buf + sizeof buf);
}

// Microseconds as milliseconds with three decimals, integer arithmetic only.
// Negative means "did not happen"; the caller decides how to spell that.
void appendMs(fmt::memory_buffer& out, int64_t us) {
    num(out, us / 1000);
    char frac[4] = {'.', 0, 0, 0};
    digits(frac + 1, static_cast<unsigned>(us % 1000), 3);
    out.append(frac, frac + sizeof frac);
}

// Length of the well-formed UTF-8 sequence at p (RFC 3629 table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if the bytes there are not one.
size_t utf8Length(const unsigned char* p, size_t avail) {
    const unsigned char c = p[0];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; ++i) {
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    }
    return len;
}

void escapeByte(fmt::memory_buffer& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
    out.append(esc, esc + sizeof esc);
}

// JSON string body (no quotes). Host and path come from untrusted clients, so nothing that could
// break the line, the quoting or a UTF-8 decoder downstream is passed through: control bytes and
// DEL become \u00XX, and so does every byte that is not part of a well-formed UTF-8 sequence.
// Safe runs are copied in bulk; the common all-ASCII path is a single scan and one append.
void appendEscaped(fmt::memory_buffer& out, std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t run = 0;
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            ++i;
            continue;
        }
        size_t len = 0;
        if (c >= 0x80 && (len = utf8Length(p + i, n - i)) != 0) {
            i += len; // well-formed multi-byte character: part of the run
            continue;
        }
        out.append(s.data() + run, s.data() + i);
        if (c == '"' || c == '\\') {
            const char esc[2] = {'\\', static_cast<char>(c)};
            out.append(esc, esc + 2);
        } else {
            escapeByte(out, c);
        }
        run = ++i;
    }
    out.append(s.data() + run, s.data() + n);
}

void jsonString(fmt::memory_buffer& out, std::string_view key, std::string_view value) {
    lit(out, key);
    out.push_back('"');
    appendEscaped(out, value);
    out.push_back('"');
}

void jsonMs(fmt::memory_buffer& out, std::string_view key, int64_t us) {
    lit(out, key);
    if (us < 0) {
        lit(out, "null");
    } else {
        appendMs(out, us);
    }
}

void appendJson(fmt::memory_buffer& out, const RequestRecord& r) {
    lit(out, "{\"time\":\"");
    appendTime(out, r.start_unix_us);
    out.push_back('"');
    jsonString(out, ",\"client\":", r.client);
    jsonString(out, ",\"method\":", r.method);
    jsonString(out, ",\"scheme\":", r.scheme);
    jsonString(out, ",\"host\":", r.host);
    lit(out, ",\"port\":");
    num(out, r.port);
    jsonString(out, ",\"path\":", r.path);
    jsonString(out, ",\"route\":", r.route);
    lit(out, ",\"status\":");
    num(out, r.status);
    lit(out, ",\"bytes_in\":");
    num(out, r.bytes_in);
    lit(out, ",\"bytes_out\":");
    num(out, r.bytes_out);
    jsonMs(out, ",\"total_ms\":", r.total_us);
    jsonMs(out, ",\"pool_wait_ms\":", r.pool_wait_us);
    jsonMs(out, ",\"dns_ms\":", r.dns_us);
    jsonMs(out, ",\"connect_ms\":", r.connect_us);
    jsonMs(out, ",\"tls_ms\":", r.tls_us);
    lit(out, r.tls_resumed ? ",\"tls_resumed\":true" : ",\"tls_resumed\":false");
    jsonMs(out, ",\"ttfb_ms\":", r.ttfb_us);
    lit(out, r.reused ? ",\"reused\":true" : ",\"reused\":false");
    lit(out, ",\"upstream_conn\":");
    num(out, r.upstream_conn_id);
    lit(out, ",\"upstream_conn_requests\":");
    num(out, r.upstream_conn_requests);
    lit(out, ",\"retries\":");
    num(out, r.retries);
    jsonString(out, ",\"error\":", r.error);
    jsonString(out, ",\"detail\":", r.detail);
    out.push_back('}');
}

void textMs(fmt::memory_buffer& out, std::string_view key, int64_t us) {
    lit(out, key);
    if (us < 0) {
        out.push_back('-');
    } else {
        appendMs(out, us);
        lit(out, "ms");
    }
}

// Text fields are escaped like JSON too: a client-chosen path must not be able to forge a line.
void appendText(fmt::memory_buffer& out, const RequestRecord& r) {
    appendTime(out, r.start_unix_us);
    out.push_back(' ');
    if (r.client.empty()) {
        out.push_back('-');
    } else {
        appendEscaped(out, r.client);
    }
    lit(out, " \"");
    appendEscaped(out, r.method);
    out.push_back(' ');
    if (r.scheme != "tunnel") {
        appendEscaped(out, r.scheme);
        lit(out, "://");
    }
    // An IPv6 literal needs brackets or the port becomes ambiguous.
    const bool v6 = r.host.find(':') != std::string::npos;
    if (v6) out.push_back('[');
    appendEscaped(out, r.host);
    if (v6) out.push_back(']');
    out.push_back(':');
    num(out, r.port);
    if (r.scheme != "tunnel") appendEscaped(out, r.path);
    lit(out, "\" ");
    if (r.status == 0) {
        out.push_back('-');
    } else {
        num(out, r.status);
    }
    lit(out, " in=");
    num(out, r.bytes_in);
    lit(out, " out=");
    num(out, r.bytes_out);
    textMs(out, " total=", r.total_us);
    textMs(out, " wait=", r.pool_wait_us);
    textMs(out, " dns=", r.dns_us);
    textMs(out, " connect=", r.connect_us);
    textMs(out, " tls=", r.tls_us);
    textMs(out, " ttfb=", r.ttfb_us);
    lit(out, r.reused ? " reused" : " new");
    lit(out, " conn=");
    num(out, r.upstream_conn_id);
    out.push_back('/');
    num(out, r.upstream_conn_requests);
    lit(out, " retries=");
    num(out, r.retries);
    if (!r.route.empty()) {
        lit(out, " route=");
        appendEscaped(out, r.route);
    }
    if (!r.error.empty()) {
        lit(out, " error=");
        appendEscaped(out, r.error);
        lit(out, " detail=\"");
        appendEscaped(out, r.detail);
        out.push_back('"');
    }
}

// ---------------------------------------------------------------------------------------------
// Output side.

// Wraps the real sink (stdout/stderr/file) on the writer thread. It adds two things spdlog 1.10
// lacks without global state:
//  * timely delivery: the file sink buffers in its FILE*, and spdlog's periodic flusher is a
//    registry-wide singleton. Instead, whenever the queue has drained after a record, the output
//    is flushed. At low rates every line reaches the reader immediately; under load flushes
//    happen once per drained batch, so the FILE* buffer still coalesces writes.
//  * a synchronous flush(): async_logger::flush() only enqueues a flush request. The sink counts
//    records it has handled and publishes, after each real flush, how many are on the output;
//    AccessLog::flush() waits until that covers every record submitted before the call.
class FlushingSink final : public spdlog::sinks::sink {
public:
    FlushingSink(spdlog::sink_ptr inner, spdlog::details::thread_pool* pool)
        : inner_(std::move(inner)), pool_(pool) {}

    void log(const spdlog::details::log_msg& msg) override {
        ++handled_; // counted even if the write throws, so a flush() can never wait forever
        inner_->log(msg);
        // pool_ is valid: this only runs on that pool's own worker thread.
        if (pool_->queue_size() == 0) flushNow();
    }
    void flush() override { flushNow(); }
    void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
    void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
        inner_->set_formatter(std::move(formatter));
    }

    void noteSubmitted() { submitted_.fetch_add(1, std::memory_order_relaxed); }

    uint64_t submitted() const { return submitted_.load(std::memory_order_relaxed); }

    // Blocks until `target` records are on the output. The caller reads submitted() and then
    // requests a flush, so a flush that publishes at least `target` is guaranteed to come.
    void waitFlushed(uint64_t target) {
        std::unique_lock lock(mutex_);
        flushed_cv_.wait(lock, [&] { return flushed_ >= target; });
    }

private:
    void flushNow() {
        // Publish even if the flush throws (e.g. disk full): the records were attempted, and a
        // waiter must not hang on a failure spdlog's error handler already reported.
        struct Publish {
            FlushingSink& sink;
            ~Publish() {
                {
                    std::lock_guard lock(sink.mutex_);
                    sink.flushed_ = sink.handled_;
                }
                sink.flushed_cv_.notify_all();
            }
        } publish{*this};
        inner_->flush();
    }

    spdlog::sink_ptr inner_;
    spdlog::details::thread_pool* pool_;
    std::atomic<uint64_t> submitted_{0}; // written by loop threads
    uint64_t handled_ = 0;               // writer thread only
    std::mutex mutex_;
    std::condition_variable flushed_cv_;
    uint64_t flushed_ = 0; // guarded by mutex_
};

// Owns the private thread pool together with the logger. async_logger only keeps a weak_ptr to
// its pool, so AccessLog::logger_ points into this bundle (shared_ptr aliasing) to keep both
// alive exactly as long as the log. Destruction first drops the pool, whose destructor drains
// the queue and joins the writer thread; only then are the logger and its sinks freed, so
// nothing is destroyed while the writer may still touch it.
struct Pipeline {
    std::shared_ptr<spdlog::details::thread_pool> pool;
    std::shared_ptr<spdlog::async_logger> logger;
    ~Pipeline() {
        pool.reset();
        logger.reset();
    }
};

spdlog::sink_ptr openOutput(const std::string& output) {
    if (output == "stdout") return std::make_shared<spdlog::sinks::stdout_sink_mt>();
    if (output == "stderr") return std::make_shared<spdlog::sinks::stderr_sink_mt>();
    if (output.empty()) throw std::runtime_error("access_log.output is empty");
    try {
        return std::make_shared<spdlog::sinks::basic_file_sink_mt>(output, /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) { // spdlog_ex is not a runtime_error; callers expect one
        throw std::runtime_error("cannot open access log '" + output + "': " + e.what());
    }
}

FlushingSink& flushingSink(spdlog::logger& logger) {
    // The logger is built in the constructor below with exactly this one sink.
    return static_cast<FlushingSink&>(*logger.sinks().front());
}

} // namespace

AccessLog::AccessLog(const AccessLogConfig& config)
    : enabled_(config.enabled), json_(config.format != "text") {
    if (!enabled_) return; // nothing opened, no thread started: write() is a single branch
    if (config.format != "json" && config.format != "text") {
        throw std::runtime_error("access_log.format must be json or text, got '" + config.format +
                                 "'");
    }
    auto pipeline = std::make_shared<Pipeline>();
    pipeline->pool = std::make_shared<spdlog::details::thread_pool>(kQueueItems, 1);
    auto sink = std::make_shared<FlushingSink>(openOutput(config.output), pipeline->pool.get());
    // Overflow policy block, not overrun_oldest: an access log that silently drops records under
    // load is worst exactly when it is needed. The writer sustains ~350k lines/s to a file and
    // ~100k/s to a pipe (spdlog's stdout sink fflushes every line), so a full queue means the
    // output itself is stuck or slow, and back-pressure on the loop shows that instead of
    // hiding it in lost records.
    pipeline->logger = std::make_shared<spdlog::async_logger>(
        "access", std::move(sink), pipeline->pool, spdlog::async_overflow_policy::block);
    pipeline->logger->set_pattern("%v"); // the record is the whole line
    pipeline->logger->set_level(spdlog::level::info);
    // Records are logged at info, so this never fires today; it keeps errors written through this
    // logger from sitting in a buffer should any ever be added.
    pipeline->logger->flush_on(spdlog::level::err);
    // Deliberately not spdlog::register_logger(): no process-wide state.
    logger_ = std::shared_ptr<spdlog::logger>(pipeline, pipeline->logger.get());
}

AccessLog::~AccessLog() {
    if (!logger_) return;
    try {
        flush();
    } catch (...) {
        // Nothing useful to do while tearing down; the pool still drains what is queued.
    }
    logger_.reset(); // destroys the Pipeline: drains the queue and joins the writer thread
}

void AccessLog::write(const RequestRecord& record) {
    if (!enabled_) return;
    fmt::memory_buffer line;
    if (json_) {
        appendJson(line, record);
    } else {
        appendText(line, record);
    }
    flushingSink(*logger_).noteSubmitted();
    logger_->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

void AccessLog::flush() {
    if (!enabled_) return;
    FlushingSink& sink = flushingSink(*logger_);
    const uint64_t target = sink.submitted();
    logger_->flush(); // enqueued behind every record submitted so far
    sink.waitFlushed(target);
}

std::string AccessLog::formatJson(const RequestRecord& record) {
    fmt::memory_buffer out;
    appendJson(out, record);
    return fmt::to_string(out);
}

std::string AccessLog::formatText(const RequestRecord& record) {
    fmt::memory_buffer out;
    appendText(out, record);
    return fmt::to_string(out);
}

} // namespace pooled
