// TlsSession: see tls_session.h.
#include "tls/tls_session.h"

#include "tls/tls_context.h"

// handshake->resume (2.28 has no public "was resumed"), the negotiated suite and
// mbedtls_ssl_write_record for False Start: 2.28 has no API for either.
#include <mbedtls/ssl_internal.h>
#include <mbedtls/cipher.h>
#include <mbedtls/net_sockets.h> // MBEDTLS_ERR_NET_SEND_FAILED
#include <mbedtls/x509.h>
#include <uv.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace pooled {

namespace {

const char* alertName(unsigned char alert) {
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE: return "handshake_failure";
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT: return "bad_certificate";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT: return "unsupported_certificate";
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED: return "certificate_revoked";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED: return "certificate_expired";
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN: return "certificate_unknown";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA: return "unknown_ca";
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED: return "access_denied";
    case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR: return "decode_error";
    case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR: return "decrypt_error";
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION: return "protocol_version";
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY: return "insufficient_security";
    case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR: return "internal_error";
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME: return "unrecognized_name";
    case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL: return "no_application_protocol";
    case 116: return "certificate_required"; // TLS 1.3 servers, which 2.28 does not name
    default: return "alert";
    }
}

} // namespace

std::string describeVerifyFlags(uint32_t flags) {
    // The reasons a person can act on first; everything else in mbedTLS's words.
    static constexpr struct {
        uint32_t flag;
        const char* text;
    } known[] = {
        {MBEDTLS_X509_BADCERT_EXPIRED, "certificate expired"},
        {MBEDTLS_X509_BADCERT_FUTURE, "certificate not yet valid"},
        {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "unknown CA"},
        {MBEDTLS_X509_BADCERT_CN_MISMATCH, "host name mismatch"},
        {MBEDTLS_X509_BADCERT_REVOKED, "certificate revoked"},
        {MBEDTLS_X509_BADCERT_KEY_USAGE, "certificate key usage does not allow TLS"},
        {MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "certificate is not for TLS servers"},
        {MBEDTLS_X509_BADCERT_BAD_MD, "certificate signed with a weak hash"},
        {MBEDTLS_X509_BADCERT_BAD_KEY, "certificate key too weak"},
    };
    std::string out;
    uint32_t rest = flags;
    for (const auto& k : known) {
        if (flags & k.flag) {
            out += out.empty() ? "" : ", ";
            out += k.text;
            rest &= ~k.flag;
        }
    }
    if (rest != 0 || out.empty()) {
        char info[256];
        int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", rest ? rest : flags);
        std::string text = n > 0 ? std::string(info, static_cast<size_t>(n)) : "verification failed";
        std::replace(text.begin(), text.end(), '\n', ';');
        while (!text.empty() && (text.back() == ';' || text.back() == ' '))
            text.pop_back();
        out += (out.empty() ? "" : ", ") + text;
    }
    return out;
}

std::string describeVerifyFailure(uint32_t flags, const std::string& name, bool ip_literal) {
    if (!ip_literal || !(flags & MBEDTLS_X509_BADCERT_CN_MISMATCH))
        return fmt::format("{} for {}", describeVerifyFlags(flags), name);
    // For an address DNS names and the CN are never consulted: "host name mismatch"
    // would send people looking in the wrong place.
    std::string ip_text = "certificate has no IP SAN matching " + name;
    uint32_t rest = flags & ~static_cast<uint32_t>(MBEDTLS_X509_BADCERT_CN_MISMATCH);
    return rest == 0 ? ip_text : describeVerifyFlags(rest) + ", " + ip_text;
}

TlsSession::TlsSession(TlsContext& context, const PoolKey& key, Transport& transport)
    : context_(context), key_(key), transport_(transport), verify_name_(key.host) {
    mbedtls_ssl_init(&ssl_);
    const TlsProfile* profile = context_.profile(key_.tls_profile);
    if (!profile) {
        error_ = {502, "proxy_configuration_error", "no TLS settings for " + key_.toString()};
        return;
    }
    int rc = mbedtls_ssl_setup(&ssl_, &profile->conf);
    if (rc != 0) {
        error_ = {502, "proxy_internal_error", "TLS setup: " + mbedtlsError(rc)};
        return;
    }
    // SNI and the name the certificate must carry: the override, else the origin's host.
    if (!profile->settings.server_name.empty())
        verify_name_ = profile->settings.server_name;
    false_start_ = profile->settings.false_start;
    verify_ip_ = parseIpLiteral(verify_name_);
    if (verify_ip_) {
        // No SNI for an address (RFC 6066 3), and mbedTLS matches only DNS names: with
        // no hostname set it checks none, and verifyIpSan checks the address.
        mbedtls_ssl_set_verify(&ssl_, &TlsSession::verifyIpSan, this);
    } else {
        rc = mbedtls_ssl_set_hostname(&ssl_, verify_name_.c_str());
        if (rc != 0) {
            error_ = {502, "proxy_internal_error", "TLS server name: " + mbedtlsError(rc)};
            return;
        }
    }
    mbedtls_ssl_set_bio(&ssl_, this, &TlsSession::bioSend, &TlsSession::bioRecv, nullptr);
    if (const mbedtls_ssl_session* saved = context_.session(key_))
        offered_session_ = mbedtls_ssl_set_session(&ssl_, saved) == 0;
    setup_ok_ = true;
}

