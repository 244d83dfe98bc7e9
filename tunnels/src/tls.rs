//! TLS for the links: TLS 1.3 only, ALPN `causeway/1`, both sides authenticated against
//! the node CA, with certificates and trust that reload without dropping links.
//!
//! The rustls configurations handed to quinn never change; they consult a shared,
//! swappable [`Material`] on every handshake. A reload swaps the material: new
//! handshakes use it, established links carry on. Every refused peer certificate is
//! logged with the reason and counted.
//!
//! This module builds TLS configuration; it opens no socket.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};

use crate::identity::{
    IdentityError, IdentityFiles, LoadedIdentity, NodeName, PeerIdentity, peer_identity,
};
use crate::metrics::TunnelMetrics;

/// The ALPN protocol of Causeway links.
pub const ALPN: &[u8] = b"causeway/1";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The identity could not be read or is not usable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rustls refused the material.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// The trusted CA set could not be used.
    #[error("cannot build certificate verification from the CA file: {0}")]
    Verifier(String),
    /// quinn refused the TLS configuration.
    #[error("QUIC TLS setup failed: {0}")]
    Quic(String),
}

/// One version of a node's TLS material.
struct Material {
    certified: Arc<CertifiedKey>,
    server_verifier: Arc<WebPkiServerVerifier>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    identity: PeerIdentity,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// State shared by the configurations and the owner.
#[derive(Debug)]
struct Shared {
    material: ArcSwap<Material>,
    metrics: Arc<TunnelMetrics>,
    provider: Arc<CryptoProvider>,
}

impl Shared {
    /// Handshake signatures are checked the same way on both sides, by the provider.
    fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A node's TLS identity: what it presents and whom it trusts, reloadable.
#[derive(Debug)]
pub struct TlsIdentity {
    shared: Arc<Shared>,
    files: Option<IdentityFiles>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsIdentity {
    /// Reads the identity files; [`TlsIdentity::reload`] reads them again later.
    pub fn load(files: &IdentityFiles, metrics: Arc<TunnelMetrics>) -> Result<Self, TlsError> {
        let loaded = LoadedIdentity::load(files)?;
        let mut identity = Self::from_loaded(loaded, metrics)?;
        identity.files = Some(files.clone());
        Ok(identity)
    }

    /// An identity from material already read.
    pub fn from_loaded(
        loaded: LoadedIdentity,
        metrics: Arc<TunnelMetrics>,
    ) -> Result<Self, TlsError> {
        let provider = provider();
        let material = build_material(loaded, &provider)?;
        Ok(Self {
            shared: Arc::new(Shared {
                material: ArcSwap::from_pointee(material),
                metrics,
                provider,
            }),
            files: None,
        })
    }

    /// The files the identity was read from, if any.
    pub fn files(&self) -> Option<&IdentityFiles> {
        self.files.as_ref()
    }

    /// Who this node is, by its current certificate.
    pub fn identity(&self) -> PeerIdentity {
        self.shared.material.load().identity.clone()
    }

    /// Reads the identity files again and swaps the material in. On any error the current
    /// material stays in force. Established links are not touched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        self.replace(LoadedIdentity::load(files)?)
    }

    /// Swaps in new material (for a node that was issued a new certificate).
    pub fn replace(&self, loaded: LoadedIdentity) -> Result<(), TlsError> {
        let material = build_material(loaded, &self.shared.provider)?;
        let current = self.identity();
        if material.identity.node != current.node {
            return Err(IdentityError::NotANodeCertificate(format!(
                "the new certificate names node `{}`, but this node is `{}`",
                material.identity.node, current.node
            ))
            .into());
        }
        self.shared.material.store(Arc::new(material));
        Ok(())
    }

    /// The server side of QUIC TLS.
    pub fn quic_server_config(&self) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
        let verifier = Arc::new(ClientVerifier {
            shared: Arc::clone(&self.shared),
        });
        let resolver = Arc::new(Resolver {
            shared: Arc::clone(&self.shared),
        });
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::clone(&self.shared.provider))
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(resolver);
        config.alpn_protocols = vec![ALPN.to_vec()];
        // No resumption: a resumed TLS 1.3 handshake presents no certificate, so it would
        // skip the checks a reload or an expiry must apply to every new link.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        quinn::crypto::rustls::QuicServerConfig::try_from(config)
            .map_err(|e| TlsError::Quic(e.to_string()))
    }

