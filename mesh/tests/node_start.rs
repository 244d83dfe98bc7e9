//! Starting a node: every socket is bound before anything runs, a node that cannot
//! start lets go of everything it had, and client listeners stay on loopback unless
//! allowed otherwise.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::path::PathBuf;
use std::time::Duration;

use causeway_mesh::node::{MeshNode, NodeConfig, NodeError};
use causeway_tunnels::{CertificateAuthority, IdentityFiles, IdentitySource, NodeName, Validity};

fn node_dir(test: &str) -> (PathBuf, IdentityFiles) {
    let dir =
        std::env::temp_dir().join(format!("causeway-node-start-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let identity = dir.join("identity");
    std::fs::create_dir_all(&identity).unwrap();
    let ca = CertificateAuthority::generate().unwrap();
    let files = IdentityFiles::in_dir(&identity);
    ca.issue(
        &NodeName::new("n1").unwrap(),
        "s1",
        Validity::starting_now(Duration::from_secs(3600)),
    )
    .unwrap()
    .write(&files)
    .unwrap();
    (dir, files)
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_start_lets_go_of_everything() {
    let (dir, files) = node_dir("leak");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tunnel = free_udp();
    let mut config = NodeConfig::new(
        "n1",
        dir.join("state"),
        IdentitySource::Files(files),
        tunnel,
    );
    config.service_listeners = vec!["t/x:80=127.0.0.1:0".parse().unwrap()];
    config.manifests = Some(dir.join("manifests"));
    config.http_proxy = Some(taken.local_addr().unwrap());
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let error = MeshNode::start(config).await.unwrap_err();
    assert!(
        matches!(
            error,
            NodeError::Listen {
                what: "the HTTP proxy",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(
        after, before,
        "tasks left running by a node that did not start"
    );
    assert!(
        std::net::UdpSocket::bind(tunnel).is_ok(),
        "the tunnel port is free"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_listeners_stay_on_loopback_unless_allowed() {
    let (dir, files) = node_dir("loopback");
    let mut config = NodeConfig::new(
        "n1",
        dir.join("state"),
        IdentitySource::Files(files),
        free_udp(),
    );
    config.http_proxy = Some("0.0.0.0:0".parse().unwrap());
    let error = MeshNode::start(config).await.unwrap_err();
    assert!(matches!(error, NodeError::NotLoopback { .. }), "{error}");
    assert!(
        error.to_string().contains("--allow-remote-clients"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_source_is_ready_and_one_with_a_source_after_reading_it() {
    let (dir, files) = node_dir("ready");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut config = NodeConfig::new(
        "n1",
        dir.join("state"),
        IdentitySource::Files(files.clone()),
        free_udp(),
    );
    config.manifests = Some(manifests);
    config.manifests_interval = Duration::from_millis(50);
    let node = MeshNode::start(config).await.unwrap();
    assert!(node.wait_ready(Duration::from_secs(5)).await);
    node.stop().await;
    let config = NodeConfig::new(
        "n1",
        dir.join("state"),
        IdentitySource::Files(files),
        free_udp(),
    );
    let node = MeshNode::start(config).await.unwrap();
    assert!(node.is_ready(), "no source: serves from its store at once");
    node.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
