//! Node identities: who a node is, proven by a certificate from the cluster's node CA.
//!
//! A node certificate names its node in a DNS subject-alternative name (what a dialler
//! checks it reached) and carries a URI SAN `spiffe://causeway/site/<site>/node/<node>`
//! with its site. Keys are generated per node — never derived from the node's name, which
//! anyone can know (EdgeMesh's md5(nodeName) mistake).
//!
//! This module makes and reads certificates and PEM files; TLS configuration lives in
//! `tls`, and nothing here opens a socket.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The URI SAN prefix of node certificates.
pub const URI_PREFIX: &str = "spiffe://causeway/site/";

/// Why an identity could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A PEM file holds no certificate.
    #[error("{path}: no CERTIFICATE block found; expected a PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key, or one that cannot be read.
    #[error("{path}: no usable private key found (PKCS#8, SEC1 or PKCS#1 PEM expected): {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A node name that is not a DNS-1123 subdomain usable as a TLS name.
    #[error(
        "`{0}` is not a valid node name (lowercase letters, digits, '-' and '.', at most 253, not an IP address, not ending in an all-digit label)"
    )]
    InvalidNodeName(String),
    /// A site name that is not a DNS-1123 label.
    #[error("`{0}` is not a valid site name (lowercase letters, digits and '-', at most 63)")]
    InvalidSiteName(String),
    /// A certificate that does not name a node the way ours do.
    #[error("not a Causeway node certificate: {0}")]
    NotANodeCertificate(String),
    /// The node's own certificate is not trusted by the CA it is configured with.
    #[error("the node certificate is not signed by the configured CA: {0}")]
    Untrusted(String),
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A node's name, as in its Kubernetes Node object: a DNS-1123 subdomain. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// Validates and wraps a node name. It must be a DNS-1123 subdomain that TLS can
    /// check as a DNS name too: not an IP address, and not ending in an all-numeric label
    /// (`10.0.0.1` and `node.123` are refused).
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        let tls_name = rustls::pki_types::DnsName::try_from(name).is_ok()
            && name.parse::<std::net::IpAddr>().is_err();
        if is_dns_subdomain(name) && tls_name {
            Ok(Self(Arc::from(name)))
        } else {
            Err(IdentityError::InvalidNodeName(name.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for NodeName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Who a peer proved to be during the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The node named by the certificate's DNS SAN.
    pub node: NodeName,
    /// The site from the URI SAN, when present.
    pub site: Option<String>,
}

/// Reads the identity a node certificate claims (the chain is verified elsewhere).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::NotANodeCertificate(format!("unparseable certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::NotANodeCertificate(format!("bad SAN extension: {e}")))?
        .ok_or_else(|| IdentityError::NotANodeCertificate("no subject alternative name".into()))?;
    let mut dns = Vec::new();
    let mut site = None;
    for name in &san.value.general_names {
        match name {
            x509_parser::extensions::GeneralName::DNSName(d) => dns.push(*d),
            x509_parser::extensions::GeneralName::URI(uri) => {
                if let Some(rest) = uri.strip_prefix(URI_PREFIX)
                    && let Some((s, _node)) = rest.split_once("/node/")
                {
                    site = Some(s.to_string());
                }
            }
            _ => {}
        }
    }
    let [node] = dns.as_slice() else {
        return Err(IdentityError::NotANodeCertificate(format!(
            "expected exactly one DNS name, found {}",
            dns.len()
        )));
    };
    Ok(PeerIdentity {
        node: NodeName::new(node)?,
        site,
    })
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// First moment of validity.
    pub not_before: SystemTime,
    /// Last moment of validity.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clock skew between nodes) for `lifetime`.
    pub fn starting_now(lifetime: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now + lifetime,
        }
    }
}

fn offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// The cluster's node certificate authority.
#[derive(Debug)]
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A new CA (ECDSA P-256), valid for ten years.
    pub fn generate() -> Result<Self, IdentityError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Causeway node CA");
        dn.push(DnType::OrganizationName, "Causeway");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let validity = Validity::starting_now(Duration::from_secs(10 * 365 * 24 * 3600));
        params.not_before = offset(validity.not_before);
        params.not_after = offset(validity.not_after);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM. Keep it on the control plane only.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `node` of `site`, with a fresh key.
    pub fn issue(
        &self,
        node: &NodeName,
        site: &str,
        validity: Validity,
    ) -> Result<NodeCredentials, IdentityError> {
        if !is_dns_label(site) {
            return Err(IdentityError::InvalidSiteName(site.to_string()));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node.as_str());
        dn.push(DnType::OrganizationalUnitName, site);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName(node.as_str().try_into()?),
            SanType::URI(format!("{URI_PREFIX}{site}/node/{node}").try_into()?),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = offset(validity.not_before);
        params.not_after = offset(validity.not_after);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCredentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }
}

