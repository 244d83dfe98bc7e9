//! `causeway up --tour`: a scripted walk through a running quick-start cluster that
//! checks, step by step, what a user would try by hand — nodes ready, DNS answers, a
//! call from every node to every service, the spread over endpoints, a node stopped and
//! traffic failing over, the node back, a node restarted without its source serving
//! from its store, and the metrics that counted it all. Every wait is bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::client::{self, CallError};
use crate::cluster::{ClusterError, LoopbackCluster};
use crate::echo::Answer;

/// The deadline of one call.
const CALL: Duration = Duration::from_secs(5);

/// How the tour went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TourReport {
    /// Checks that held.
    pub passed: usize,
    /// Checks that did not, with what was seen.
    pub failed: Vec<String>,
}

impl TourReport {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

struct Tour<'a> {
    report: TourReport,
    print: &'a mut dyn FnMut(&str),
}

impl Tour<'_> {
    fn step(&mut self, title: &str) {
        (self.print)(&format!("\n== {title}"));
    }

    fn note(&mut self, text: &str) {
        (self.print)(&format!("   {text}"));
    }

    fn check(&mut self, ok: bool, text: &str) {
        if ok {
            self.report.passed += 1;
            (self.print)(&format!("   ok    {text}"));
        } else {
            self.report.failed.push(text.to_string());
            (self.print)(&format!("   FAIL  {text}"));
        }
    }
}

fn url(app: &crate::topology::App) -> String {
    if app.port == 80 {
        format!("http://{}.{}/", app.name, app.namespace)
    } else {
        format!("http://{}.{}:{}/", app.name, app.namespace, app.port)
    }
}

fn who(answer: &Result<Answer, CallError>) -> String {
    match answer {
        Ok(a) => format!(
            "answered by {} on {} ({})",
            a.identity.pod, a.identity.node, a.identity.site
        ),
        Err(e) => format!("failed: {e}"),
    }
}

/// Runs the tour on `cluster`, printing each step through `print`.
pub async fn run(
    cluster: &mut LoopbackCluster,
    print: &mut dyn FnMut(&str),
) -> Result<TourReport, ClusterError> {
    let mut tour = Tour {
        report: TourReport::default(),
        print,
    };
    ready(cluster, &mut tour).await;
    dns(cluster, &mut tour).await;
    calls(cluster, &mut tour).await;
    let Some((caller, peer, app)) = failover_plan(cluster) else {
        tour.step("Failover");
        tour.note("skipped: the topology has no site with two nodes running the same app");
        return Ok(tour.report);
    };
    spread(cluster, &mut tour, &caller, &peer, &app).await;
    failover(cluster, &mut tour, &caller, &peer, &app).await?;
    offline(cluster, &mut tour).await?;
    metrics(cluster, &mut tour, &caller).await;
    Ok(tour.report)
}