TlsSession::~TlsSession() {
    mbedtls_ssl_free(&ssl_);
}

void TlsSession::lend(const char* data, size_t length) {
    lent_ = data;
    lent_size_ = length;
}

void TlsSession::release() {
    if (stash_pos_ > 0) {
        stash_.erase(0, stash_pos_);
        stash_pos_ = 0;
    }
    if (lent_size_ > 0)
        stash_.append(lent_, lent_size_);
    lent_ = nullptr;
    lent_size_ = 0;
}

int TlsSession::bioSend(void* ctx, const unsigned char* data, size_t length) {
    auto* self = static_cast<TlsSession*>(ctx);
    if (self->send_error_ != 0) // see below: mid-handshake, keep going to read the alert
        return self->established_ ? MBEDTLS_ERR_NET_SEND_FAILED : static_cast<int>(length);
    if (self->defer_sends_) { // on a pool thread: see deferSends()
        self->outbox_.append(reinterpret_cast<const char*>(data), length);
        return static_cast<int>(length);
    }
    int rc = self->transport_.sendCiphertext(reinterpret_cast<const char*>(data), length);
    if (rc != 0) {
        self->send_error_ = rc;
        // Mid-handshake, a peer that rejects us (no client certificate, say) sends an
        // alert and closes; our next write fails first. Carry on so the alert is read
        // and reported instead of a bare "broken pipe".
        if (!self->established_)
            return static_cast<int>(length);
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    // The writer queues what the socket does not take: backpressure is the owner's
    // write-queue watermark, as for plain connections.
    return static_cast<int>(length);
}

int TlsSession::bioRecv(void* ctx, unsigned char* buf, size_t length) {
    auto* self = static_cast<TlsSession*>(ctx);
    if (self->stash_pos_ < self->stash_.size()) {
        size_t n = std::min(length, self->stash_.size() - self->stash_pos_);
        std::memcpy(buf, self->stash_.data() + self->stash_pos_, n);
        self->stash_pos_ += n;
        if (self->stash_pos_ == self->stash_.size()) {
            self->stash_.clear();
            self->stash_pos_ = 0;
        }
        return static_cast<int>(n);
    }
    if (self->lent_size_ > 0) {
        size_t n = std::min(length, self->lent_size_);
        std::memcpy(buf, self->lent_, n);
        self->lent_ += n;
        self->lent_size_ -= n;
        return static_cast<int>(n);
    }
    // Never 0: the end of the TCP stream is the owner's to report.
    return MBEDTLS_ERR_SSL_WANT_READ;
}

int TlsSession::verifyIpSan(void* ctx, mbedtls_x509_crt* crt, int depth, uint32_t* flags) {
    auto* self = static_cast<TlsSession*>(ctx);
    // Chain checks (CA, dates, key usage) are mbedTLS's and already in `flags`; a
    // missing IP SAN takes the same failure path as a host name mismatch.
    if (depth == 0 && !subjectAltNamesHoldIp(&crt->subject_alt_names, *self->verify_ip_))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

TlsSession::Step TlsSession::handshake() {
    // On the loop, so never the costly steps (another session's may be running on the
    // pool under the TlsContext's lock): read() comes here only after False Start, past
    // them. Should it not, the handshake stalls (WantRead) rather than race.
    return finishSteps(runSteps(true));
}

int TlsSession::runSteps(bool cheap_only) {
    if (!setup_ok_ || established_)
        return 0;
    // Step by step rather than mbedtls_ssl_handshake(): the resume flag lives only
    // while the handshake does, and the False Start point is between two steps.
    while (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        if (cheap_only && nextStepIsCostly())
            return kPoolNext;
        int rc = mbedtls_ssl_handshake_step(&ssl_);
        // Set when we offer a saved session, cleared when the ServerHello refuses it;
        // the handshake state (and the flag) is freed at the end.
        if (ssl_.handshake)
            resumed_ = ssl_.handshake->resume != 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

TlsSession::Step TlsSession::finishSteps(int rc) {
    if (!setup_ok_)
        return Step::Failed;
    if (established_)
        return Step::Done;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == kPoolNext) {
        if (!false_started_ && mayFalseStart())
            false_started_ = true;
        return false_started_ ? Step::Done : Step::WantRead;
    }
    if (rc != 0) {
        failHandshake(rc);
        return Step::Failed;
    }
    established_ = true;
    context_.saveSession(key_, ssl_);
    return Step::Done;
}

bool TlsSession::nextStepIsCostly() const {
    // mbedTLS 2.28's client (ssl_cli.c), full handshake: from the origin's Certificate
    // to our Finished come the chain's and the ServerKeyExchange's signature checks, the
    // ECDHE key pair and shared secret, and for mTLS our CertificateVerify signature:
    // milliseconds, and the only steps that use the keys of the CA certificates and
    // client key every session of the worker shares (mbedTLS caches a comb table in
    // their ECP group on first use: not thread safe). Before them (ClientHello: DRBG
    // bytes, which lock themselves; ServerHello: parsing) and after them or in a resumed
    // handshake (ChangeCipherSpec, Finished, NewSessionTicket: PRF and hashes) nothing
    // touches a certificate's key, so those run on the loop, even while another
    // session's costly steps run on the pool.
    if (!ssl_.handshake || ssl_.handshake->resume)
        return false;
    return ssl_.state >= MBEDTLS_SSL_SERVER_CERTIFICATE &&
           ssl_.state <= MBEDTLS_SSL_CLIENT_FINISHED;
}

void TlsSession::flushDeferredSends() {
    defer_sends_ = false;
    if (outbox_.empty())
        return;
    std::string out = std::move(outbox_);
    outbox_.clear();
    if (send_error_ != 0)
        return;
    // Mid-handshake, as in bioSend: a failed write is remembered, the alert read next.
    send_error_ = transport_.sendCiphertext(out.data(), out.size());
}

bool TlsSession::mayFalseStart() const {
    // TLS 1.2 makes a full handshake cost two round trips before the request can go;
    // TLS 1.3 (not in mbedTLS 2.28) one. False Start (RFC 7918) sends the request right
    // after our Finished, which saves the second one. It is safe when an attacker who
    // tampered with the handshake (caught only by the origin's Finished) could not have
    // weakened what protects the request: the certificate and the key exchange
    // signature are verified by now, and the suite must be forward secret (ECDHE) and
    // AEAD. Not for resumptions (the origin's Finished comes first there anyway) nor
    // when the origin asked for a client certificate: its refusal comes after our
    // Finished, and must stay a failed connect, not a failed request.
    if (!false_start_ || !ssl_.handshake || ssl_.handshake->resume || ssl_.client_auth ||
        ssl_.out_left != 0 || send_error_ != 0)
        return false;
    // Our Finished is out; next comes the origin's session ticket (if it announced one)
    // or its ChangeCipherSpec.
    if (ssl_.state != MBEDTLS_SSL_SERVER_NEW_SESSION_TICKET &&
        ssl_.state != MBEDTLS_SSL_SERVER_CHANGE_CIPHER_SPEC)
        return false;
    const mbedtls_ssl_ciphersuite_t* suite = ssl_.handshake->ciphersuite_info;
    if (!suite || (suite->key_exchange != MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA &&
                   suite->key_exchange != MBEDTLS_KEY_EXCHANGE_ECDHE_RSA))
        return false;
    const mbedtls_cipher_info_t* cipher = mbedtls_cipher_info_from_type(suite->cipher);
    return cipher && (cipher->mode == MBEDTLS_MODE_GCM || cipher->mode == MBEDTLS_MODE_CCM ||
                      cipher->mode == MBEDTLS_MODE_CHACHAPOLY);
}

void TlsSession::failHandshake(int rc) {
    const std::string& name = verify_name_;
    if (offered_session_)
        context_.forgetSession(key_);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&ssl_);
        error_ = {502, "tls_certificate_error",
                  describeVerifyFailure(flags, name, verify_ip_.has_value())};
        return;
    }
    if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && ssl_.in_msg) {
        unsigned char alert = ssl_.in_msg[1];
        error_ = {502, "tls_alert_received",
                  fmt::format("{} sent TLS alert {} ({}){}", name, alert, alertName(alert),
                              clientCertificateHint())};
        return;
    }
    error_ = {502, "tls_protocol_error", fmt::format("{}: {}", name, mbedtlsError(rc))};
}

