//! Both sides of every link are authenticated: certificates from another CA, expired
//! ones, and a node answering for another node's name are refused, logged and counted;
//! certificates reload without dropping links.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use causeway_tunnels::{
    CertificateAuthority, IdentityFiles, IdentitySource, LoadedIdentity, OpenError, Tunnel,
    Validity,
};
use support::*;

#[tokio::test]
async fn a_node_from_another_ca_is_refused_both_ways() {
    let cluster = Cluster::new();
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);

    // X trusts only its own CA: it refuses B's certificate.
    let other = CertificateAuthority::generate().unwrap();
    let (x, _x_in) = Tunnel::bind(
        config(),
        IdentitySource::Loaded(identity(&other, "edge-x", "site-x")),
        cluster.directory.clone(),
    )
    .await
    .unwrap();
    let error = x.link(&name("edge-b")).await.unwrap_err();
    assert!(matches!(error, OpenError::Unreachable { .. }), "{error}");
    assert_eq!(x.metrics().rejected_unknown_ca, 1);

    // Y trusts B's CA too, but its own certificate is from the other CA: B refuses it.
    let mut y_identity = identity(&other, "edge-y", "site-x");
    y_identity
        .roots
        .extend(identity(&cluster.ca, "unused", "s").roots);
    let (y, _y_in) = Tunnel::bind(
        config(),
        IdentitySource::Loaded(y_identity),
        cluster.directory.clone(),
    )
    .await
    .unwrap();
    assert!(y.link(&name("edge-b")).await.is_err());
    eventually(Duration::from_secs(2), "b counts the refusal", || {
        b.metrics().rejected_unknown_ca == 1
    })
    .await;
    assert!(b.health(&name("edge-y")).is_empty());
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let cluster = Cluster::new();
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let now = SystemTime::now();
    let expired = Validity {
        not_before: now - Duration::from_secs(7200),
        not_after: now - Duration::from_secs(3600),
    };
    let (z, _z_in) = Tunnel::bind(
        config(),
        IdentitySource::Loaded(identity_with(&cluster.ca, "edge-z", "site-a", expired)),
        cluster.directory.clone(),
    )
    .await
    .expect("an expired identity still starts, with a warning");
    assert!(z.link(&name("edge-b")).await.is_err());
    eventually(
        Duration::from_secs(2),
        "b counts the expired certificate",
        || b.metrics().rejected_expired == 1,
    )
    .await;
}

#[tokio::test]
async fn a_node_answering_for_another_name_is_refused() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    // The directory (stale, or poisoned) sends edge-c's traffic to edge-b's address.
    cluster.directory.set(&name("edge-c"), vec![b.local_addr()]);
    let error = a.link(&name("edge-c")).await.unwrap_err();
    assert!(error.to_string().contains("edge-c"), "{error}");
    assert_eq!(a.metrics().rejected_wrong_node, 1);
    assert!(a.health(&name("edge-c")).is_empty());
    assert!(a.health(&name("edge-b")).is_empty());
}

