// Specification of the YAML configuration: schema, defaults, and how each mistake is reported.
#include "config/config_loader.h"
#include "config_test_support.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

using namespace pooled;
using pooled::test::errorOf;
using pooled::test::load;
using namespace std::chrono_literals;

namespace {

// The repository root, found from this file's own path (tests/unit/config/...).
std::string repoFile(const std::string& relative) {
    const auto root = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "..";
    return (root / relative).lexically_normal().string();
}

// Every field of `c` equals the defaults written in config.h.
void requireStructDefaults(const Config& c) {
    const Config d;
    REQUIRE(c.listeners.size() == d.listeners.size());
    for (size_t i = 0; i < d.listeners.size(); ++i) {
        CHECK(c.listeners[i].address == d.listeners[i].address);
        CHECK(c.listeners[i].port == d.listeners[i].port);
        CHECK(c.listeners[i].route == d.listeners[i].route);
    }
    CHECK(c.routes.empty());

    CHECK(c.pool.max_connections_per_host == d.pool.max_connections_per_host);
    CHECK(c.pool.max_idle_per_host == d.pool.max_idle_per_host);
    CHECK(c.pool.max_connections_total == d.pool.max_connections_total);
    CHECK(c.pool.max_pending == d.pool.max_pending);
    CHECK(c.pool.max_connecting_per_host == d.pool.max_connecting_per_host);
    CHECK(c.pool.queue_timeout == d.pool.queue_timeout);
    CHECK(c.pool.idle_timeout == d.pool.idle_timeout);
    CHECK(c.pool.max_requests_per_connection == d.pool.max_requests_per_connection);
    CHECK(c.pool.max_connection_lifetime == d.pool.max_connection_lifetime);
    CHECK(c.pool.keepalive_margin == d.pool.keepalive_margin);
    CHECK(c.pool.fresh_idle_threshold == d.pool.fresh_idle_threshold);

    CHECK(c.timeouts.connect == d.timeouts.connect);
    CHECK(c.timeouts.request_header == d.timeouts.request_header);
    CHECK(c.timeouts.upstream_first_byte == d.timeouts.upstream_first_byte);
    CHECK(c.timeouts.upstream_read == d.timeouts.upstream_read);
    CHECK(c.timeouts.client_idle == d.timeouts.client_idle);
    CHECK(c.timeouts.tunnel_idle == d.timeouts.tunnel_idle);
    CHECK(c.timeouts.drain == d.timeouts.drain);

    CHECK(c.limits.max_request_header_size == d.limits.max_request_header_size);
    CHECK(c.limits.max_header_count == d.limits.max_header_count);
    CHECK(c.limits.max_uri_length == d.limits.max_uri_length);
    CHECK(c.limits.max_request_body == d.limits.max_request_body);
    CHECK(c.limits.max_response_header_size == d.limits.max_response_header_size);
    CHECK(c.limits.max_client_connections == d.limits.max_client_connections);

    CHECK(c.buffers.read_buffer == d.buffers.read_buffer);
    CHECK(c.buffers.high_water == d.buffers.high_water);
    CHECK(c.buffers.low_water == d.buffers.low_water);

    CHECK(c.dns.max_ttl == d.dns.max_ttl);
    CHECK(c.dns.min_ttl == d.dns.min_ttl);
    CHECK(c.dns.negative_ttl == d.dns.negative_ttl);
    CHECK(c.dns.timeout == d.dns.timeout);
    CHECK(c.dns.tries == d.dns.tries);

    CHECK(c.access_log.enabled == d.access_log.enabled);
    CHECK(c.access_log.format == d.access_log.format);
    CHECK(c.access_log.output == d.access_log.output);

    CHECK(c.connect.allowed_ports == d.connect.allowed_ports);
    CHECK(c.log_level == d.log_level);
    CHECK(c.via_name == d.via_name);
}

} // namespace

// ---- defaults and shipped files ------------------------------------------------------------

TEST_CASE("an empty document gives the struct defaults", "[config]") {
    requireStructDefaults(load(""));
    requireStructDefaults(load("# nothing but a comment\n"));
    requireStructDefaults(load("---\n"));
}

