// Specifications of the per-request latency log: exact JSON and text lines, escaping of
// client-controlled strings, and the asynchronous file output (delivery, flush, failure).
#include "observe/access_log.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace pooled {
namespace {

namespace fs = std::filesystem;

// 2026-11-30T01:02:03.123456Z
constexpr int64_t kStartUs = int64_t{1796000523} * 1000000 + 123456;

RequestRecord fullRecord() {
    RequestRecord r;
    r.start_unix_us = kStartUs;
    r.client = "127.0.0.1:5555";
    r.method = "GET";
    r.scheme = "http";
    r.host = "example.com";
    r.port = 80;
    r.path = "/index.html?q=1";
    r.route = "web";
    r.status = 200;
    r.bytes_in = 0;
    r.bytes_out = 123;
    r.total_us = 1234;
    r.pool_wait_us = 10;
    r.dns_us = 2500;
    r.connect_us = 1000000;
    r.tls_us = 0;
    r.ttfb_us = 1100;
    r.reused = true;
    r.upstream_conn_id = 3;
    r.upstream_conn_requests = 5;
    r.retries = 1;
    return r;
}

// A scratch directory removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "pooled-access-log-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::vector<std::string> readLines(const fs::path& file) {
    std::vector<std::string> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

AccessLogConfig fileConfig(const fs::path& file, std::string format = "json") {
    AccessLogConfig config;
    config.enabled = true;
    config.format = std::move(format);
    config.output = file.string();
    return config;
}

std::string jsonPath(const std::string& path) {
    RequestRecord r;
    r.path = path;
    const std::string line = AccessLog::formatJson(r);
    const auto begin = line.find("\"path\":\"") + 8;
    const auto end = line.find("\",\"route\":");
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    return line.substr(begin, end - begin);
}

} // namespace

TEST_CASE("a full record formats as one exact JSON line", "[observe]") {
    const std::string expected =
        R"({"time":"2026-11-30T01:02:03.123456Z","client":"127.0.0.1:5555","method":"GET",)"
        R"("scheme":"http","host":"example.com","port":80,"path":"/index.html?q=1",)"
        R"("route":"web","status":200,"bytes_in":0,"bytes_out":123,"total_ms":1.234,)"
        R"("pool_wait_ms":0.010,"dns_ms":2.500,"connect_ms":1000.000,"tls_ms":0.000,"tls_resumed":false,)"
        R"("ttfb_ms":1.100,"reused":true,"upstream_conn":3,"upstream_conn_requests":5,)"
        R"("retries":1,"error":"","detail":""})";
    CHECK(AccessLog::formatJson(fullRecord()) == expected);
}

TEST_CASE("an error record carries its token and detail in JSON", "[observe]") {
    RequestRecord r = fullRecord();
    r.status = 502;
    r.reused = false;
    r.error = "connection_refused";
    r.detail = "connect to 10.0.0.1:80: ECONNREFUSED";
    const std::string line = AccessLog::formatJson(r);
    CHECK(line.find(R"("status":502,)") != std::string::npos);
    CHECK(line.find(R"("reused":false,)") != std::string::npos);
    const std::string tail =
        R"("error":"connection_refused","detail":"connect to 10.0.0.1:80: ECONNREFUSED"})";
    CHECK(line.substr(line.size() - tail.size()) == tail);
}

TEST_CASE("a duration that did not happen is null in JSON", "[observe]") {
    RequestRecord r = fullRecord();
    r.dns_us = -1;
    r.connect_us = -1;
    r.tls_us = -1;
    r.pool_wait_us = -1;
    r.ttfb_us = -1;
    r.total_us = -1;
    const std::string line = AccessLog::formatJson(r);
    CHECK(line.find(R"("total_ms":null,"pool_wait_ms":null,"dns_ms":null,)"
                    R"("connect_ms":null,"tls_ms":null,"tls_resumed":false,"ttfb_ms":null,"reused":true)") !=
          std::string::npos);
}