#[tokio::test]
async fn certificates_reload_without_dropping_links() {
    let dir = std::env::temp_dir().join(format!("causeway-tunnel-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = Cluster::new();
    let files = IdentityFiles::in_dir(&dir);
    cluster
        .ca
        .issue(
            &name("edge-b"),
            "site-one",
            Validity::starting_now(Duration::from_secs(3600)),
        )
        .unwrap()
        .write(&files)
        .unwrap();
    let (b, b_in) = Tunnel::bind(
        config(),
        IdentitySource::Files(files.clone()),
        cluster.directory.clone(),
    )
    .await
    .unwrap();
    cluster.directory.set(&name("edge-b"), vec![b.local_addr()]);
    serve(b_in);
    let (a, _a_in) = cluster.node("edge-a").await;
    let echo = tcp_echo().await;
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, b"before").await,
        b"before"
    );
    let link = a.link(&name("edge-b")).await.unwrap();
    assert_eq!(link.peer().site.as_deref(), Some("site-one"));

    // A new certificate (the node moved site) lands on disk and is reloaded.
    cluster
        .ca
        .issue(
            &name("edge-b"),
            "site-two",
            Validity::starting_now(Duration::from_secs(3600)),
        )
        .unwrap()
        .write(&files)
        .unwrap();
    b.reload_identity().expect("reload");
    // The existing link carries on...
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, b"after").await,
        b"after"
    );
    assert_eq!(a.metrics().links_established, 1);
    assert!(link.is_up());
    // ...and new handshakes see the new certificate.
    let (c, _c_in) = cluster.node("edge-c").await;
    let new_link = c.link(&name("edge-b")).await.unwrap();
    assert_eq!(new_link.peer().site.as_deref(), Some("site-two"));

    // A broken file is refused and the current certificate stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let error = b.reload_identity().unwrap_err();
    assert!(
        error.to_string().contains("no CERTIFICATE block"),
        "{error}"
    );
    let (d, _d_in) = cluster.node("edge-d").await;
    assert!(d.link(&name("edge-b")).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn identity_files_that_do_not_match_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("causeway-tunnel-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = CertificateAuthority::generate().unwrap();
    let files = IdentityFiles::in_dir(&dir);
    let first = ca
        .issue(
            &name("n1"),
            "s",
            Validity::starting_now(Duration::from_secs(60)),
        )
        .unwrap();
    let second = ca
        .issue(
            &name("n1"),
            "s",
            Validity::starting_now(Duration::from_secs(60)),
        )
        .unwrap();
    first.write(&files).unwrap();
    std::fs::write(&files.key, &second.key_pem).unwrap();
    let error = Tunnel::bind(
        config(),
        IdentitySource::Files(files.clone()),
        Arc::new(causeway_tunnels::StaticDirectory::new()),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().to_lowercase().contains("key"), "{error}");

    // A certificate from a CA other than the one in ca.pem.
    let other = CertificateAuthority::generate().unwrap();
    let foreign = other
        .issue(
            &name("n1"),
            "s",
            Validity::starting_now(Duration::from_secs(60)),
        )
        .unwrap();
    first.write(&files).unwrap();
    std::fs::write(&files.cert, &foreign.cert_pem).unwrap();
    std::fs::write(&files.key, &foreign.key_pem).unwrap();
    let error = LoadedIdentity::load(&files).map(|l| {
        causeway_tunnels::tls::TlsIdentity::from_loaded(l, Default::default()).map(|_| ())
    });
    let message = match error {
        Ok(Err(e)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(
        message.contains("not signed by the configured CA"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_certificate_that_expired_since_the_last_link_is_not_resumed() {
    // No TLS session resumption: every link is a full handshake, so a certificate that
    // was good for the first link and has expired since cannot ride a session ticket.
    let cluster = Cluster::new();
    let mut short = config();
    short.timeouts.link_idle = Duration::from_millis(300);
    let (b, b_in) = cluster.node_with("edge-b", short.clone()).await;
    serve(b_in);
    let issued = SystemTime::now();
    let brief = Validity {
        not_before: issued - Duration::from_secs(3600),
        not_after: issued + Duration::from_secs(2),
    };
    let (a, _a_in) = Tunnel::bind(
        short,
        IdentitySource::Loaded(identity_with(&cluster.ca, "edge-a", "site-a", brief)),
        cluster.directory.clone(),
    )
    .await
    .expect("bind");
    let echo = tcp_echo().await;
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, b"in time").await,
        b"in time"
    );
    eventually(Duration::from_secs(3), "the idle link closes", || {
        a.health(&name("edge-b")).is_empty()
    })
    .await;
    // Certificate times have one-second resolution: wait until well past expiry.
    let expired_at = issued + Duration::from_secs(4);
    if let Ok(left) = expired_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    let error = a.link(&name("edge-b")).await.unwrap_err();
    assert!(matches!(error, OpenError::Unreachable { .. }), "{error}");
    eventually(
        Duration::from_secs(2),
        "b counts the expired certificate",
        || b.metrics().rejected_expired >= 1,
    )
    .await;
}
