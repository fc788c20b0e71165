//! TLS for the downloader: the `rustls` client configuration every HTTPS connection
//! uses (direct or through a `CONNECT` tunnel), built from Scrapy's
//! `DOWNLOADER_CLIENT_TLS_*` settings, and the server certificates seen in handshakes.
//!
//! Settings:
//! - `DOWNLOADER_CLIENT_TLS_VERIFY` (default `false`, Scrapy's behaviour): when off, any
//!   server certificate is accepted (expired, self-signed, wrong name); the handshake
//!   signatures are still checked against the certificate's key, as OpenSSL does with
//!   `VERIFY_NONE`. When on, the chain is verified against the Mozilla root store
//!   (the `webpki-roots` crate, so no system certificates are needed) plus the PEM
//!   certificates of `DOWNLOADER_CLIENT_TLS_CA_FILE`, and the name is checked.
//! - `DOWNLOADER_CLIENT_TLS_CA_FILE` (default empty): extra trusted CAs, PEM. Only read
//!   when verifying; a file that cannot be read or holds no certificate is a
//!   configuration error.
//! - `DOWNLOADER_CLIENT_TLS_METHOD` (default `TLS`): `TLS` negotiates TLS 1.2 or 1.3;
//!   `TLSv1.2` and `TLSv1.3` force one version. Scrapy's `TLSv1.0`, `TLSv1.1` and
//!   `SSLv3` are refused: rustls does not implement them.
//! - `DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING` (default `false`): log (debug) each server
//!   certificate and the TLS version and signature scheme of each handshake. The cipher
//!   suite is not logged: the HTTP client does not expose the connection.
//! - `DOWNLOADER_HTTP2_ENABLED` (default `true`): offer `h2` and `http/1.1` by ALPN;
//!   when `false` only `http/1.1` is offered, which forces HTTP/1.1.
//!
//! SNI is always sent for host names (rustls does it); an IP-address target gets none,
//! as RFC 6066 requires.
//!
//! Certificates: the HTTP client never hands out the connection, so the verifier
//! records the end-entity certificate of every handshake in a [`CertificateStore`],
//! keyed by server name, and the download slot attaches it to HTTPS responses as
//! [`Response::certificate`](crate::http::Response). The caveat: it is the certificate
//! most recently presented by that *host name*, not necessarily by the connection that
//! carried the response (a host serving different certificates on different
//! connections, or ports, shows the latest one). Resumed TLS sessions skip
//! verification and keep the certificate recorded at the full handshake. The store is
//! bounded ([`CertificateStore::CAPACITY`] hosts, oldest evicted first).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{ConfigError, DownloadError};
use crate::settings::Settings;

/// Details of a server certificate (the end-entity one), as
/// [`Response::certificate`](crate::http::Response) carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's distinguished name, RFC 4514 style (`CN=example.com, O=Example`).
    pub subject: String,
    /// The issuer's distinguished name, same format.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity (expiry).
    pub not_after: SystemTime,
    /// The DNS names and IP addresses of the subjectAltName extension.
    pub subject_alt_names: Vec<String>,
    /// The certificate, DER-encoded.
    pub der: Bytes,
}

impl fmt::Debug for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateInfo")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("subject_alt_names", &self.subject_alt_names)
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl CertificateInfo {
    /// Parses a DER certificate; `None` when it is not a parsable X.509 certificate.
    pub fn from_der(der: &[u8]) -> Option<CertificateInfo> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            }
        };
        let validity = cert.validity();
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => subject_alt_names.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            subject_alt_names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(validity.not_before),
            not_after: time(validity.not_after),
            subject_alt_names,
            der: Bytes::copy_from_slice(der),
        })
    }
}

/// The end-entity certificates seen in TLS handshakes, by server name (see the module
/// documentation for the caveat). Shared by every client built from one configuration.
#[derive(Default)]
pub struct CertificateStore {
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    by_host: HashMap<String, Arc<CertificateInfo>>,
    order: VecDeque<String>,
}

impl fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.inner.lock().map(|i| i.by_host.len()).unwrap_or(0);
        f.debug_struct("CertificateStore")
            .field("hosts", &len)
            .finish()
    }
}

impl CertificateStore {
    /// Most hosts remembered; the oldest entry is evicted first.
    pub const CAPACITY: usize = 10_000;

    /// The certificate last recorded for `host` (a URL host: a name, or an IP address
    /// with or without IPv6 brackets).
    pub fn get(&self, host: &str) -> Option<Arc<CertificateInfo>> {
        let key = host_key(host);
        self.inner.lock().ok()?.by_host.get(&key).cloned()
    }

