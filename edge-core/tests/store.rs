//! The node store: persistence, indices, sources' ownership of their objects, and the
//! manifests directory with its last-good rule.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_api::KubeObject;
use causeway_api::manifest;
use causeway_edge_core::metamanager::{MetaManager, Protocol, Update};
use causeway_edge_core::source::{ManifestDirectory, ObjectSource};
use causeway_yaml::Source;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("causeway-edge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn objects(text: &str) -> Vec<KubeObject> {
    let m = manifest::decode(&Source::new("t.yaml", text));
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    m.objects.into_iter().map(|(o, _)| o).collect()
}

const DEMO: &str = "\
apiVersion: v1
kind: Node
metadata:
  name: edge-1
  labels: {causeway.dev/site: factory}
  annotations: {causeway.dev/tunnel-address: '127.0.0.1:7401'}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-a, namespace: demo, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
endpoints:
- addresses: [127.0.1.1]
  nodeName: edge-1
- addresses: [127.0.1.2]
  nodeName: edge-2
  conditions: {ready: false}
ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: demo}
subsets:
- addresses: [{ip: 127.0.2.1, nodeName: edge-1}]
  ports: [{port: 5432}]
";

#[tokio::test]
async fn objects_survive_a_restart_and_the_snapshot_is_indexed() {
    let dir = temp_dir("restart");
    let db = dir.join("node.db");
    {
        let store = MetaManager::open(&db).unwrap();
        let stats = store
            .replace_source("manifests:x", objects(DEMO))
            .await
            .unwrap();
        assert_eq!(stats.written, 5);
        assert!(stats.version > 1);
    }
    // Reopened with no source at all: it serves what it stored.
    let store = MetaManager::open(&db).unwrap();
    let snapshot = store.snapshot();
    let echo = snapshot.service("demo", "echo").expect("echo");
    assert_eq!(
        echo.cluster_ips,
        vec!["10.96.0.10".parse::<IpAddr>().unwrap()]
    );
    assert!(Arc::ptr_eq(
        echo,
        snapshot
            .service_by_ip("10.96.0.10".parse().unwrap())
            .unwrap()
    ));
    let port = echo.port(80, Protocol::Tcp).unwrap();
    assert_eq!(port.app_protocol.as_deref(), Some("http"));
    assert_eq!(echo.endpoints.len(), 2);
    let first = &echo.endpoints[0];
    assert!(first.ready);
    assert_eq!(first.node.as_deref(), Some("edge-1"));
    assert_eq!(first.site.as_deref(), Some("factory"));
    assert_eq!(first.port_for(port), Some(8080));
    assert!(!echo.endpoints[1].ready);
    let db_service = snapshot.service("demo", "db").unwrap();
    assert!(db_service.headless);
    assert_eq!(
        db_service.endpoints[0].port_for(&db_service.ports[0]),
        Some(5432)
    );
    let node = snapshot.node("edge-1").unwrap();
    assert_eq!(
        node.tunnel_addresses,
        vec!["127.0.0.1:7401".parse().unwrap()]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_source_owns_only_its_own_objects() {
    let dir = temp_dir("owners");
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    store.replace_source("a", objects(DEMO)).await.unwrap();
    let extra =
        objects("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: demo}\n");
    store.replace_source("b", extra).await.unwrap();
    // Source a now holds only the node: its other objects go, b's stays.
    let only_node = objects(DEMO.split("---").next().unwrap());
    let stats = store.replace_source("a", only_node).await.unwrap();
    assert_eq!((stats.written, stats.deleted, stats.unchanged), (0, 4, 1));
    let snapshot = store.snapshot();
    assert!(snapshot.service("demo", "echo").is_none());
    assert!(snapshot.service("demo", "other").is_some());
    // Single updates.
    let key = snapshot.service("demo", "other").map(|_| ()).and(
        objects("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: demo}\n")[0]
            .key()
            .ok(),
    );
    store
        .apply("b", vec![Update::Delete(key.unwrap())])
        .await
        .unwrap();
    assert!(store.snapshot().service("demo", "other").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn concurrent_writers_are_folded_into_few_transactions() {
    let dir = temp_dir("batch");
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = store.clone();
        set.spawn(async move {
            let object = objects(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: n}}\n"
            ));
            store
                .apply(
                    "load",
                    vec![Update::Put(object.into_iter().next().unwrap())],
                )
                .await
                .unwrap()
        });
    }
    let mut versions = Vec::new();
    while let Some(done) = set.join_next().await {
        versions.push(done.unwrap().version);
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(store.snapshot().services().count(), 200);
    assert!(
        versions.len() < 200,
        "every write got its own transaction: {}",
        versions.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_skipped_not_fatal() {
    let dir = temp_dir("corrupt");
    let db = dir.join("node.db");
    {
        let store = MetaManager::open(&db).unwrap();
        store.replace_source("a", objects(DEMO)).await.unwrap();
    }
    {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection
            .execute(
                "UPDATE objects SET body = '{not json' WHERE name = 'db' AND resource = 'services'",
                [],
            )
            .unwrap();
    }
    let store = MetaManager::open(&db).unwrap();
    let snapshot = store.snapshot();
    assert!(snapshot.service("demo", "db").is_none());
    assert!(snapshot.service("demo", "echo").is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn wait_for(store: &MetaManager, what: &str, condition: impl Fn(&MetaManager) -> bool) {
    let start = Instant::now();
    while !condition(store) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(path: &Path, text: &str) {
    // Write then rename, as config managers do, so a read never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn the_manifests_directory_is_watched_and_a_bad_file_keeps_its_last_good_objects() {
    let dir = temp_dir("watch");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(manifests.join("nested")).unwrap();
    write(&manifests.join("demo.yaml"), DEMO);
    write(
        &manifests.join("nested/extra.yml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: demo}\n",
    );
    std::fs::write(manifests.join("notes.txt"), "not yaml").unwrap();
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    let source = ManifestDirectory::new(&manifests, Duration::from_millis(50));
    let status = source.status();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(source.run(store.clone(), stopped));
    wait_for(&store, "the first read", |s| {
        s.snapshot().service("demo", "extra").is_some()
    })
    .await;
    assert!(store.snapshot().service("demo", "echo").is_some());

    // A broken edit: reported with its line, and the file's objects stay as they were.
    write(
        &manifests.join("demo.yaml"),
        &DEMO.replace("port: 80,", "port: eighty,"),
    );
    wait_for(&store, "the broken read", |_| {
        status.lock().unwrap().reads >= 2
    })
    .await;
    let problems = status.lock().unwrap().problems.clone();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("demo.yaml:13:"), "{}", problems[0]);
    assert!(
        problems[0].contains("spec.ports[0].port"),
        "{}",
        problems[0]
    );
    assert!(
        store.snapshot().service("demo", "echo").is_some(),
        "last good state kept"
    );

    // A good edit applies; a removed file takes its objects with it.
    write(
        &manifests.join("demo.yaml"),
        &DEMO.replace("name: echo, namespace", "name: echo2, namespace"),
    );
    wait_for(&store, "the fixed read", |s| {
        s.snapshot().service("demo", "echo2").is_some()
    })
    .await;
    assert!(store.snapshot().service("demo", "echo").is_none());
    std::fs::remove_file(manifests.join("nested/extra.yml")).unwrap();
    wait_for(&store, "the removal", |s| {
        s.snapshot().service("demo", "extra").is_none()
    })
    .await;

    // The directory disappears: the store keeps serving what it has.
    std::fs::remove_dir_all(&manifests).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.snapshot().service("demo", "echo2").is_some());
    stop.send(true).unwrap();
    task.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
