//! The quick start's tour, in process, on free ports: the acceptance check of
//! `causeway up --tour` as a test (the Makefile also runs the binary itself).

use causeway_loadtests::cluster::LoopbackCluster;
use causeway_loadtests::topology::Topology;
use causeway_loadtests::tour;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_tour_passes() {
    let mut topology = Topology::quickstart().expect("the built-in quick start is valid");
    topology.base_port = 0;
    let root = std::env::temp_dir().join(format!("causeway-tour-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut cluster = LoopbackCluster::start(topology, &root)
        .await
        .expect("the quick start starts");
    let mut lines = Vec::new();
    let report = tour::run(&mut cluster, &mut |line: &str| lines.push(line.to_string()))
        .await
        .expect("the tour runs");
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        report.ok(),
        "the tour failed:\n{}\nfailed checks: {:?}",
        lines.join("\n"),
        report.failed
    );
    assert!(report.passed >= 30, "only {} checks ran", report.passed);
}
