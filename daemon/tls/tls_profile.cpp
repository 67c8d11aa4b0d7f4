// TLS profile ids and tls_origination rules: see tls_profile.h.
#include "tls/tls_profile.h"

#include "http/target.h"

namespace pooled {

std::string tlsProfileId(const UpstreamTlsConfig& s) {
    if (s == UpstreamTlsConfig{})
        return "";
    // Field names keep the text unambiguous; a reader of a pool key can tell what differs.
    std::string id;
    auto add = [&id](std::string_view name, const std::string& value) {
        if (value.empty())
            return;
        if (!id.empty())
            id += ' ';
        id += name;
        id += '=';
        id += value;
    };
    add("ca", s.ca_file);
    add("cert", s.client_cert);
    add("key", s.client_key);
    add("sni", s.server_name);
    if (s.insecure_skip_verify)
        add("verify", "off");
    if (!s.false_start)
        add("false_start", "off");
    return id;
}

std::optional<TlsOrigination> findTlsOrigination(const Config& config, std::string_view host,
                                                 uint16_t port) {
    for (const auto& rule : config.tls_origination) {
        for (const auto& pattern : rule.hosts) {
            if (!hostMatches(pattern, host))
                continue;
            TlsOrigination o{port, &rule};
            for (const auto& [from, to] : rule.ports)
                if (from == port)
                    o.port = to;
            return o;
        }
    }
    return std::nullopt;
}

} // namespace pooled
