// YAML -> Config. Walks the document once against a schema of known keys, so that every key
// is either understood or reported (with the closest known key as a hint), then checks the
// rules that tie settings together. All failures are ConfigError with file, key, line, column.
#include "config/config_loader.h"

#include "proxy/proxy_auth.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

namespace pooled {

namespace {

std::string formatWhat(const std::string& source, const std::string& key, int line, int column,
                       const std::string& message) {
    std::string text = source;
    if (line > 0)
        text += ":" + std::to_string(line) + ":" + std::to_string(column);
    text += ": ";
    if (!key.empty())
        text += key + ": ";
    return text + message;
}

} // namespace

ConfigError::ConfigError(std::string source, std::string key, int line, int column,
                         std::string message)
    : std::runtime_error(formatWhat(source, key, line, column, message)),
      source_(std::move(source)), key_(std::move(key)), message_(std::move(message)),
      line_(line), column_(column) {}

namespace {

struct Pos {
    int line = 0; // 1-based; 0 = unknown
    int column = 0;
};

Pos posOf(const YAML::Mark& mark) {
    if (mark.is_null())
        return {};
    return {mark.line + 1, mark.column + 1};
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, which are
// the commonest typo ("dsn" for "dns").
size_t editDistance(const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i)
        d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j)
        d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

// The known key closest to `key`, if it is close enough to be a plausible typo.
std::string closestKey(const std::string& key, const std::vector<std::string_view>& known) {
    const std::string k = lower(key);
    std::string best;
    size_t bestDistance = std::numeric_limits<size_t>::max();
    for (auto candidate : known) {
        const std::string c(candidate);
        const size_t distance = editDistance(k, c);
        const size_t allowed = std::min<size_t>(3, std::max<size_t>(1, c.size() / 3));
        if (distance <= allowed && distance < bestDistance) {
            best = c;
            bestDistance = distance;
        }
    }
    return best;
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Map:
        return "a map";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Scalar:
        return "'" + node.Scalar() + "'";
    default:
        return "nothing";
    }
}

std::string childPath(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string indexPath(const std::string& path, size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

bool isTokenChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

class Loader {
public:
    explicit Loader(std::string source) : source_(std::move(source)) {}

    Config load(const YAML::Node& root) {
        Config config;
        positions_[""] = posOf(root.Mark());
        readMap(root, "",
                {
                    {"listeners", [&](const YAML::Node& n, const std::string& p) {
                         readListeners(n, p, config.listeners);
                     }},
                    {"routes", [&](const YAML::Node& n, const std::string& p) {
                         readRoutes(n, p, config.routes);
                     }},
                    {"pool", [&](const YAML::Node& n, const std::string& p) {
                         readPool(n, p, config.pool);
                     }},
                    {"timeouts", [&](const YAML::Node& n, const std::string& p) {
                         readTimeouts(n, p, config.timeouts);
                     }},
                    {"limits", [&](const YAML::Node& n, const std::string& p) {
                         readLimits(n, p, config.limits);
                     }},
                    {"buffers", [&](const YAML::Node& n, const std::string& p) {
                         readBuffers(n, p, config.buffers);
                     }},
                    {"dns", [&](const YAML::Node& n, const std::string& p) {
                         readDns(n, p, config.dns);
                     }},
                    {"access_log", [&](const YAML::Node& n, const std::string& p) {
                         readAccessLog(n, p, config.access_log);
                     }},
                    {"connect", [&](const YAML::Node& n, const std::string& p) {
                         readConnect(n, p, config.connect);
                     }},
                    {"tls", [&](const YAML::Node& n, const std::string& p) {
                         readTls(n, p, config.tls);
                     }},
                    {"tls_origination", [&](const YAML::Node& n, const std::string& p) {
                         readTlsOrigination(n, p, config.tls_origination);
                     }},
                    {"admin", [&](const YAML::Node& n, const std::string& p) {
                         readAdmin(n, p, config.admin);
                     }},
                    {"access", [&](const YAML::Node& n, const std::string& p) {
                         readAccess(n, p, config.access);
                     }},
                    oneOf("log_level", config.log_level,
                          {"trace", "debug", "info", "warn", "error", "critical", "off"}),
                    {"via_name", [&](const YAML::Node& n, const std::string& p) {
                         config.via_name = token(n, p);
                     }},
                });
        settleDefaults(config);
        validate(config);
        return config;
    }

private:
    using Reader = std::function<void(const YAML::Node&, const std::string&)>;
    // One schema entry: a key and how to read its value.
    struct Field {
        std::string_view name;
        Reader read;
    };

    [[noreturn]] void failAt(Pos pos, const std::string& key, const std::string& message) const {
        throw ConfigError(source_, key, pos.line, pos.column, message);
    }

    // Fails at where `path` was written (line 0 if it was not: the value is a default).
    [[noreturn]] void fail(const std::string& path, const std::string& message) const {
        failAt(where(path), path, message);
    }

    Pos where(const std::string& path) const {
        auto it = positions_.find(path);
        return it == positions_.end() ? Pos{} : it->second;
    }

    bool written(const std::string& path) const { return positions_.count(path) != 0; }

    // Reads a map against `fields`. A null value (a section whose keys are all commented
    // out) reads as an empty map: everything keeps its default.
    void readMap(const YAML::Node& node, const std::string& path,
                 const std::vector<Field>& fields) {
        if (node.IsNull())
            return;
        if (!node.IsMap())
            fail(path, "expected a map of keys, got " + describe(node));
        std::set<std::string> seen;
        for (const auto& entry : node) {
            // Copies: yaml-cpp's iterator hands out temporaries, references would dangle.
            const YAML::Node keyNode = entry.first;
            const YAML::Node value = entry.second;
            const Pos keyPos = posOf(keyNode.Mark());
            if (!keyNode.IsScalar())
                failAt(keyPos, path, "keys must be plain names, got " + describe(keyNode));
            const std::string key = keyNode.Scalar();
            const std::string sub = childPath(path, key);
            if (!seen.insert(key).second)
                failAt(keyPos, sub, "duplicate key '" + key + "'");
            auto field = std::find_if(fields.begin(), fields.end(),
                                      [&](const Field& f) { return f.name == key; });
            if (field == fields.end())
                failAt(keyPos, sub, unknownKeyMessage(key, fields));
            // yaml-cpp places an empty value at the start of the next line; the key is the
            // better place to point at.
            positions_[sub] = value.IsNull() ? keyPos : posOf(value.Mark());
            field->read(value, sub);
        }
    }

    static std::string unknownKeyMessage(const std::string& key, const std::vector<Field>& fields) {
        std::string message = "unknown key '" + key + "'";
        if (key == "<<")
            return message + " (YAML merge keys are not supported)";
        std::vector<std::string_view> known;
        for (const auto& f : fields)
            known.push_back(f.name);
        const std::string hint = closestKey(key, known);
        if (!hint.empty())
            message += " (did you mean '" + hint + "'?)";
        return message;
    }

    // Calls each(element, elementPath) for every list element. Null reads as an empty list.
    void readList(const YAML::Node& node, const std::string& path,
                  const std::function<void(const YAML::Node&, const std::string&)>& each) {
        if (node.IsNull())
            return;
        if (!node.IsSequence())
            fail(path, "expected a list, got " + describe(node));
        for (size_t i = 0; i < node.size(); ++i) {
            const YAML::Node element = node[i];
            const std::string sub = indexPath(path, i);
            const Pos pos = posOf(element.Mark());
            positions_[sub] = pos.line > 0 ? pos : where(path);
            each(element, sub);
        }
    }

    std::string scalar(const YAML::Node& node, const std::string& path) const {
        if (node.IsNull())
            fail(path, "a value is required");
        if (!node.IsScalar())
            fail(path, "expected a single value, got " + describe(node));
        return node.Scalar();
    }

    std::string nonEmpty(const YAML::Node& node, const std::string& path) const {
        std::string text = scalar(node, path);
        if (text.empty())
            fail(path, "must not be empty");
        return text;
    }

    // Unsigned decimal that must lie in [min, max]; T's range by default.
    template <typename T>
    T integer(const YAML::Node& node, const std::string& path, uint64_t min = 0,
              uint64_t max = std::numeric_limits<T>::max()) const {
        const std::string text = scalar(node, path);
        const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return c >= '0' && c <= '9';
        });
        if (!digits) {
            if (!text.empty() && text.front() == '-')
                fail(path, "must be a non-negative integer, got '" + text + "'");
            fail(path, "expected a whole number, got '" + text + "'");
        }
        // More digits than any uint64_t can hold is simply "too large".
        uint64_t value = std::numeric_limits<uint64_t>::max();
        if (text.size() <= 19)
            value = std::stoull(text);
        if (value < min || value > max)
            fail(path, "value " + text + " out of range (" + std::to_string(min) + ".." +
                           std::to_string(max) + ")");
        return static_cast<T>(value);
    }

    Duration duration(const YAML::Node& node, const std::string& path) const {
        const std::string text = scalar(node, path);
        try {
            return parseDuration(text);
        } catch (const std::invalid_argument& e) {
            fail(path, e.what());
        }
    }

    size_t size(const YAML::Node& node, const std::string& path, size_t min = 0) const {
        const std::string text = scalar(node, path);
        size_t value = 0;
        try {
            value = parseSize(text);
        } catch (const std::invalid_argument& e) {
            fail(path, e.what());
        }
        if (value < min)
            fail(path, "must be at least " + std::to_string(min) + " bytes, got '" + text + "'");
        return value;
    }

    bool boolean(const YAML::Node& node, const std::string& path) const {
        const std::string text = scalar(node, path);
        bool value = false;
        if (!YAML::convert<bool>::decode(node, value))
            fail(path, "expected true or false, got '" + text + "'");
        return value;
    }

    // Goes into the Via header, so it must be an HTTP token.
    std::string token(const YAML::Node& node, const std::string& path) const {
        std::string text = nonEmpty(node, path);
        if (!std::all_of(text.begin(), text.end(), isTokenChar))
            fail(path, "'" + text + "' is not a valid HTTP token (letters, digits, '-', '.', '_')");
        return text;
    }

    // Schema shorthands for the common field kinds.
    Field u32(std::string_view name, uint32_t& out, uint64_t min = 0) {
        return {name, [this, &out, min](const YAML::Node& n, const std::string& p) {
                    out = integer<uint32_t>(n, p, min);
                }};
    }
    Field dur(std::string_view name, Duration& out) {
        return {name,
                [this, &out](const YAML::Node& n, const std::string& p) { out = duration(n, p); }};
    }
    Field bytes(std::string_view name, size_t& out, size_t min = 0) {
        return {name, [this, &out, min](const YAML::Node& n, const std::string& p) {
                    out = size(n, p, min);
                }};
    }
    Field oneOf(std::string_view name, std::string& out, std::vector<std::string> allowed) {
        return {name, [this, &out, allowed](const YAML::Node& n, const std::string& p) {
                    const std::string text = scalar(n, p);
                    if (std::find(allowed.begin(), allowed.end(), text) == allowed.end()) {
                        std::string list;
                        for (const auto& a : allowed)
                            list += (list.empty() ? "" : ", ") + a;
                        fail(p, "'" + text + "' is not one of " + list);
                    }
                    out = text;
                }};
    }

    void readListeners(const YAML::Node& node, const std::string& path,
                       std::vector<ListenerConfig>& out) {
        out.clear(); // written listeners replace the default one
        readList(node, path, [&](const YAML::Node& element, const std::string& at) {
            ListenerConfig listener;
            bool hasAddress = false;
            readMap(element, at,
                    {
                        {"address", [&](const YAML::Node& n, const std::string& p) {
                             if (n.IsSequence())
                                 fail(p, "expected IP:PORT, got a list (quote IPv6 addresses "
                                         "in YAML: \"[::1]:3128\")");
                             try {
                                 const ListenerConfig parsed = parseListenAddress(scalar(n, p));
                                 listener.address = parsed.address;
                                 listener.port = parsed.port;
                             } catch (const std::invalid_argument& e) {
                                 fail(p, e.what());
                             }
                             hasAddress = true;
                         }},
                        {"route", [&](const YAML::Node& n, const std::string& p) {
                             listener.route = nonEmpty(n, p);
                         }},
                    });
            if (!hasAddress)
                failAt(where(at), at + ".address",
                       "a listener needs an address (e.g. address: 127.0.0.1:3128)");
            out.push_back(std::move(listener));
        });
    }

    void readRoutes(const YAML::Node& node, const std::string& path,
                    std::vector<RouteConfig>& out) {
        out.clear();
        readList(node, path, [&](const YAML::Node& element, const std::string& at) {
            RouteConfig route;
            bool hasName = false;
            bool hasUpstream = false;
            readMap(element, at,
                    {
                        {"name", [&](const YAML::Node& n, const std::string& p) {
                             route.name = nonEmpty(n, p);
                             hasName = true;
                         }},
                        {"hosts", [&](const YAML::Node& n, const std::string& p) {
                             readList(n, p, [&](const YAML::Node& h, const std::string& hp) {
                                 route.hosts.push_back(hostPattern(h, hp));
                             });
                         }},
                        {"upstream", [&](const YAML::Node& n, const std::string& p) {
                             route.upstream_url = nonEmpty(n, p);
                             try {
                                 route.upstream = parseUpstreamUrl(route.upstream_url);
                             } catch (const std::invalid_argument& e) {
                                 fail(p, e.what());
                             }
                             hasUpstream = true;
                         }},
                        {"tls", [&](const YAML::Node& n, const std::string& p) {
                             readUpstreamTls(n, p, route.tls);
                         }},
                    });
            if (!hasName)
                failAt(where(at), at + ".name", "a route needs a name");
            if (!hasUpstream)
                failAt(where(at), at + ".upstream",
                       "route '" + route.name +
                           "' needs an upstream (e.g. upstream: http://api.internal:8080)");
            out.push_back(std::move(route));
        });
    }

    // "api.local" or "*.example.com", lower-cased because Host matching is case-insensitive
    // (RFC 9110 4.2.3) and the router can then compare bytes.
    std::string hostPattern(const YAML::Node& node, const std::string& path) const {
        std::string text = lower(nonEmpty(node, path));
        std::string_view rest(text);
        if (rest.substr(0, 2) == "*.")
            rest.remove_prefix(2);
        const bool ok = !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   c == '_' || c == ':'; // ':' for bare IPv6 literals, matched unbracketed
        });
        if (!ok)
            fail(path, "bad host pattern '" + text +
                           "' (expected a host name like api.local or a wildcard like "
                           "*.example.com)");
        return text;
    }

    void readPool(const YAML::Node& node, const std::string& path, PoolConfig& pool) {
        readMap(node, path,
                {
                    u32("max_connections_per_host", pool.max_connections_per_host, 1),
                    u32("max_idle_per_host", pool.max_idle_per_host),
                    u32("max_connections_total", pool.max_connections_total, 1),
                    u32("max_pending", pool.max_pending),
                    u32("max_connecting_per_host", pool.max_connecting_per_host, 1),
                    dur("queue_timeout", pool.queue_timeout),
                    dur("idle_timeout", pool.idle_timeout),
                    u32("max_requests_per_connection", pool.max_requests_per_connection),
                    dur("max_connection_lifetime", pool.max_connection_lifetime),
                    dur("keepalive_margin", pool.keepalive_margin),
                    dur("fresh_idle_threshold", pool.fresh_idle_threshold),
                });
    }

    void readTimeouts(const YAML::Node& node, const std::string& path, TimeoutConfig& t) {
        readMap(node, path,
                {
                    dur("connect", t.connect),
                    dur("request_header", t.request_header),
                    dur("upstream_first_byte", t.upstream_first_byte),
                    dur("upstream_read", t.upstream_read),
                    dur("client_idle", t.client_idle),
                    dur("tunnel_idle", t.tunnel_idle),
                    dur("drain", t.drain),
                });
    }

    void readLimits(const YAML::Node& node, const std::string& path, LimitsConfig& l) {
        readMap(node, path,
                {
                    bytes("max_request_header_size", l.max_request_header_size, 1),
                    u32("max_header_count", l.max_header_count, 1),
                    bytes("max_uri_length", l.max_uri_length, 1),
                    bytes("max_request_body", l.max_request_body),
                    bytes("max_response_header_size", l.max_response_header_size, 1),
                    u32("max_client_connections", l.max_client_connections, 1),
                });
    }

    void readBuffers(const YAML::Node& node, const std::string& path, BufferConfig& b) {
        readMap(node, path,
                {
                    bytes("read_buffer", b.read_buffer, 1),
                    bytes("high_water", b.high_water, 1),
                    bytes("low_water", b.low_water),
                    {"io_uring", [&](const YAML::Node& n, const std::string& p) {
                         b.io_uring = boolean(n, p);
                     }},
                });
    }

    void readDns(const YAML::Node& node, const std::string& path, DnsConfig& d) {
        readMap(node, path,
                {
                    dur("max_ttl", d.max_ttl),
                    dur("min_ttl", d.min_ttl),
                    dur("negative_ttl", d.negative_ttl),
                    dur("timeout", d.timeout),
                    u32("tries", d.tries, 1),
                });
    }

    void readAccessLog(const YAML::Node& node, const std::string& path, AccessLogConfig& a) {
        readMap(node, path,
                {
                    {"enabled", [&](const YAML::Node& n, const std::string& p) {
                         a.enabled = boolean(n, p);
                     }},
                    oneOf("format", a.format, {"json", "text"}),
                    {"output", [&](const YAML::Node& n, const std::string& p) {
                         a.output = nonEmpty(n, p);
                     }},
                });
    }

    void readConnect(const YAML::Node& node, const std::string& path, ConnectConfig& c) {
        readMap(node, path,
                {
                    {"allowed_ports", [&](const YAML::Node& n, const std::string& p) {
                         c.allowed_ports.clear(); // an empty list disables CONNECT
                         readList(n, p, [&](const YAML::Node& e, const std::string& ep) {
                             c.allowed_ports.push_back(integer<uint16_t>(e, ep, 1, 65535));
                         });
                     }},
                });
    }

    void readAdmin(const YAML::Node& node, const std::string& path, AdminConfig& a) {
        readMap(node, path,
                {
                    {"enabled", [&](const YAML::Node& n, const std::string& p) {
                         a.enabled = boolean(n, p);
                     }},
                    {"address", [&](const YAML::Node& n, const std::string& p) {
                         try {
                             const ListenerConfig parsed = parseListenAddress(scalar(n, p));
                             a.address = parsed.address;
                             a.port = parsed.port;
                         } catch (const std::invalid_argument& e) {
                             fail(p, e.what());
                         }
                     }},
                });
    }

    void readAccess(const YAML::Node& node, const std::string& path, AccessConfig& a) {
        auto cidrs = [&](std::string_view name, std::vector<Cidr>& out) {
            return Field{name, [this, &out](const YAML::Node& n, const std::string& p) {
                             out.clear(); // a written list replaces the default
                             readList(n, p, [&](const YAML::Node& e, const std::string& ep) {
                                 std::string error;
                                 auto block = parseCidr(nonEmpty(e, ep), error);
                                 if (!block)
                                     fail(ep, error);
                                 out.push_back(std::move(*block));
                             });
                         }};
        };
        auto hosts = [&](std::string_view name, std::vector<std::string>& out) {
            return Field{name, [this, &out](const YAML::Node& n, const std::string& p) {
                             out.clear();
                             readList(n, p, [&](const YAML::Node& e, const std::string& ep) {
                                 std::string pattern = nonEmpty(e, ep);
                                 std::string error;
                                 if (!validHostPattern(pattern, error))
                                     fail(ep, error);
                                 out.push_back(std::move(pattern));
                             });
                         }};
        };
        readMap(node, path,
                {
                    cidrs("allow_clients", a.allow_clients),
                    cidrs("deny_destinations", a.deny_destinations),
                    cidrs("allow_destinations", a.allow_destinations),
                    hosts("deny_hosts", a.deny_hosts),
                    hosts("allow_hosts", a.allow_hosts),
                    {"allow_ports", [&](const YAML::Node& n, const std::string& p) {
                         a.allow_ports.clear();
                         readList(n, p, [&](const YAML::Node& e, const std::string& ep) {
                             a.allow_ports.push_back(integer<uint16_t>(e, ep, 1, 65535));
                         });
                     }},
                    {"proxy_auth", [&](const YAML::Node& n, const std::string& p) {
                         readProxyAuth(n, p, a.proxy_auth);
                     }},
                });
    }

    // The credentials file is read here, so start, reload and check-config all refuse a
    // bad one, naming its line.
    void readProxyAuth(const YAML::Node& node, const std::string& path, ProxyAuthConfig& auth) {
        readMap(node, path,
                {
                    {"realm", [&](const YAML::Node& n, const std::string& p) {
                         auth.realm = nonEmpty(n, p);
                         for (char c : auth.realm)
                             if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                                 fail(p, "must be printable text");
                     }},
                    {"credentials_file", [&](const YAML::Node& n, const std::string& p) {
                         auth.credentials_file = nonEmpty(n, p);
                         try {
                             auth.credentials = std::make_shared<const Credentials>(
                                 Credentials::load(auth.credentials_file));
                         } catch (const CredentialsError& e) {
                             fail(p, auth.credentials_file +
                                         (e.line > 0 ? ":" + std::to_string(e.line) : "") +
                                         ": " + e.what());
                         }
                     }},
                });
        if (!node.IsNull() && auth.credentials_file.empty())
            failAt(where(path), path + ".credentials_file",
                   "proxy_auth needs a credentials_file (user:crypt-hash lines)");
    }

    // Per-upstream TLS settings. The files are read (and parsed) by the TLS context at start;
    // here only their presence is checked, so check-config catches a typo in a path too.
    void readUpstreamTls(const YAML::Node& node, const std::string& path, UpstreamTlsConfig& t) {
        readMap(node, path,
                {
                    readableFile("ca_file", t.ca_file),
                    readableFile("client_cert", t.client_cert),
                    readableFile("client_key", t.client_key),
                    {"server_name", [&](const YAML::Node& n, const std::string& p) {
                         t.server_name = hostPattern(n, p);
                         if (t.server_name.rfind("*.", 0) == 0)
                             fail(p, "must be a host name, not a wildcard");
                     }},
                    {"insecure_skip_verify", [&](const YAML::Node& n, const std::string& p) {
                         t.insecure_skip_verify = boolean(n, p);
                     }},
                    {"false_start", [&](const YAML::Node& n, const std::string& p) {
                         t.false_start = boolean(n, p);
                     }},
                });
        if (t.client_cert.empty() != t.client_key.empty()) {
            // Name the missing key, point at the one that was written.
            const bool no_cert = t.client_cert.empty();
            failAt(where(childPath(path, no_cert ? "client_key" : "client_cert")),
                   childPath(path, no_cert ? "client_cert" : "client_key"),
                   "client_cert and client_key go together (mTLS needs both)");
        }
    }

    Field readableFile(std::string_view name, std::string& out) {
        return {name, [this, &out](const YAML::Node& n, const std::string& p) {
                    out = nonEmpty(n, p);
                    errno = 0;
                    std::ifstream in(out, std::ios::binary);
                    const int error = errno;
                    std::error_code ec;
                    if (std::filesystem::is_directory(out, ec))
                        fail(p, "cannot read '" + out + "': is a directory");
                    if (!in)
                        fail(p, "cannot read '" + out + "'" +
                                    (error != 0 ? std::string(": ") + std::strerror(error) : ""));
                }};
    }

    void readTls(const YAML::Node& node, const std::string& path, TlsConfig& t) {
        readMap(node, path,
                {
                    {"ca_file", [&](const YAML::Node& n, const std::string& p) {
                         t.ca_file = nonEmpty(n, p);
                     }},
                    {"min_version", [&](const YAML::Node& n, const std::string& p) {
                         const std::string v = scalar(n, p);
                         if (v != "1.2")
                             fail(p, "'" + v + "' is not supported (mbedTLS 2.28: \"1.2\")");
                         t.min_version = v;
                     }},
                });
    }

    void readTlsOrigination(const YAML::Node& node, const std::string& path,
                            std::vector<TlsOriginationRule>& out) {
        out.clear();
        readList(node, path, [&](const YAML::Node& element, const std::string& at) {
            TlsOriginationRule rule;
            readMap(element, at,
                    {
                        {"hosts", [&](const YAML::Node& n, const std::string& p) {
                             readList(n, p, [&](const YAML::Node& h, const std::string& hp) {
                                 rule.hosts.push_back(hostPattern(h, hp));
                             });
                         }},
                        {"ports", [&](const YAML::Node& n, const std::string& p) {
                             readPortMap(n, p, rule.ports);
                         }},
                        {"tls", [&](const YAML::Node& n, const std::string& p) {
                             readUpstreamTls(n, p, rule.tls);
                         }},
                    });
            if (rule.hosts.empty())
                failAt(where(at), at + ".hosts", "a tls_origination rule needs hosts");
            out.push_back(std::move(rule));
        });
    }

    // {80: 443, 8080: 8443}: request port -> upstream port. Written maps replace {80: 443}.
    void readPortMap(const YAML::Node& node, const std::string& path,
                     std::vector<std::pair<uint16_t, uint16_t>>& out) {
        out.clear();
        if (node.IsNull())
            return;
        if (!node.IsMap())
            fail(path, "expected a map of ports (e.g. {80: 443}), got " + describe(node));
        for (const auto& entry : node) {
            const YAML::Node key = entry.first;
            const YAML::Node value = entry.second;
            const std::string sub = childPath(path, key.IsScalar() ? key.Scalar() : "?");
            positions_[sub] = posOf(key.Mark());
            const auto from = integer<uint16_t>(key, sub, 1, 65535);
            for (const auto& [seen, to] : out)
                if (seen == from)
                    fail(sub, "duplicate port " + std::to_string(from));
            out.emplace_back(from, integer<uint16_t>(value, sub, 1, 65535));
        }
    }

    // `lowPath` must not exceed `highPath`. Blames whichever of the two the file wrote, so the
    // message points at a line the user can change.
    template <typename T>
    void requireNotAbove(const std::string& lowPath, T low, const std::string& highPath,
                         T high, const std::string& shown) const {
        if (low <= high)
            return;
        const std::string& blame = written(lowPath) || !written(highPath) ? lowPath : highPath;
        fail(blame, lowPath + " (" + shown + ") must not exceed " + highPath);
    }

    // Defaults follow an explicit lower limit: writing only max_connections_per_host: 4
    // means at most 4 idle too, not an error about a default the user never wrote.
    void settleDefaults(Config& config) const {
        auto& pool = config.pool;
        if (!written("pool.max_idle_per_host"))
            pool.max_idle_per_host = std::min(pool.max_idle_per_host, pool.max_connections_per_host);
        if (!written("pool.max_connections_total"))
            pool.max_connections_total =
                std::max(pool.max_connections_total, pool.max_connections_per_host);
        if (!written("pool.max_connecting_per_host"))
            pool.max_connecting_per_host =
                std::min(pool.max_connecting_per_host, pool.max_connections_per_host);
        if (!written("buffers.low_water"))
            config.buffers.low_water = std::min(config.buffers.low_water, config.buffers.high_water / 2);
    }

    void validate(const Config& config) const {
        if (config.listeners.empty())
            fail("listeners", "at least one listener is required");

        std::map<std::string, size_t> routeIndex;
        std::map<std::string, std::string> hostOwner;
        for (size_t i = 0; i < config.routes.size(); ++i) {
            const RouteConfig& route = config.routes[i];
            const std::string at = indexPath("routes", i);
            if (route.upstream.scheme != "https" && !(route.tls == UpstreamTlsConfig{}))
                fail(at + ".tls", "TLS settings need an https:// upstream, route '" + route.name +
                                      "' has " + route.upstream_url);
            if (!routeIndex.emplace(route.name, i).second)
                fail(at + ".name", "duplicate route name '" + route.name + "'");
            // Two routes claiming one host would make routing depend on file order.
            for (size_t j = 0; j < route.hosts.size(); ++j) {
                auto [it, fresh] = hostOwner.emplace(route.hosts[j], route.name);
                if (!fresh)
                    fail(indexPath(at + ".hosts", j), "host pattern '" + route.hosts[j] +
                                                          "' is already used by route '" +
                                                          it->second + "'");
            }
        }

        std::set<std::pair<std::string, uint16_t>> bound;
        for (size_t i = 0; i < config.listeners.size(); ++i) {
            const ListenerConfig& listener = config.listeners[i];
            const std::string at = indexPath("listeners", i);
            if (listener.port != 0 && !bound.emplace(listener.address, listener.port).second)
                fail(at + ".address", "address " + listener.address + ":" +
                                          std::to_string(listener.port) + " is listed twice");
            if (!listener.route.empty() && routeIndex.count(listener.route) == 0)
                fail(at + ".route", "no route named '" + listener.route + "'");
            // Never an open proxy by accident: beyond loopback, say who may connect.
            if (config.access.allow_clients.empty() && !isLoopbackLiteral(listener.address))
                fail(at + ".address",
                     "listener " + listener.address + ":" + std::to_string(listener.port) +
                         " is not on loopback: set access.allow_clients to the client "
                         "networks allowed to use it (an open proxy is refused)");
        }

        if (config.admin.enabled && config.admin.port != 0 &&
            bound.count({config.admin.address, config.admin.port}))
            fail("admin.address", "address " + config.admin.address + ":" +
                                      std::to_string(config.admin.port) +
                                      " is already a proxy listener");

        const PoolConfig& pool = config.pool;
        requireNotAbove("pool.max_idle_per_host", pool.max_idle_per_host,
                        "pool.max_connections_per_host", pool.max_connections_per_host,
                        std::to_string(pool.max_idle_per_host));
        requireNotAbove("pool.max_connections_per_host", pool.max_connections_per_host,
                        "pool.max_connections_total", pool.max_connections_total,
                        std::to_string(pool.max_connections_per_host));
        requireNotAbove("buffers.low_water", config.buffers.low_water, "buffers.high_water",
                        config.buffers.high_water, std::to_string(config.buffers.low_water));
        requireNotAbove("dns.min_ttl", config.dns.min_ttl.count(), "dns.max_ttl",
                        config.dns.max_ttl.count(),
                        std::to_string(config.dns.min_ttl.count()) + "ms");
    }

    std::string source_;
    std::map<std::string, Pos> positions_; // dotted path -> where its value was written
};

} // namespace

Config loadConfigString(const std::string& yaml, const std::string& source) {
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(yaml);
    } catch (const YAML::Exception& e) {
        const Pos pos = posOf(e.mark);
        throw ConfigError(source, "", pos.line, pos.column, "YAML syntax error: " + e.msg);
    }
    if (documents.empty())
        return Config{};
    if (documents.size() > 1) {
        const Pos pos = posOf(documents[1].Mark());
        throw ConfigError(source, "", pos.line, pos.column,
                          "only one YAML document is allowed, found " +
                              std::to_string(documents.size()));
    }
    return Loader(source).load(documents.front());
}

Config loadConfigFile(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw ConfigError(path, "", 0, 0, "cannot read config: is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ConfigError(path, "", 0, 0, std::string("cannot read config: ") +
                                              std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw ConfigError(path, "", 0, 0, "cannot read config: read error");
    return loadConfigString(text.str(), path);
}

Config defaultConfig() {
    return loadConfigString(defaultConfigYaml(), "<embedded>");
}

} // namespace pooled