TEST_CASE("keys the YAML does not mention keep their struct defaults", "[config]") {
    const Config c = load("pool:\n  idle_timeout: 45s\n");
    CHECK(c.pool.idle_timeout == 45s);
    Config expected = c;
    expected.pool.idle_timeout = PoolConfig{}.idle_timeout;
    requireStructDefaults(expected);
}

TEST_CASE("a section whose keys are all commented out keeps the defaults", "[config]") {
    requireStructDefaults(load("pool:\n  # idle_timeout: 45s\ntimeouts:\nroutes:\n"));
}

TEST_CASE("the embedded default config is the struct defaults", "[config]") {
    requireStructDefaults(defaultConfig());
    CHECK(std::string(defaultConfigYaml()).find("127.0.0.1:3128") != std::string::npos);
}

TEST_CASE("config/default.yaml loads from disk", "[config]") {
    requireStructDefaults(loadConfigFile(repoFile("config/default.yaml")));
}

TEST_CASE("config/pooled.yaml loads and states exactly the struct defaults", "[config]") {
    requireStructDefaults(loadConfigFile(repoFile("config/pooled.yaml")));
}

TEST_CASE("the sidecar example commented in config/pooled.yaml loads when uncommented",
          "[config]") {
    std::ifstream in(repoFile("config/pooled.yaml"));
    REQUIRE(in);
    // The example is the commented block from "# listeners:" to the next blank line.
    std::string line, example;
    while (std::getline(in, line) && line != "# listeners:") {
    }
    REQUIRE(line == "# listeners:");
    do
        example += line.substr(2) + "\n";
    while (std::getline(in, line) && line.rfind("# ", 0) == 0);
    INFO(example);
    const Config c = load(example);
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[1].port == 8080);
    CHECK(c.listeners[1].route == "api");
    REQUIRE(c.routes.size() == 1);
    CHECK(c.routes[0].hosts == std::vector<std::string>{"api.local"});
    CHECK(c.routes[0].upstream.host == "api.internal");
}

// ---- schema --------------------------------------------------------------------------------