/// A node's certificate, key and the CA that signed it, as PEM.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The node certificate (chain), PEM.
    pub cert_pem: String,
    /// The node key, PEM.
    pub key_pem: String,
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

impl NodeCredentials {
    /// Writes the three files (the key readable by the owner only).
    pub fn write(&self, files: &IdentityFiles) -> Result<(), IdentityError> {
        write_file(&files.ca, &self.ca_pem, 0o644)?;
        write_file(&files.cert, &self.cert_pem, 0o644)?;
        write_file(&files.key, &self.key_pem, 0o600)?;
        Ok(())
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Where a node keeps its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The CA certificate(s) it trusts.
    pub ca: PathBuf,
    /// Its certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl IdentityFiles {
    /// `ca.pem`, `node.pem` and `node-key.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node-key.pem"),
        }
    }
}

/// An identity read from PEM: trusted roots, own chain and key, and who the chain says
/// this node is.
#[derive(Debug)]
pub struct LoadedIdentity {
    /// CA certificates to trust.
    pub roots: Vec<CertificateDer<'static>>,
    /// Own certificate chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Own private key.
    pub key: PrivateKeyDer<'static>,
    /// Who the own certificate names.
    pub identity: PeerIdentity,
}

impl LoadedIdentity {
    /// Reads the three files.
    pub fn load(files: &IdentityFiles) -> Result<Self, IdentityError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| IdentityError::Io {
                path: path.clone(),
                source,
            })
        };
        Self::from_pem(
            (&files.ca, &read(&files.ca)?),
            (&files.cert, &read(&files.cert)?),
            (&files.key, &read(&files.key)?),
        )
    }

    /// Reads PEM already in memory; each part is named by the path it came from, for
    /// errors.
    pub fn from_pem(
        ca: (&Path, &[u8]),
        cert: (&Path, &[u8]),
        key: (&Path, &[u8]),
    ) -> Result<Self, IdentityError> {
        let roots = certificates(ca.0, ca.1)?;
        let chain = certificates(cert.0, cert.1)?;
        let private_key =
            PrivateKeyDer::from_pem_slice(key.1).map_err(|e| IdentityError::BadKey {
                path: key.0.to_path_buf(),
                reason: e.to_string(),
            })?;
        let identity = peer_identity(&chain[0])?;
        Ok(Self {
            roots,
            chain,
            key: private_key,
            identity,
        })
    }
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(IdentityError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_dns_subdomains() {
        assert!(NodeName::new("edge-1").is_ok());
        assert!(NodeName::new("edge-1.factory.example").is_ok());
        assert!(NodeName::new("Edge").is_err());
        assert!(NodeName::new("").is_err());
        assert!(NodeName::new("a..b").is_err());
        assert!(NodeName::new("-a").is_err());
        // Names TLS cannot check as DNS names.
        assert!(NodeName::new("10.0.0.1").is_err());
        assert!(NodeName::new("node.123").is_err());
        assert!(NodeName::new("123").is_err());
        assert!(NodeName::new("node-1.site-2").is_ok());
    }

    #[test]
    fn issued_certificates_name_node_and_site() {
        let ca = CertificateAuthority::generate().unwrap();
        let node = NodeName::new("edge-1").unwrap();
        let creds = ca
            .issue(
                &node,
                "factory-a",
                Validity::starting_now(Duration::from_secs(3600)),
            )
            .unwrap();
        let loaded = LoadedIdentity::from_pem(
            (Path::new("ca.pem"), creds.ca_pem.as_bytes()),
            (Path::new("node.pem"), creds.cert_pem.as_bytes()),
            (Path::new("node-key.pem"), creds.key_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(loaded.identity.node, node);
        assert_eq!(loaded.identity.site.as_deref(), Some("factory-a"));
        assert!(
            ca.issue(
                &node,
                "Bad Site",
                Validity::starting_now(Duration::from_secs(1))
            )
            .is_err()
        );
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_too() {
        let ca = CertificateAuthority::generate().unwrap();
        let again = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let creds = again
            .issue(
                &NodeName::new("n").unwrap(),
                "s",
                Validity::starting_now(Duration::from_secs(60)),
            )
            .unwrap();
        assert!(creds.cert_pem.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn bad_pem_is_refused_with_the_file_named() {
        let err = LoadedIdentity::from_pem(
            (Path::new("/etc/causeway/ca.pem"), b"not pem"),
            (Path::new("node.pem"), b""),
            (Path::new("key.pem"), b""),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/causeway/ca.pem: no CERTIFICATE block found; expected a PEM certificate"
        );
    }
}