TEST_CASE("a default record formats as valid JSON with nulls and empty strings", "[observe]") {
    const std::string expected =
        R"({"time":"1970-01-01T00:00:00.000000Z","client":"","method":"","scheme":"",)"
        R"("host":"","port":0,"path":"","route":"","status":0,"bytes_in":0,"bytes_out":0,)"
        R"("total_ms":null,"pool_wait_ms":null,"dns_ms":null,"connect_ms":null,)"
        R"("tls_ms":null,"tls_resumed":false,"ttfb_ms":null,"reused":false,"upstream_conn":0,)"
        R"("upstream_conn_requests":0,"retries":0,"error":"","detail":""})";
    CHECK(AccessLog::formatJson(RequestRecord{}) == expected);
}

TEST_CASE("the time is RFC 3339 UTC with microseconds", "[observe]") {
    auto timeOf = [](int64_t us) {
        RequestRecord r;
        r.start_unix_us = us;
        return AccessLog::formatJson(r).substr(9, 27);
    };
    CHECK(timeOf(kStartUs) == "2026-11-30T01:02:03.123456Z");
    CHECK(timeOf(0) == "1970-01-01T00:00:00.000000Z");
    CHECK(timeOf(int64_t{1709251199} * 1000000 + 999999) == "2024-02-29T23:59:59.999999Z");
    CHECK(timeOf(int64_t{951868800} * 1000000) == "2000-03-01T00:00:00.000000Z");
    CHECK(timeOf(-1) == "1969-12-31T23:59:59.999999Z");
}

TEST_CASE("quotes, backslashes and control characters in the path are escaped", "[observe]") {
    CHECK(jsonPath("/a\"b") == R"(/a\"b)");
    CHECK(jsonPath("/a\\b") == R"(/a\\b)");
    CHECK(jsonPath("/a\nb\r\t") == R"(/a\u000ab\u000d\u0009)");
    CHECK(jsonPath(std::string("/\x01\x1f\x7f", 4)) == R"(/\u0001\u001f\u007f)");
    CHECK(jsonPath(std::string("/a\0b", 4)) == R"(/a\u0000b)");
}

TEST_CASE("valid UTF-8 passes through and invalid bytes are escaped one by one", "[observe]") {
    // Well-formed: 2-, 3- and 4-byte sequences.
    CHECK(jsonPath("/caf\xc3\xa9") == "/caf\xc3\xa9");
    CHECK(jsonPath("/\xe2\x82\xac") == "/\xe2\x82\xac");
    CHECK(jsonPath("/\xf0\x9f\x98\x80") == "/\xf0\x9f\x98\x80");
    CHECK(jsonPath("/\xf4\x8f\xbf\xbf") == "/\xf4\x8f\xbf\xbf"); // U+10FFFF
    // Ill-formed: lone continuation, overlong, surrogate, above U+10FFFF, truncated, 0xFF.
    CHECK(jsonPath("/\x80") == R"(/\u0080)");
    CHECK(jsonPath("/\xc0\xaf") == R"(/\u00c0\u00af)");
    CHECK(jsonPath("/\xe0\x80\xaf") == R"(/\u00e0\u0080\u00af)");
    CHECK(jsonPath("/\xed\xa0\x80") == R"(/\u00ed\u00a0\u0080)");
    CHECK(jsonPath("/\xf4\x90\x80\x80") == R"(/\u00f4\u0090\u0080\u0080)");
    CHECK(jsonPath("/\xe2\x82") == R"(/\u00e2\u0082)");
    CHECK(jsonPath("/\xe2\x82x") == R"(/\u00e2\u0082x)");
    CHECK(jsonPath("/\xff\xc3\xa9") == "/\\u00ff\xc3\xa9"); // resynchronises on the next char
}