TEST_CASE("every section and key is read into the struct", "[config]") {
    const Config c = load(R"(
access:
  allow_clients: [10.0.0.0/8]
listeners:
  - address: 0.0.0.0:3129
  - address: "[::1]:0"
    route: api
routes:
  - name: api
    hosts: [API.Local, "*.api.example.com"]
    upstream: https://api.internal:8443
pool:
  max_connections_per_host: 10
  max_idle_per_host: 5
  max_connections_total: 100
  max_pending: 7
  max_connecting_per_host: 3
  queue_timeout: 1s
  idle_timeout: 2s
  max_requests_per_connection: 0
  max_connection_lifetime: 0
  keepalive_margin: 250ms
  fresh_idle_threshold: 3s
timeouts:
  connect: 1s
  request_header: 2s
  upstream_first_byte: 3s
  upstream_read: 4s
  client_idle: 5s
  tunnel_idle: 1h
  drain: 7s
limits:
  max_request_header_size: 16KiB
  max_header_count: 50
  max_uri_length: 2KB
  max_request_body: 10MiB
  max_response_header_size: 1MiB
  max_client_connections: 500
buffers:
  read_buffer: 16KiB
  high_water: 1MiB
  low_water: 512
dns:
  max_ttl: 1m
  min_ttl: 0
  negative_ttl: 500ms
  timeout: 2s
  tries: 4
access_log:
  enabled: false
  format: text
  output: /var/log/pooled/access.log
connect:
  allowed_ports: [443, 8443]
log_level: debug
via_name: edge-1
)");
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].address == "0.0.0.0");
    CHECK(c.listeners[0].port == 3129);
    CHECK(c.listeners[0].route.empty());
    CHECK(c.listeners[1].address == "::1");
    CHECK(c.listeners[1].port == 0);
    CHECK(c.listeners[1].route == "api");

    REQUIRE(c.routes.size() == 1);
    CHECK(c.routes[0].name == "api");
    CHECK(c.routes[0].hosts == std::vector<std::string>{"api.local", "*.api.example.com"});
    CHECK(c.routes[0].upstream_url == "https://api.internal:8443");
    CHECK(c.routes[0].upstream.scheme == "https");
    CHECK(c.routes[0].upstream.host == "api.internal");
    CHECK(c.routes[0].upstream.port == 8443);

    CHECK(c.pool.max_connections_per_host == 10);
    CHECK(c.pool.max_idle_per_host == 5);
    CHECK(c.pool.max_connections_total == 100);
    CHECK(c.pool.max_pending == 7);
    CHECK(c.pool.max_connecting_per_host == 3);
    CHECK(c.pool.queue_timeout == 1s);
    CHECK(c.pool.idle_timeout == 2s);
    CHECK(c.pool.max_requests_per_connection == 0);
    CHECK(c.pool.max_connection_lifetime == 0ms);
    CHECK(c.pool.keepalive_margin == 250ms);
    CHECK(c.pool.fresh_idle_threshold == 3s);

    CHECK(c.timeouts.connect == 1s);
    CHECK(c.timeouts.request_header == 2s);
    CHECK(c.timeouts.upstream_first_byte == 3s);
    CHECK(c.timeouts.upstream_read == 4s);
    CHECK(c.timeouts.client_idle == 5s);
    CHECK(c.timeouts.tunnel_idle == 1h);
    CHECK(c.timeouts.drain == 7s);

    CHECK(c.limits.max_request_header_size == 16 * 1024);
    CHECK(c.limits.max_header_count == 50);
    CHECK(c.limits.max_uri_length == 2000);
    CHECK(c.limits.max_request_body == 10 * 1024 * 1024);
    CHECK(c.limits.max_response_header_size == 1024 * 1024);
    CHECK(c.limits.max_client_connections == 500);

    CHECK(c.buffers.read_buffer == 16 * 1024);
    CHECK(c.buffers.high_water == 1024 * 1024);
    CHECK(c.buffers.low_water == 512);

    CHECK(c.dns.max_ttl == 1min);
    CHECK(c.dns.min_ttl == 0ms);
    CHECK(c.dns.negative_ttl == 500ms);
    CHECK(c.dns.timeout == 2s);
    CHECK(c.dns.tries == 4);

    CHECK_FALSE(c.access_log.enabled);
    CHECK(c.access_log.format == "text");
    CHECK(c.access_log.output == "/var/log/pooled/access.log");
    CHECK(c.connect.allowed_ports == std::vector<uint16_t>{443, 8443});
    CHECK(c.log_level == "debug");
    CHECK(c.via_name == "edge-1");
}

TEST_CASE("a sidecar listener is bound to a route by name", "[config]") {
    const Config c = load(R"(
listeners:
  - {address: 127.0.0.1:8080, route: api}
routes:
  - {name: api, hosts: [api.local], upstream: http://api.internal:8080}
)");
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].port == 8080);
    CHECK(c.listeners[0].route == "api");
    CHECK(c.routes[0].upstream.port == 8080);
}

TEST_CASE("written listeners replace the default listener", "[config]") {
    const Config c = load("listeners:\n  - address: 127.0.0.1:9000\n");
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].port == 9000);
}

TEST_CASE("a route needs no hosts when a listener is bound to it", "[config]") {
    const Config c = load("listeners: [{address: '127.0.0.1:0', route: r}]\n"
                          "routes: [{name: r, upstream: 'http://[::1]:81'}]\n");
    CHECK(c.routes[0].hosts.empty());
    CHECK(c.routes[0].upstream.host == "::1");
}

TEST_CASE("an empty allowed_ports list disables CONNECT", "[config]") {
    CHECK(load("connect:\n  allowed_ports: []\n").connect.allowed_ports.empty());
}

TEST_CASE("booleans accept the YAML spellings of true and false", "[config]") {
    CHECK_FALSE(load("access_log: {enabled: false}").access_log.enabled);
    CHECK_FALSE(load("access_log: {enabled: no}").access_log.enabled);
    CHECK(load("access_log: {enabled: True}").access_log.enabled);
}

TEST_CASE("quoted numbers and durations read like plain ones", "[config]") {
    const Config c = load("pool: {max_pending: '12', idle_timeout: \"0\"}\n");
    CHECK(c.pool.max_pending == 12);
    CHECK(c.pool.idle_timeout == 0ms);
}