    /// How many hosts have a certificate.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.by_host.len()).unwrap_or(0)
    }

    /// No certificate recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `der` for `host`; returns the details (parsed once per new certificate).
    fn record(&self, host: String, der: &[u8]) -> Option<Arc<CertificateInfo>> {
        if let Ok(inner) = self.inner.lock() {
            if let Some(known) = inner.by_host.get(&host) {
                if known.der.as_ref() == der {
                    return Some(known.clone());
                }
            }
        }
        let info = Arc::new(CertificateInfo::from_der(der)?);
        let mut inner = self.inner.lock().ok()?;
        if inner.by_host.insert(host.clone(), info.clone()).is_none() {
            inner.order.push_back(host);
            while inner.by_host.len() > Self::CAPACITY {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.by_host.remove(&old);
                    }
                    None => break,
                }
            }
        }
        Some(info)
    }
}

/// The store key of a URL host: lower case, IPv6 without brackets, IPs normalised.
fn host_key(host: &str) -> String {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// The store key of a TLS server name.
fn server_name_key(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => host_key(d.as_ref()),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => host_key(&other.to_str()),
    }
}

/// The TLS configuration of the downloader's clients.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The rustls configuration, shared by every HTTPS connection (direct or tunnelled).
    pub config: Arc<ClientConfig>,
    /// Where handshakes record server certificates.
    pub certificates: Arc<CertificateStore>,
}

impl TlsSetup {
    /// Builds the configuration from the `DOWNLOADER_CLIENT_TLS_*` and
    /// `DOWNLOADER_HTTP2_ENABLED` settings (see the module documentation).
    pub fn from_settings(settings: &Settings) -> Result<TlsSetup, ConfigError> {
        let verify = settings.get_bool("DOWNLOADER_CLIENT_TLS_VERIFY")?;
        let verbose = settings.get_bool("DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING")?;
        let http2 = settings.get_bool("DOWNLOADER_HTTP2_ENABLED")?;
        let method = settings.get_str("DOWNLOADER_CLIENT_TLS_METHOD");
        let versions = protocol_versions(&method)?;
        let ca_file = settings.get_str("DOWNLOADER_CLIENT_TLS_CA_FILE");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = Arc::new(CertificateStore::default());
        let inner: Arc<dyn ServerCertVerifier> = if verify {
            let roots = root_store(ca_file.trim())?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ConfigError::Invalid(format!("DOWNLOADER_CLIENT_TLS_VERIFY: {e}")))?
        } else {
            if !ca_file.trim().is_empty() {
                log::debug!(
                    "DOWNLOADER_CLIENT_TLS_CA_FILE is ignored: DOWNLOADER_CLIENT_TLS_VERIFY is off"
                );
            }
            Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            })
        };
        let verifier = Arc::new(RecordingVerifier {
            inner,
            store: certificates.clone(),
            verbose,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| ConfigError::Invalid(format!("DOWNLOADER_CLIENT_TLS_METHOD: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(TlsSetup {
            config: Arc::new(config),
            certificates,
        })
    }
}

/// Scrapy's `DOWNLOADER_CLIENT_TLS_METHOD` values that rustls can honour.
fn protocol_versions(
    method: &str,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], ConfigError> {
    static ALL: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static V12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    static V13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match method.trim().to_ascii_lowercase().as_str() {
        "tls" => Ok(ALL),
        "tlsv1.2" => Ok(V12),
        "tlsv1.3" => Ok(V13),
        _ => Err(ConfigError::InvalidValue {
            key: "DOWNLOADER_CLIENT_TLS_METHOD".into(),
            value: method.to_string(),
            expected: "one of TLS, TLSv1.2, TLSv1.3 (rustls implements no TLS 1.0, 1.1 or SSLv3)",
        }),
    }
}

/// The Mozilla roots plus the certificates of `ca_file` (when not empty).
fn root_store(ca_file: &str) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if ca_file.is_empty() {
        return Ok(roots);
    }
    let bad = |reason: String| {
        ConfigError::Invalid(format!(
            "DOWNLOADER_CLIENT_TLS_CA_FILE: cannot use {ca_file:?}: {reason}"
        ))
    };
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(roots)
}

/// Scrapy's default: any certificate is accepted; handshake signatures are still
/// checked against the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Wraps the real verifier and records each accepted end-entity certificate.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    store: Arc<CertificateStore>,
    verbose: bool,
}