TEST_CASE("the host is escaped like the path", "[observe]") {
    RequestRecord r;
    r.host = "evil\"\n.com";
    CHECK(AccessLog::formatJson(r).find(R"("host":"evil\"\u000a.com")") != std::string::npos);
}

TEST_CASE("the text format is one compact human line", "[observe]") {
    RequestRecord r = fullRecord();
    r.route.clear();
    r.dns_us = -1;
    r.connect_us = -1;
    r.tls_us = -1;
    r.path = "/path";
    r.host = "host";
    r.retries = 0;
    CHECK(AccessLog::formatText(r) ==
          "2026-11-30T01:02:03.123456Z 127.0.0.1:5555 \"GET http://host:80/path\" 200 in=0 "
          "out=123 total=1.234ms wait=0.010ms dns=- connect=- tls=- ttfb=1.100ms reused "
          "conn=3/5 retries=0");
}

TEST_CASE("the text format appends error and detail when the request failed", "[observe]") {
    RequestRecord r = fullRecord();
    r.status = 504;
    r.reused = false;
    r.error = "connection_timeout";
    r.detail = "no \"answer\"\nin 5s";
    const std::string line = AccessLog::formatText(r);
    CHECK(line.find(" 504 ") != std::string::npos);
    CHECK(line.find(" new conn=3/5") != std::string::npos);
    const std::string tail =
        R"( retries=1 route=web error=connection_timeout detail="no \"answer\"\u000ain 5s")";
    REQUIRE(line.size() > tail.size());
    CHECK(line.substr(line.size() - tail.size()) == tail);
    CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("the text format shows a tunnel as host:port", "[observe]") {
    RequestRecord r;
    r.method = "CONNECT";
    r.scheme = "tunnel";
    r.host = "::1";
    r.port = 443;
    const std::string line = AccessLog::formatText(r);
    CHECK(line.find(" - \"CONNECT [::1]:443\" - in=0") != std::string::npos);
}

TEST_CASE("writing to a file produces one line per record after flush()", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    AccessLog log(fileConfig(file));
    REQUIRE(log.enabled());
    constexpr int kRecords = 2000;
    for (int i = 0; i < kRecords; ++i) {
        RequestRecord r = fullRecord();
        r.upstream_conn_id = static_cast<uint64_t>(i);
        log.write(r);
    }
    log.flush();
    const auto lines = readLines(file);
    REQUIRE(lines.size() == kRecords);
    for (int i = 0; i < kRecords; ++i) {
        RequestRecord r = fullRecord();
        r.upstream_conn_id = static_cast<uint64_t>(i);
        REQUIRE(lines[static_cast<size_t>(i)] == AccessLog::formatJson(r));
    }
}

TEST_CASE("the text format is written when configured", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    AccessLog log(fileConfig(file, "text"));
    log.write(fullRecord());
    log.flush();
    const auto lines = readLines(file);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == AccessLog::formatText(fullRecord()));
}

TEST_CASE("a record reaches the file within a second of its loop turn ending", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    AccessLog log(fileConfig(file));
    log.write(fullRecord());
    log.endOfTurn(); // what the worker's check phase does after every poll
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    size_t seen = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        seen = readLines(file).size();
        if (seen == 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(seen == 1);
}

TEST_CASE("the destructor flushes and a reopened file is appended to", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    for (int round = 0; round < 2; ++round) {
        AccessLog log(fileConfig(file));
        for (int i = 0; i < 100; ++i) log.write(fullRecord());
    }
    CHECK(readLines(file).size() == 200);
}

TEST_CASE("lines written to a LineWriter from several threads all arrive whole", "[observe]") {
    // One writer per worker loop may share an output with another worker's.
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    constexpr int kThreads = 4;
    constexpr int kPerThread = 2000;
    const std::string line = AccessLog::formatJson(fullRecord());
    {
        LineWriter writer(file.string());
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < kPerThread; ++i) writer.write(line + "\n");
            });
        }
        for (auto& thread : threads) thread.join();
        writer.flush();
        const auto lines = readLines(file);
        REQUIRE(lines.size() == kThreads * kPerThread);
        for (const auto& l : lines) REQUIRE(l == line);
    }
}

namespace {
// write(2)-family calls this process has made (/proc/self/io), all threads.
long writeSyscalls() {
    std::ifstream io("/proc/self/io");
    std::string key;
    long value = 0;
    while (io >> key >> value)
        if (key == "syscw:") return value;
    return -1;
}
} // namespace