TEST_CASE("YAML anchors and aliases may share values", "[config]") {
    const Config c = load("timeouts:\n  upstream_read: &long 2m\n  client_idle: *long\n");
    CHECK(c.timeouts.client_idle == 2min);
}

// ---- error reporting -----------------------------------------------------------------------

TEST_CASE("an error reads FILE:LINE:COLUMN: KEY: MESSAGE", "[config]") {
    const ConfigError e = errorOf("pool:\n  idle_timeout: soon\n");
    CHECK(e.source() == "test.yaml");
    CHECK(e.key() == "pool.idle_timeout");
    CHECK(e.line() == 2);
    CHECK(e.column() == 17);
    CHECK(std::string(e.what()) == "test.yaml:2:17: pool.idle_timeout: " + e.message());
    CHECK_THAT(e.message(), Catch::Contains("bad duration 'soon'"));
}

TEST_CASE("an unknown key is an error naming the key, line and column", "[config]") {
    const ConfigError e = errorOf("log_level: info\nlisten:\n  - address: 127.0.0.1:1\n");
    CHECK(e.key() == "listen");
    CHECK(e.line() == 2);
    CHECK(e.column() == 1);
    CHECK(e.message() == "unknown key 'listen' (did you mean 'listeners'?)");
}

TEST_CASE("an unknown key in a section suggests the closest known key", "[config]") {
    const ConfigError e = errorOf("pool:\n  max_conections_per_host: 8\n");
    CHECK(e.key() == "pool.max_conections_per_host");
    CHECK(e.line() == 2);
    CHECK(e.column() == 3);
    CHECK(e.message() ==
          "unknown key 'max_conections_per_host' (did you mean 'max_connections_per_host'?)");
}

TEST_CASE("an unknown key far from every known key gets no suggestion", "[config]") {
    const ConfigError e = errorOf("timeouts:\n  banana: 1s\n");
    CHECK(e.key() == "timeouts.banana");
    CHECK(e.message() == "unknown key 'banana'");
}

TEST_CASE("an unknown key inside a list element names its index", "[config]") {
    const ConfigError e = errorOf("routes:\n  - name: a\n    upstream: http://a\n"
                                  "  - name: b\n    upstrem: http://b\n");
    CHECK(e.key() == "routes[1].upstrem");
    CHECK(e.line() == 5);
    CHECK(e.column() == 5);
    CHECK_THAT(e.message(), Catch::Contains("did you mean 'upstream'?"));
}

TEST_CASE("a key written twice in one map is an error", "[config]") {
    const ConfigError e = errorOf("dns:\n  tries: 1\n  tries: 2\n");
    CHECK(e.key() == "dns.tries");
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("duplicate key"));
}

TEST_CASE("a section that is not a map is an error", "[config]") {
    const ConfigError e = errorOf("pool: 5\n");
    CHECK(e.key() == "pool");
    CHECK(e.line() == 1);
    CHECK(e.column() == 7);
    CHECK_THAT(e.message(), Catch::Contains("expected a map"));
    CHECK_THAT(errorOf("- a\n- b\n").message(), Catch::Contains("expected a map"));
    CHECK(errorOf("just text\n").key().empty());
}

TEST_CASE("a list key holding a map is an error", "[config]") {
    const ConfigError e = errorOf("routes:\n  name: api\n");
    CHECK(e.key() == "routes");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("expected a list"));
    CHECK(errorOf("routes: [{name: a, hosts: a.local, upstream: 'http://a'}]").key() ==
          "routes[0].hosts");
}

TEST_CASE("a value key holding a list or map is an error", "[config]") {
    const ConfigError e = errorOf("log_level: [info]\n");
    CHECK(e.key() == "log_level");
    CHECK_THAT(e.message(), Catch::Contains("expected a single value, got a list"));
    CHECK_THAT(errorOf("via_name: {a: 1}\n").message(), Catch::Contains("got a map"));
}

TEST_CASE("a key with no value is an error pointing at the key", "[config]") {
    const ConfigError e = errorOf("pool:\n  idle_timeout:\n  max_pending: 1\n");
    CHECK(e.key() == "pool.idle_timeout");
    CHECK(e.line() == 2);
    CHECK(e.column() == 3);
    CHECK(e.message() == "a value is required");
}