impl RecordingVerifier {
    fn log_signature(&self, version: &str, cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) {
        if self.verbose {
            let subject = CertificateInfo::from_der(cert)
                .map(|c| c.subject)
                .unwrap_or_default();
            log::debug!(
                "TLS handshake: {version}, signature scheme {:?}, certificate subject {subject:?}",
                dss.scheme
            );
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match &verified {
            Ok(_) => {
                let host = server_name_key(server_name);
                let info = self.store.record(host.clone(), end_entity);
                if self.verbose {
                    match info {
                        Some(c) => log::debug!(
                            "TLS certificate of {host}: subject {:?}, issuer {:?}, valid {:?} to {:?}",
                            c.subject,
                            c.issuer,
                            c.not_before,
                            c.not_after
                        ),
                        None => log::debug!("TLS certificate of {host}: not parsable X.509"),
                    }
                }
            }
            Err(e) if self.verbose => {
                log::debug!(
                    "TLS certificate of {} refused: {e}",
                    server_name_key(server_name)
                )
            }
            Err(_) => {}
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.log_signature("TLSv1.2", cert, dss);
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.log_signature("TLSv1.3", cert, dss);
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Classifies an I/O error from a TLS connection attempt to `host`: a certificate the
/// verifier refused → [`DownloadError::TlsCertificate`]; any other rustls failure
/// (alert, protocol, no common version or cipher, bad server name) or the peer closing
/// mid-handshake → [`DownloadError::TlsHandshake`]. `None` when it is not a TLS error
/// (refused, reset before TLS, ...).
pub fn classify_io_error(io: &io::Error, host: &str) -> Option<DownloadError> {
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return Some(classify_rustls_error(tls, host));
    }
    let text = io.to_string();
    let handshake = (io.kind() == io::ErrorKind::UnexpectedEof && text.contains("tls handshake"))
        // actix-tls: the host is not a valid TLS server name.
        || (io.kind() == io::ErrorKind::InvalidInput && text.contains("server name"));
    handshake.then(|| DownloadError::TlsHandshake {
        host: host.to_string(),
        reason: text,
    })
}

/// A rustls error as a download error (see [`classify_io_error`]).
pub fn classify_rustls_error(e: &rustls::Error, host: &str) -> DownloadError {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            DownloadError::TlsCertificate {
                host: host.to_string(),
                reason: e.to_string(),
            }
        }
        _ => DownloadError::TlsHandshake {
            host: host.to_string(),
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scrapy's method names map to rustls versions; the ones rustls lacks are refused
    /// with an error naming the setting.
    #[test]
    fn tls_method_values() {
        assert_eq!(protocol_versions("TLS").unwrap().len(), 2);
        assert_eq!(
            protocol_versions("TLSv1.2").unwrap()[0].version,
            rustls::ProtocolVersion::TLSv1_2
        );
        assert_eq!(
            protocol_versions("tlsv1.3").unwrap()[0].version,
            rustls::ProtocolVersion::TLSv1_3
        );
        for bad in ["TLSv1.0", "TLSv1.1", "SSLv3", "nonsense"] {
            let err = protocol_versions(bad).unwrap_err().to_string();
            assert!(err.contains("DOWNLOADER_CLIENT_TLS_METHOD"), "{err}");
        }
    }

    /// ALPN follows DOWNLOADER_HTTP2_ENABLED; a missing CA file is a config error
    /// naming the key, but only when verifying.
    #[test]
    fn config_from_settings() {
        let mut s = Settings::new();
        let p = crate::settings::Priority::Project;
        let setup = TlsSetup::from_settings(&s).unwrap();
        assert_eq!(
            setup.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        s.set("DOWNLOADER_HTTP2_ENABLED", false, p);
        let setup = TlsSetup::from_settings(&s).unwrap();
        assert_eq!(setup.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        s.set("DOWNLOADER_CLIENT_TLS_CA_FILE", "/nonexistent/ca.pem", p);
        assert!(TlsSetup::from_settings(&s).is_ok());
        s.set("DOWNLOADER_CLIENT_TLS_VERIFY", true, p);
        let err = TlsSetup::from_settings(&s).unwrap_err().to_string();
        assert!(err.contains("DOWNLOADER_CLIENT_TLS_CA_FILE"), "{err}");
        s.set("DOWNLOADER_CLIENT_TLS_CA_FILE", "", p);
        assert!(TlsSetup::from_settings(&s).is_ok());
    }

    /// Host keys are case-insensitive and bracket-insensitive for IPv6; the store
    /// evicts the oldest host past its capacity.
    #[test]
    fn store_keys_and_bound() {
        assert_eq!(host_key("Example.COM"), "example.com");
        assert_eq!(host_key("[::1]"), "::1");
        assert_eq!(host_key("127.0.0.1"), "127.0.0.1");
        let cert = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        let der = cert.cert.der().to_vec();
        let store = CertificateStore::default();
        let info = store.record("a.test".into(), &der).unwrap();
        assert!(info.subject.contains("CN="), "{}", info.subject);
        assert_eq!(info.subject_alt_names, vec!["a.test".to_string()]);
        assert!(info.not_after > info.not_before);
        assert!(store.get("A.TEST").is_some());
        assert!(store.record("junk".into(), b"not a certificate").is_none());
        for i in 0..CertificateStore::CAPACITY {
            store.record(format!("h{i}"), &der);
        }
        assert_eq!(store.len(), CertificateStore::CAPACITY);
        assert!(store.get("a.test").is_none());
        assert!(store.get("h0").is_some());
    }
}
