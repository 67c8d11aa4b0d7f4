// TlsContext: see tls_context.h.
#include "tls/tls_context.h"

#include "tls/tls_profile.h"

#include <mbedtls/error.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace pooled {

namespace {

// Sessions are small (a ticket and the peer certificate) but pool keys of absolute-form
// https:// requests are unbounded: past this many, the oldest-inserted is dropped.
constexpr size_t kMaxSessions = 1024;

// What a loaded chain holds: a parsed certificate has a version.
bool hasCertificates(const mbedtls_x509_crt& chain) {
    return chain.version != 0;
}

} // namespace

std::string mbedtlsError(int code) {
    char text[160];
    mbedtls_strerror(code, text, sizeof text);
    return text;
}

TlsProfile::TlsProfile() {
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
}

TlsProfile::~TlsProfile() {
    mbedtls_ssl_config_free(&conf);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&cert);
    mbedtls_pk_free(&key);
}

TlsContext::SessionSlot::SessionSlot() {
    mbedtls_ssl_session_init(&session);
}

TlsContext::SessionSlot::~SessionSlot() {
    mbedtls_ssl_session_free(&session);
}

TlsContext::TlsContext(const Config& config) : plain_(64 * 1024) {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    mbedtls_x509_crt_init(&system_ca_);
    static constexpr char personalization[] = "pooled worker drbg";
    int rc = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                   reinterpret_cast<const unsigned char*>(personalization),
                                   sizeof personalization - 1);
    if (rc != 0) {
        releaseAll();
        throw std::runtime_error("TLS: cannot seed the random generator: " + mbedtlsError(rc));
    }
    system_ca_path_ = config.tls.ca_file;
    rc = mbedtls_x509_crt_parse_file(&system_ca_, system_ca_path_.c_str());
    system_ca_loaded_ = rc >= 0 && hasCertificates(system_ca_);
    if (!system_ca_loaded_) {
        std::string why = rc < 0 ? mbedtlsError(rc) : "no certificate could be parsed";
        if (system_ca_path_ != TlsConfig{}.ca_file) {
            releaseAll();
            throw std::runtime_error("tls.ca_file: " + system_ca_path_ + ": " + why);
        }
        // The default bundle is missing (no ca-certificates package): plain HTTP still
        // works, and https upstreams without their own ca_file fail as "unknown CA".
        spdlog::warn("tls.ca_file: {}: {}; https upstreams need their own ca_file",
                     system_ca_path_, why);
    }
    try {
        prepare(config);
    } catch (...) {
        releaseAll(); // no destructor runs for a constructor that throws
        throw;
    }
}

TlsContext::~TlsContext() {
    releaseAll();
}

void TlsContext::releaseAll() {
    sessions_.clear();
    profiles_.clear();
    mbedtls_x509_crt_free(&system_ca_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
}

void TlsContext::prepare(const Config& config) {
    build("tls", UpstreamTlsConfig{}); // absolute-form https:// requests
    for (size_t i = 0; i < config.routes.size(); ++i)
        if (config.routes[i].upstream.scheme == "https")
            build("routes[" + std::to_string(i) + "].tls", config.routes[i].tls);
    for (size_t i = 0; i < config.tls_origination.size(); ++i)
        build("tls_origination[" + std::to_string(i) + "].tls", config.tls_origination[i].tls);
}

void TlsContext::build(const std::string& at, const UpstreamTlsConfig& s) {
    std::string id = tlsProfileId(s);
    if (profiles_.count(id))
        return;
    auto p = std::make_unique<TlsProfile>();
    p->settings = s;
    auto failWith = [&at](const std::string& key, const std::string& path, int rc,
                          const std::string& what) {
        throw std::runtime_error(at + "." + key + ": " + path + ": " + what +
                                 (rc < 0 ? ": " + mbedtlsError(rc) : ""));
    };
    int rc = mbedtls_ssl_config_defaults(&p->conf, MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        throw std::runtime_error(at + ": TLS configuration: " + mbedtlsError(rc));
    mbedtls_ssl_conf_rng(&p->conf, mbedtls_ctr_drbg_random, &drbg_);
    // TLS 1.2 at least (RFC 8996 retired 1.0 and 1.1); 2.28 offers nothing newer.
    mbedtls_ssl_conf_min_version(&p->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_alpn_protocols(&p->conf, alpn_);
    mbedtls_ssl_conf_session_tickets(&p->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_renegotiation(&p->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    // Key exchange groups, cheapest first: 2.28's default list starts at P-521, which a
    // server honouring the client's order picks, and which costs several times P-256 or
    // X25519 on the event loop for every full handshake.
    static const mbedtls_ecp_group_id kCurves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                                   MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_SECP521R1,
                                                   MBEDTLS_ECP_DP_NONE};
    mbedtls_ssl_conf_curves(&p->conf, kCurves);

    if (!s.ca_file.empty()) {
        rc = mbedtls_x509_crt_parse_file(&p->ca, s.ca_file.c_str());
        if (rc < 0 || !hasCertificates(p->ca))
            failWith("ca_file", s.ca_file, rc, "no CA certificate could be loaded");
        mbedtls_ssl_conf_ca_chain(&p->conf, &p->ca, nullptr);
    } else {
        // An empty chain (no bundle) makes every verification fail as "unknown CA".
        mbedtls_ssl_conf_ca_chain(&p->conf, &system_ca_, nullptr);
    }
    if (!s.client_cert.empty()) {
        rc = mbedtls_x509_crt_parse_file(&p->cert, s.client_cert.c_str());
        if (rc != 0 || !hasCertificates(p->cert))
            failWith("client_cert", s.client_cert, rc, "not a PEM or DER certificate");
        rc = mbedtls_pk_parse_keyfile(&p->key, s.client_key.c_str(), nullptr);
        if (rc != 0)
            failWith("client_key", s.client_key, rc, "not a usable private key");
        rc = mbedtls_pk_check_pair(&p->cert.pk, &p->key);
        if (rc != 0)
            failWith("client_key", s.client_key, rc, "does not match client_cert");
        rc = mbedtls_ssl_conf_own_cert(&p->conf, &p->cert, &p->key);
        if (rc != 0)
            failWith("client_cert", s.client_cert, rc, "cannot be used");
    }
    if (s.insecure_skip_verify) {
        mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_NONE);
        spdlog::warn("{}.insecure_skip_verify: certificates of these upstreams are NOT verified; "
                     "anyone on the path can read and change the traffic",
                     at);
    } else {
        mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    }
    profiles_.emplace(std::move(id), std::move(p));
}

const TlsProfile* TlsContext::profile(const std::string& id) const {
    auto it = profiles_.find(id);
    return it == profiles_.end() ? nullptr : it->second.get();
}

const mbedtls_ssl_session* TlsContext::session(const PoolKey& key) const {
    auto it = sessions_.find(key);
    return it == sessions_.end() ? nullptr : &it->second->session;
}

void TlsContext::saveSession(const PoolKey& key, const mbedtls_ssl_context& ssl) {
    auto slot = std::make_unique<SessionSlot>();
    if (mbedtls_ssl_get_session(&ssl, &slot->session) != 0)
        return;
    if (sessions_.size() >= kMaxSessions && sessions_.count(key) == 0)
        sessions_.erase(sessions_.begin());
    sessions_[key] = std::move(slot);
}

void TlsContext::forgetSession(const PoolKey& key) {
    sessions_.erase(key);
}

} // namespace pooled