TEST_CASE("bad durations are errors at the value", "[config]") {
    const ConfigError e = errorOf("timeouts:\n  connect: 5\n");
    CHECK(e.key() == "timeouts.connect");
    CHECK(e.line() == 2);
    CHECK(e.column() == 12);
    CHECK_THAT(e.message(), Catch::Contains("needs a unit"));
    CHECK(errorOf("dns: {timeout: 1.5s}").key() == "dns.timeout");
}

TEST_CASE("bad sizes are errors at the value", "[config]") {
    const ConfigError e = errorOf("buffers:\n  read_buffer: 64kb\n");
    CHECK(e.key() == "buffers.read_buffer");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("bad size unit 'kb'"));
}

TEST_CASE("integers must be whole, non-negative and fit their type", "[config]") {
    CHECK_THAT(errorOf("pool: {max_pending: -1}").message(),
               Catch::Contains("non-negative integer"));
    CHECK_THAT(errorOf("pool: {max_pending: 1.5}").message(),
               Catch::Contains("expected a whole number"));
    CHECK_THAT(errorOf("pool: {max_pending: many}").message(),
               Catch::Contains("expected a whole number"));
    const ConfigError big = errorOf("pool: {max_pending: 4294967296}");
    CHECK(big.key() == "pool.max_pending");
    CHECK_THAT(big.message(), Catch::Contains("out of range (0..4294967295)"));
    CHECK(load("pool: {max_pending: 4294967295}").pool.max_pending == 4294967295U);
    CHECK_THAT(errorOf("pool: {max_pending: 99999999999999999999999}").message(),
               Catch::Contains("out of range"));
}

TEST_CASE("counts that cannot be zero must be at least 1", "[config]") {
    CHECK(errorOf("pool: {max_connections_per_host: 0}").key() ==
          "pool.max_connections_per_host");
    CHECK(errorOf("dns: {tries: 0}").key() == "dns.tries");
    CHECK(errorOf("buffers: {read_buffer: 0}").key() == "buffers.read_buffer");
}

TEST_CASE("a bad boolean is an error", "[config]") {
    const ConfigError e = errorOf("access_log:\n  enabled: maybe\n");
    CHECK(e.key() == "access_log.enabled");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("expected true or false"));
}

TEST_CASE("a bad listener address is an error", "[config]") {
    const ConfigError e = errorOf("listeners:\n  - address: localhost:3128\n");
    CHECK(e.key() == "listeners[0].address");
    CHECK(e.line() == 2);
    CHECK(e.column() == 14);
    CHECK(errorOf("listeners: [{address: '127.0.0.1'}]").key() == "listeners[0].address");
}

TEST_CASE("an unquoted IPv6 listener address gets a hint to quote it", "[config]") {
    // YAML reads [::1] as a list; in a flow map it is a syntax error instead.
    const ConfigError e = errorOf("listeners:\n  - address: [::1]\n");
    CHECK(e.key() == "listeners[0].address");
    CHECK_THAT(e.message(), Catch::Contains("quote IPv6"));
}

TEST_CASE("listener ports out of range are errors", "[config]") {
    const ConfigError e = errorOf("listeners:\n  - address: 127.0.0.1:70000\n");
    CHECK(e.key() == "listeners[0].address");
    CHECK_THAT(e.message(), Catch::Contains("out of range"));
}

TEST_CASE("a listener without an address is an error", "[config]") {
    const ConfigError e = errorOf("listeners:\n  - route: api\n");
    CHECK(e.key() == "listeners[0].address");
    CHECK(e.line() == 2);
}

TEST_CASE("two listeners on one address are an error", "[config]") {
    const ConfigError e =
        errorOf("listeners:\n  - address: 127.0.0.1:3128\n  - address: 127.0.0.1:3128\n");
    CHECK(e.key() == "listeners[1].address");
    CHECK(e.line() == 3);
    CHECK(load("listeners: [{address: '127.0.0.1:0'}, {address: '127.0.0.1:0'}]")
              .listeners.size() == 2);
}

TEST_CASE("an empty listeners list is an error", "[config]") {
    const ConfigError e = errorOf("log_level: info\nlisteners: []\n");
    CHECK(e.key() == "listeners");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("at least one listener"));
    CHECK(errorOf("listeners:\n").key() == "listeners");
}