TEST_CASE("loop turns in quick succession share one write(2) of the log", "[observe]") {
    // Under load a turn ends every few dozen requests; a wake-up and a write per turn
    // once cost as much CPU as proxying the requests. The writer lingers instead.
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    const std::string line = AccessLog::formatJson(fullRecord()) + "\n";
    constexpr int kTurns = 50;
    LineWriter writer(file.string());
    const long before = writeSyscalls();
    REQUIRE(before >= 0);
    for (int i = 0; i < kTurns; ++i) {
        writer.write(line);
        std::this_thread::sleep_for(std::chrono::microseconds(100)); // the next turn's work
    }
    writer.flush();
    const long writes = writeSyscalls() - before;
    CHECK(readLines(file).size() == kTurns);
    // >= 5 ms of turns: a writer that wrote each turn at once made ~50 writes.
    CHECK(writes >= 1);
    CHECK(writes <= 10);
}

TEST_CASE("a turn with more than a batch of records hands them over before it ends", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    AccessLog log(fileConfig(file));
    for (int i = 0; i < 1000; ++i) log.write(fullRecord()); // ~300 KB, no endOfTurn()
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    size_t seen = 0;
    while (std::chrono::steady_clock::now() < deadline && seen == 0) {
        seen = readLines(file).size();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(seen > 0);
    CHECK(seen < 1000);
}

TEST_CASE("a disabled log writes nothing", "[observe]") {
    TempDir dir;
    const fs::path file = dir.path / "access.log";
    AccessLogConfig config = fileConfig(file);
    config.enabled = false;
    AccessLog log(config);
    CHECK_FALSE(log.enabled());
    log.write(fullRecord());
    log.flush();
    CHECK_FALSE(fs::exists(file));
}

TEST_CASE("an unopenable output path throws std::runtime_error", "[observe]") {
    TempDir dir;
    // A directory cannot be opened for append, and nothing can be created under a regular file;
    // both hold even when the tests run as root.
    CHECK_THROWS_AS(AccessLog(fileConfig(dir.path)), std::runtime_error);
    const fs::path regular = dir.path / "regular";
    std::ofstream(regular) << "x";
    CHECK_THROWS_AS(AccessLog(fileConfig(regular / "access.log")), std::runtime_error);
}

TEST_CASE("stdout and stderr outputs open and close cleanly", "[observe]") {
    for (const char* output : {"stdout", "stderr"}) {
        AccessLogConfig config;
        config.output = output;
        AccessLog log(config);
        CHECK(log.enabled());
        log.flush(); // nothing written: must return at once, not wait for a record
    }
}

TEST_CASE("an unknown format is rejected", "[observe]") {
    TempDir dir;
    CHECK_THROWS_AS(AccessLog(fileConfig(dir.path / "a.log", "xml")), std::runtime_error);
}

// Hidden: run by hand with `unit_tests "[.bench]"` (use a Release build for real numbers).
TEST_CASE("access log throughput", "[.bench]") {
    using Clock = std::chrono::steady_clock;
    constexpr int kRecords = 1000000;
    RequestRecord r = fullRecord();
    r.path = "/some/longer/path/with/segments?and=query&string=values";

    size_t total_bytes = 0;
    auto start = Clock::now();
    for (int i = 0; i < kRecords; ++i) {
        r.upstream_conn_id = static_cast<uint64_t>(i);
        total_bytes += AccessLog::formatJson(r).size();
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("formatJson: %.0f records/s (%zu bytes)\n", kRecords / secs, total_bytes);

    start = Clock::now();
    for (int i = 0; i < kRecords; ++i) {
        r.upstream_conn_id = static_cast<uint64_t>(i);
        total_bytes += AccessLog::formatText(r).size();
    }
    secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("formatText: %.0f records/s\n", kRecords / secs);

    TempDir dir;
    const fs::path file = dir.path / "access.log";
    {
        AccessLog log(fileConfig(file));
        start = Clock::now();
        for (int i = 0; i < kRecords; ++i) log.write(r);
        const double submit = std::chrono::duration<double>(Clock::now() - start).count();
        log.flush();
        secs = std::chrono::duration<double>(Clock::now() - start).count();
        std::printf("write() to a file: %.0f records/s on the writing thread, %.0f records/s "
                    "until flushed\n",
                    kRecords / submit, kRecords / secs);
    }
    CHECK(readLines(file).size() == kRecords);
}

} // namespace pooled