    /// The client side of QUIC TLS. The server name of each dial is the node dialled; the
    /// handshake fails unless the peer's certificate names it.
    pub fn quic_client_config(&self) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
        let verifier = Arc::new(ServerVerifier {
            shared: Arc::clone(&self.shared),
        });
        let resolver = Arc::new(Resolver {
            shared: Arc::clone(&self.shared),
        });
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::clone(&self.shared.provider))
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(resolver);
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(config))
            .map_err(|e| TlsError::Quic(e.to_string()))
    }
}

/// The server name a dialler verifies: the node's name.
pub fn server_name(node: &NodeName) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(node.as_str().to_string())
        .map_err(|e| TlsError::Verifier(format!("node name `{node}` is not a server name: {e}")))
}

/// Who the peer of an established connection is, by the certificate it presented.
pub fn connection_peer(connection: &quinn::Connection) -> Result<PeerIdentity, IdentityError> {
    let certificates = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| {
            IdentityError::NotANodeCertificate("the peer presented no certificate".into())
        })?;
    let first = certificates.first().ok_or_else(|| {
        IdentityError::NotANodeCertificate("the peer presented no certificate".into())
    })?;
    peer_identity(first)
}

fn build_material(
    loaded: LoadedIdentity,
    provider: &Arc<CryptoProvider>,
) -> Result<Material, TlsError> {
    let mut roots = RootCertStore::empty();
    for root in &loaded.roots {
        roots
            .add(root.clone())
            .map_err(|e| TlsError::Verifier(format!("unusable CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider))
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let certified = CertifiedKey::from_der(loaded.chain.clone(), loaded.key, provider)?;
    // The node's own certificate must chain to the CA it trusts, or no peer will accept
    // it; an expired one is only warned about, since a renewal may be on its way.
    let name = server_name(&loaded.identity.node)?;
    match server_verifier.verify_server_cert(
        &loaded.chain[0],
        &loaded.chain[1..],
        &name,
        &[],
        UnixTime::now(),
    ) {
        Ok(_) => {}
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => {
            tracing::warn!(node = %loaded.identity.node, "this node's certificate is expired or not yet valid; peers will refuse it");
        }
        Err(e) => return Err(IdentityError::Untrusted(e.to_string()).into()),
    }
    Ok(Material {
        certified: Arc::new(certified),
        server_verifier,
        client_verifier,
        identity: loaded.identity,
    })
}

impl Shared {
    /// Counts and logs a refused peer certificate.
    fn refused(
        &self,
        error: &rustls::Error,
        side: &'static str,
        expected: Option<&ServerName<'_>>,
    ) {
        let counter = match error {
            rustls::Error::InvalidCertificate(e) => match e {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => &self.metrics.rejected_expired,
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    &self.metrics.rejected_unknown_ca
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    &self.metrics.rejected_wrong_node
                }
                _ => &self.metrics.rejected_bad_certificate,
            },
            _ => &self.metrics.rejected_bad_certificate,
        };
        TunnelMetrics::inc(counter);
        match expected {
            Some(name) => {
                tracing::warn!(peer = ?name, side, reason = %error, "refused the certificate of the node dialled")
            }
            None => {
                tracing::warn!(side, reason = %error, "refused the certificate of a connecting node")
            }
        }
    }
}

/// Presents the current certificate, as server and as client.
#[derive(Debug)]
struct Resolver {
    shared: Arc<Shared>,
}

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.shared.material.load().certified))
    }
}

impl rustls::client::ResolvesClientCert for Resolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.shared.material.load().certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The dialler's check of the node it reached: chain to the CA, validity, and the name.
#[derive(Debug)]
struct ServerVerifier {
    shared: Arc<Shared>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let material = self.shared.material.load();
        material
            .server_verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .inspect_err(|e| self.shared.refused(e, "dialler", Some(server_name)))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.shared.schemes()
    }
}

/// The acceptor's check of a connecting node: chain to the CA and validity. Its name is
/// read from the certificate afterwards and handed to the layers above.
#[derive(Debug)]
struct ClientVerifier {
    shared: Arc<Shared>,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; nodes have one certificate to offer anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let material = self.shared.material.load();
        material
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| self.shared.refused(e, "acceptor", None))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.shared.schemes()
    }
}