TEST_CASE("duplicate route names are an error at the second one", "[config]") {
    const ConfigError e = errorOf("routes:\n  - {name: api, upstream: 'http://a'}\n"
                                  "  - {name: api, upstream: 'http://b'}\n");
    CHECK(e.key() == "routes[1].name");
    CHECK(e.line() == 3);
    CHECK(e.column() == 12);
    CHECK_THAT(e.message(), Catch::Contains("duplicate route name 'api'"));
}

TEST_CASE("two routes claiming one host pattern are an error", "[config]") {
    const ConfigError e =
        errorOf("routes:\n  - {name: a, hosts: [x.local], upstream: 'http://a'}\n"
                "  - {name: b, hosts: [y.local, X.Local], upstream: 'http://b'}\n");
    CHECK(e.key() == "routes[1].hosts[1]");
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("already used by route 'a'"));
}

TEST_CASE("a malformed host pattern is an error", "[config]") {
    CHECK(errorOf("routes: [{name: a, hosts: ['a b'], upstream: 'http://a'}]").key() ==
          "routes[0].hosts[0]");
    CHECK(errorOf("routes: [{name: a, hosts: ['x.*.com'], upstream: 'http://a'}]").key() ==
          "routes[0].hosts[0]");
    CHECK(errorOf("routes: [{name: a, hosts: [''], upstream: 'http://a'}]").key() ==
          "routes[0].hosts[0]");
}

TEST_CASE("a listener route naming no route is an error", "[config]") {
    const ConfigError e = errorOf("listeners:\n  - address: 127.0.0.1:8080\n    route: apx\n"
                                  "routes:\n  - {name: api, upstream: 'http://a'}\n");
    CHECK(e.key() == "listeners[0].route");
    CHECK(e.line() == 3);
    CHECK(e.column() == 12);
    CHECK(e.message() == "no route named 'apx'");
}

TEST_CASE("a route without an upstream is an error", "[config]") {
    const ConfigError e = errorOf("routes:\n  - name: api\n    hosts: [api.local]\n");
    CHECK(e.key() == "routes[0].upstream");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("route 'api' needs an upstream"));
}

TEST_CASE("a route without a name is an error", "[config]") {
    CHECK(errorOf("routes: [{upstream: 'http://a'}]").key() == "routes[0].name");
    CHECK(errorOf("routes: [{name: '', upstream: 'http://a'}]").key() == "routes[0].name");
}

TEST_CASE("a route upstream with an unsupported scheme is an error", "[config]") {
    const ConfigError e = errorOf("routes:\n  - name: api\n    upstream: ftp://api.internal\n");
    CHECK(e.key() == "routes[0].upstream");
    CHECK(e.line() == 3);
    CHECK(e.column() == 15);
    CHECK_THAT(e.message(), Catch::Contains("unsupported scheme 'ftp'"));
}

TEST_CASE("low_water above high_water is an error when both are written", "[config]") {
    const ConfigError both = errorOf("buffers:\n  high_water: 64KiB\n  low_water: 128KiB\n");
    CHECK(both.key() == "buffers.low_water");
    CHECK(both.line() == 3);
    CHECK_THAT(both.message(), Catch::Contains("must not exceed buffers.high_water"));
    // Only high_water written: the unwritten low_water follows it down to half.
    CHECK(load("buffers:\n  high_water: 64KiB\n").buffers.low_water == 32768);
    CHECK(load("buffers: {high_water: 64KiB, low_water: 64KiB}").buffers.low_water == 65536);
}

TEST_CASE("unwritten pool limits follow an explicit lower max_connections_per_host",
          "[config]") {
    const Config c = load("pool:\n  max_connections_per_host: 4\n");
    CHECK(c.pool.max_idle_per_host == 4);
    CHECK(c.pool.max_connecting_per_host == 4);
}

TEST_CASE("max_idle_per_host above max_connections_per_host is an error", "[config]") {
    const ConfigError e = errorOf("pool:\n  max_idle_per_host: 100\n");
    CHECK(e.key() == "pool.max_idle_per_host");
    CHECK(e.line() == 2);
    CHECK_THAT(e.message(), Catch::Contains("must not exceed pool.max_connections_per_host"));
}