ProxyError TlsSession::handshakeAborted(const std::string& what) const {
    return {502, "tls_protocol_error", fmt::format("{} {} during the TLS handshake{}", verify_name_,
                                                  what, clientCertificateHint())};
}

std::string TlsSession::clientCertificateHint() const {
    // The origin sent a CertificateRequest: its refusal is most likely about our
    // (missing or untrusted) client certificate.
    if (!ssl_.client_auth)
        return "";
    const TlsProfile* profile = context_.profile(key_.tls_profile);
    if (profile && !profile->settings.client_cert.empty())
        return "; the origin did not accept our client certificate";
    return "; the origin asked for a client certificate and none is configured (client_cert)";
}

long TlsSession::read(char* buf, size_t capacity) {
    if (!established_) {
        // False Started: the origin's CCS and Finished come first. mbedtls_ssl_read
        // would finish the handshake too, but without saving the session.
        Step step = handshake();
        if (step == Step::Failed)
            return kFailed;
        if (!established_)
            return kWantRead;
    }
    size_t filled = 0;
    while (filled < capacity) {
        int rc = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(buf + filled),
                                  capacity - filled);
        if (rc > 0) {
            filled += static_cast<size_t>(rc);
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (filled > 0) {
            // Hand over what was decrypted; the end comes with the next call. An
            // alert or close_notify is consumed already, so keep it until then.
            pending_end_ = rc;
            break;
        }
        return endOfInput(rc);
    }
    if (filled == 0 && pending_end_ != 0) {
        int rc = pending_end_;
        pending_end_ = 0;
        return endOfInput(rc);
    }
    return static_cast<long>(filled);
}