async fn ready(cluster: &LoopbackCluster, tour: &mut Tour<'_>) {
    tour.step("Every node is up and has loaded the manifests");
    let services = cluster.topology().apps.len();
    for node in cluster.nodes() {
        let admin = node.addresses.admin;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut loaded = 0;
        while Instant::now() < deadline {
            loaded = node
                .mesh()
                .map_or(0, |m| m.store().snapshot().services().count());
            if loaded >= services {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ready = match admin {
            Some(admin) => client::get(admin, "/ready", CALL)
                .await
                .is_ok_and(|r| r.status == 200),
            None => false,
        };
        tour.check(
            ready && loaded >= services,
            &format!(
                "{:<8} ready, {loaded} of {services} services in its store",
                node.plan.name
            ),
        );
    }
}

async fn dns(cluster: &LoopbackCluster, tour: &mut Tour<'_>) {
    tour.step("DNS: every node answers for the cluster's services, over UDP and TCP");
    let domain = cluster.topology().cluster_domain.clone();
    let Some(app) = cluster.topology().apps.first().cloned() else {
        tour.note("no apps in the topology");
        return;
    };
    let expected = crate::topology::Topology::cluster_ip(0);
    let name = format!("{}.{}.svc.{domain}.", app.name, app.namespace);
    for node in cluster.nodes() {
        let Some(server) = node.addresses.dns else {
            continue;
        };
        for tcp in [false, true] {
            let answer = client::dns_query(server, &name, RecordType::A, tcp, CALL).await;
            let ips: Vec<String> = answer
                .as_ref()
                .map(|m| {
                    m.answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(a.0.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            tour.check(
                ips == [expected.to_string()],
                &format!(
                    "{:<8} {} A {name} -> {}",
                    node.plan.name,
                    if tcp { "TCP" } else { "UDP" },
                    match &answer {
                        Ok(_) => ips.join(", "),
                        Err(e) => e.to_string(),
                    }
                ),
            );
        }
        let unknown = format!("nothing-here.{}.svc.{domain}.", app.namespace);
        let answer = client::dns_query(server, &unknown, RecordType::A, false, CALL).await;
        tour.check(
            answer
                .as_ref()
                .is_ok_and(|m| m.metadata.response_code == ResponseCode::NXDomain),
            &format!("{:<8} UDP A {unknown} -> NXDOMAIN", node.plan.name),
        );
    }
}

async fn calls(cluster: &LoopbackCluster, tour: &mut Tour<'_>) {
    tour.step("A call from every node to every service, through the node's HTTP proxy");
    let apps = cluster.topology().apps.clone();
    let sites: BTreeMap<String, String> = cluster
        .nodes()
        .map(|n| (n.plan.name.clone(), n.plan.site.clone()))
        .collect();
    for node in cluster.nodes() {
        for app in &apps {
            let answer = client::ask_echo(node.http_proxy(), &url(app), CALL).await;
            // Where it should be answered: the caller's site when the app runs there
            // (every quick-start policy prefers the node or the site), else anywhere.
            let local_sites: Vec<&String> = app.nodes.iter().filter_map(|n| sites.get(n)).collect();
            let expect_site = local_sites.contains(&&node.plan.site);
            let ok = match &answer {
                Ok(a) => !expect_site || a.identity.site == node.plan.site,
                Err(_) => false,
            };
            let crossing = match &answer {
                Ok(a) if a.identity.node != node.plan.name => "  [over a tunnel]",
                _ => "",
            };
            tour.check(
                ok,
                &format!(
                    "{:<8} -> {:<22} {}{crossing}",
                    node.plan.name,
                    url(app),
                    who(&answer)
                ),
            );
        }
    }
}

/// A site with two running nodes that both run an app: the caller, the node to stop,
/// and the app.
fn failover_plan(cluster: &LoopbackCluster) -> Option<(String, String, crate::topology::App)> {
    for app in &cluster.topology().apps {
        for site in &cluster.topology().sites {
            let on: Vec<&String> = site
                .nodes
                .iter()
                .filter(|n| app.nodes.contains(n))
                .collect();
            if let [caller, peer, ..] = on.as_slice() {
                return Some(((*caller).clone(), (*peer).clone(), app.clone()));
            }
        }
    }
    None
}

async fn count_answers(
    cluster: &LoopbackCluster,
    caller: &str,
    app: &crate::topology::App,
    calls: usize,
) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut by_pod = BTreeMap::new();
    let mut errors = Vec::new();
    let Ok(node) = cluster.node(caller) else {
        return (by_pod, vec![format!("no node {caller}")]);
    };
    for _ in 0..calls {
        match client::ask_echo(node.http_proxy(), &url(app), CALL).await {
            Ok(answer) => *by_pod.entry(answer.identity.pod).or_insert(0) += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    (by_pod, errors)
}

fn show(by_pod: &BTreeMap<String, usize>) -> String {
    by_pod
        .iter()
        .map(|(pod, n)| format!("{pod}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn spread(
    cluster: &LoopbackCluster,
    tour: &mut Tour<'_>,
    caller: &str,
    peer: &str,
    app: &crate::topology::App,
) {
    tour.step(&format!("Spread: 40 calls from {caller} to {}", url(app)));
    let (by_pod, errors) = count_answers(cluster, caller, app, 40).await;
    tour.note(&show(&by_pod));
    let mine = by_pod
        .get(&format!("{}-{caller}", app.name))
        .copied()
        .unwrap_or(0);
    let theirs = by_pod
        .get(&format!("{}-{peer}", app.name))
        .copied()
        .unwrap_or(0);
    tour.check(
        errors.is_empty(),
        &format!("all 40 answered ({} errors)", errors.len()),
    );
    tour.check(
        mine >= 8 && theirs >= 8,
        &format!("both pods of the site take a share ({mine} and {theirs})"),
    );
}

async fn failover(
    cluster: &mut LoopbackCluster,
    tour: &mut Tour<'_>,
    caller: &str,
    peer: &str,
    app: &crate::topology::App,
) -> Result<(), ClusterError> {
    tour.step(&format!(
        "Failover: {peer} goes down; {caller} keeps calling {}",
        url(app)
    ));
    cluster.stop_node(peer).await?;
    tour.note(&format!("{peer} and its pods stopped"));
    let started = Instant::now();
    let (by_pod, errors) = count_answers(cluster, caller, app, 20).await;
    tour.note(&format!("{} in {:.1?}", show(&by_pod), started.elapsed()));
    tour.check(
        errors.is_empty(),
        &format!(
            "all 20 calls answered while {peer} is down ({} failed{})",
            errors.len(),
            errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    let peer_pod = format!("{}-{peer}", app.name);
    let caller_pod = format!("{}-{caller}", app.name);
    tour.check(
        by_pod.keys().all(|pod| *pod == caller_pod),
        &format!("all stayed in the site, on {caller_pod} (locality, with {peer} out)"),
    );

    tour.step(&format!("{peer} comes back"));
    cluster.start_node(peer, true).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut back = false;
    let started = Instant::now();
    while Instant::now() < deadline {
        let (by_pod, _) = count_answers(cluster, caller, app, 4).await;
        if by_pod.contains_key(&peer_pod) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tour.check(
        back,
        &format!(
            "calls from {caller} reach {peer_pod} again (after {:.1?})",
            started.elapsed()
        ),
    );
    Ok(())
}

async fn offline(cluster: &mut LoopbackCluster, tour: &mut Tour<'_>) -> Result<(), ClusterError> {
    let Some(node) = cluster.nodes().last().map(|n| n.plan.name.clone()) else {
        return Ok(());
    };
    tour.step(&format!(
        "Offline: {node} restarts with its manifests source gone"
    ));
    cluster.stop_node(&node).await?;
    cluster.start_node(&node, false).await?;
    tour.note(&format!(
        "{node} restarted with no source: it serves from its SQLite store"
    ));
    let apps = cluster.topology().apps.clone();
    let proxy = cluster.node(&node)?.http_proxy();
    for app in &apps {
        let answer = client::ask_echo(proxy, &url(app), CALL).await;
        tour.check(
            answer.is_ok(),
            &format!("{node} -> {:<22} {}", url(app), who(&answer)),
        );
    }
    Ok(())
}

async fn metrics(cluster: &LoopbackCluster, tour: &mut Tour<'_>, caller: &str) {
    tour.step(&format!("Metrics: {caller}'s admin endpoint counted it"));
    let Some(admin) = cluster.node(caller).ok().and_then(|n| n.addresses.admin) else {
        return;
    };
    let text = client::get(admin, "/metrics", CALL)
        .await
        .map(|r| r.body)
        .unwrap_or_default();
    let connections: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("causeway_connections_total{"))
        .collect();
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("causeway_http_requests_total{"))
        .collect();
    for line in connections.iter().chain(&requests) {
        tour.note(line);
    }
    tour.check(
        !connections.is_empty() && !requests.is_empty(),
        "requests per service and status class, and connections per endpoint node, are counted",
    );
    let cluster_answers = text
        .lines()
        .find_map(|l| l.strip_prefix("causeway_dns_answers_total{answer=\"cluster\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    tour.check(
        cluster_answers >= 2,
        &format!("DNS answers are counted by kind ({cluster_answers} cluster answers)"),
    );
}