TEST_CASE("max_connections_per_host above max_connections_total is an error", "[config]") {
    const ConfigError e =
        errorOf("pool:\n  max_connections_total: 10\n  max_connections_per_host: 20\n"
                "  max_idle_per_host: 5\n");
    CHECK(e.key() == "pool.max_connections_per_host");
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("must not exceed pool.max_connections_total"));
}

TEST_CASE("dns.min_ttl above dns.max_ttl is an error", "[config]") {
    CHECK(errorOf("dns: {min_ttl: 10m}").key() == "dns.min_ttl");
}

TEST_CASE("log_level must be a known level", "[config]") {
    const ConfigError e = errorOf("log_level: verbose\n");
    CHECK(e.key() == "log_level");
    CHECK(e.line() == 1);
    CHECK(e.column() == 12);
    CHECK_THAT(e.message(), Catch::Contains("trace, debug, info, warn, error, critical, off"));
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
        CHECK(load(std::string("log_level: ") + level).log_level == level);
}

TEST_CASE("access_log.format must be json or text", "[config]") {
    const ConfigError e = errorOf("access_log:\n  format: xml\n");
    CHECK(e.key() == "access_log.format");
    CHECK_THAT(e.message(), Catch::Contains("json, text"));
}

TEST_CASE("via_name must be an HTTP token", "[config]") {
    CHECK(errorOf("via_name: 'a b'").key() == "via_name");
    CHECK(errorOf("via_name: \"x\\r\\nEvil: 1\"").key() == "via_name");
    CHECK(errorOf("via_name: ''").key() == "via_name");
}

TEST_CASE("allowed_ports entries must be 1..65535", "[config]") {
    const ConfigError zero = errorOf("connect:\n  allowed_ports: [443, 0]\n");
    CHECK(zero.key() == "connect.allowed_ports[1]");
    CHECK(zero.line() == 2);
    CHECK(zero.column() == 24);
    CHECK_THAT(zero.message(), Catch::Contains("out of range (1..65535)"));
    CHECK(errorOf("connect: {allowed_ports: [65536]}").key() == "connect.allowed_ports[0]");
    CHECK(errorOf("connect: {allowed_ports: [https]}").key() == "connect.allowed_ports[0]");
}

TEST_CASE("a YAML syntax error reports its line and column", "[config]") {
    const ConfigError e = errorOf("pool:\n  idle_timeout: [1s\n");
    CHECK(e.key().empty());
    CHECK(e.line() >= 2);
    CHECK(e.column() >= 1);
    CHECK_THAT(e.message(), Catch::StartsWith("YAML syntax error"));
    CHECK_THAT(std::string(e.what()), Catch::StartsWith("test.yaml:" + std::to_string(e.line())));
}

TEST_CASE("more than one YAML document is an error", "[config]") {
    const ConfigError e = errorOf("log_level: info\n---\nlog_level: debug\n");
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("only one YAML document"));
}

TEST_CASE("a missing config file is an error with line 0", "[config]") {
    const std::string path = "/nonexistent/pooled.yaml";
    try {
        loadConfigFile(path);
        FAIL("expected a ConfigError");
    } catch (const ConfigError& e) {
        CHECK(e.source() == path);
        CHECK(e.line() == 0);
        CHECK(e.column() == 0);
        CHECK(std::string(e.what()) == path + ": " + e.message());
        CHECK_THAT(e.message(), Catch::Contains("No such file"));
    }
}

TEST_CASE("a directory given as the config file is an error", "[config]") {
    CHECK_THROWS_AS(loadConfigFile(repoFile("config")), ConfigError);
}

TEST_CASE("errors in a file name the file", "[config]") {
    const std::string path =
        (std::filesystem::temp_directory_path() / "pooled_config_loader_test.yaml").string();
    {
        std::ofstream out(path);
        out << "pool:\n  idle_timeout: 3 s\n";
    }
    try {
        loadConfigFile(path);
        FAIL("expected a ConfigError");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).rfind(path + ":2:17: pool.idle_timeout: ", 0) == 0);
    }
    std::filesystem::remove(path);
}