long TlsSession::endOfInput(int rc) {
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
        return kPeerClosed;
    error_ = {502, "tls_protocol_error", key_.host + ": " + mbedtlsError(rc)};
    return kFailed;
}

bool TlsSession::hasPendingInput() const {
    return stash_pos_ < stash_.size() || pending_end_ != 0 ||
           mbedtls_ssl_get_bytes_avail(&ssl_) > 0 || mbedtls_ssl_check_pending(&ssl_) != 0;
}

int TlsSession::writeEarly(std::string_view data) {
    // What mbedtls_ssl_write does once the handshake is over, which it insists on
    // (it would wait for the origin's Finished): records under the keys our Finished
    // was sent with.
    constexpr uint8_t kForceFlush = 1;
    int max = mbedtls_ssl_get_max_out_record_payload(&ssl_);
    if (max <= 0) {
        error_ = {502, "tls_protocol_error", key_.host + ": " + mbedtlsError(max)};
        return UV_EPROTO;
    }
    for (size_t offset = 0; offset < data.size();) {
        size_t n = std::min(data.size() - offset, static_cast<size_t>(max));
        ssl_.out_msgtype = MBEDTLS_SSL_MSG_APPLICATION_DATA;
        ssl_.out_msglen = n;
        std::memcpy(ssl_.out_msg, data.data() + offset, n);
        int rc = mbedtls_ssl_write_record(&ssl_, kForceFlush);
        if (send_error_ != 0)
            return send_error_;
        if (rc != 0) {
            error_ = {502, "tls_protocol_error", key_.host + ": " + mbedtlsError(rc)};
            return UV_EPROTO;
        }
        offset += n;
    }
    return 0;
}

int TlsSession::write(std::string_view data) {
    if (!established_)
        return false_started_ ? writeEarly(data) : UV_ENOTCONN;
    size_t offset = 0;
    while (offset < data.size()) {
        int rc = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data.data()) + offset,
                                   data.size() - offset);
        if (send_error_ != 0)
            return send_error_;
        if (rc > 0) {
            offset += static_cast<size_t>(rc);
            continue;
        }
        // The transport takes every byte, so WANT_WRITE cannot happen; anything else is fatal.
        error_ = {502, "tls_protocol_error", key_.host + ": " + mbedtlsError(rc)};
        return UV_EPROTO;
    }
    return 0;
}

void TlsSession::closeNotify() {
    if (!established_ || close_notify_sent_ || send_error_ != 0)
        return;
    close_notify_sent_ = true;
    mbedtls_ssl_close_notify(&ssl_);
}

} // namespace pooled
