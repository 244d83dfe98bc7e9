//! Runs one scenario on this machine: starts the world it describes (echo endpoints as
//! `causeway app echo` processes, mesh nodes as `causeway node` processes fed from a
//! manifests file, HAProxy when a variant asks for it), then each variant in turn —
//! endpoints restored, readiness proven by a successful call, a warm-up, the measured
//! runs with the scenario's events — and evaluates the checks.
//!
//! Every process listens on 127.0.0.1 and is killed when the run ends (the scratch
//! directory goes with it); every wait and every load has a deadline.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;

use super::checks::{self, Context, Thresholds};
use super::pod_name;
use super::spec::{EventAction, LoadMode, ResolvedLoad, Scenario, VariantSpec, Via};
use crate::echo::parse_duration;
use crate::generator::{self, CallSpec, Connection, LoadSpec, Mode, Outcome, Protocol, RunResult};
use crate::harness::{
    self, BenchError, ChildProcess, ScratchDir, find_tool, free_tcp_port, free_udp_and_tcp_port,
    io_error, named_endpoint_slice_object, node_object, service_object, traffic_policy_object,
};
use crate::report::{CheckOutcome, ScenarioReport};

/// The namespace of every benchmark object.
const NAMESPACE: &str = "bench";
/// The Services' port.
const SERVICE_PORT: u16 = 80;
/// How long a target may take to answer its first call.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How to run scenarios.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `causeway` binary (for `app echo` and `node`).
    pub binary: PathBuf,
    /// `ci` or `full`.
    pub profile: String,
    /// Where to keep the scratch files (kept); default a temporary directory (removed).
    pub work_dir: Option<PathBuf>,
    /// The bounds of the checks.
    pub thresholds: Thresholds,
}

/// One echo endpoint: its ports and, while it runs, its process.
#[derive(Debug)]
struct EndpointProcess {
    pod: String,
    node: String,
    site: String,
    http: SocketAddr,
    tcp: SocketAddr,
    udp: SocketAddr,
    behaviour: Vec<String>,
    child: Option<ChildProcess>,
}

impl EndpointProcess {
    fn address(&self, protocol: Protocol) -> SocketAddr {
        match protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
            _ => self.http,
        }
    }

    /// Whether its process is alive.
    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.check_running().is_ok())
    }

    fn start(&mut self, binary: &Path) -> Result<(), BenchError> {
        let mut command = Command::new(binary);
        command
            .args(["app", "echo", "--listen", &self.http.to_string()])
            .args(["--tcp-echo", &self.tcp.to_string()])
            .args(["--udp-echo", &self.udp.to_string()])
            .args([
                "--pod", &self.pod, "--node", &self.node, "--site", &self.site,
            ])
            .args(&self.behaviour)
            .env("RUST_LOG", "warn");
        let mut child = ChildProcess::spawn(&format!("echo app {}", self.pod), command, None)?;
        harness::wait_for_http(&mut child, self.http, "/", Duration::from_secs(20))?;
        self.child = Some(child);
        Ok(())
    }
}

/// Ports handed out in this run. A free port stays free only until something binds it,
/// so ports picked in a batch are checked against each other.
#[derive(Debug, Default)]
struct Ports(std::collections::HashSet<u16>);

impl Ports {
    fn unique(
        &mut self,
        pick: impl Fn() -> Result<SocketAddr, BenchError>,
    ) -> Result<SocketAddr, BenchError> {
        for _ in 0..100 {
            let addr = pick()?;
            if self.0.insert(addr.port()) {
                return Ok(addr);
            }
        }
        Err(BenchError::Scenario(
            "no unused loopback port in 100 tries".into(),
        ))
    }

    fn tcp(&mut self) -> Result<SocketAddr, BenchError> {
        self.unique(free_tcp_port)
    }

    fn udp_and_tcp(&mut self) -> Result<SocketAddr, BenchError> {
        self.unique(free_udp_and_tcp_port)
    }
}

/// The endpoints of every Service, shared with the event thread.
type Endpoints = Arc<Mutex<Vec<Vec<EndpointProcess>>>>;

fn lock(endpoints: &Endpoints) -> std::sync::MutexGuard<'_, Vec<Vec<EndpointProcess>>> {
    endpoints.lock().unwrap_or_else(|p| p.into_inner())
}

/// A variant ready to be measured.
#[derive(Debug)]
struct Target {
    spec: VariantSpec,
    addr: SocketAddr,
    protocol: Protocol,
    /// The pods it balances over.
    pods: Vec<String>,
    /// The authority calls carry.
    authority: String,
}

/// Runs `scenario` in `options.profile`; `progress` hears what happens, a line at a time.
pub fn run_scenario(
    scenario: &Scenario,
    options: &RunOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ScenarioReport, BenchError> {
    let spec = &scenario.spec;
    let load = scenario
        .load_in(&options.profile)
        .map_err(|e| BenchError::Scenario(e.to_string()))?;
    let scratch = ScratchDir::new(
        &format!("bench-{}", scenario.name),
        options.work_dir.as_deref(),
    )?;
    let dir = scratch.path();
    let binary = &options.binary;
    let site_of = |node: &str| {
        spec.nodes
            .iter()
            .find(|n| n.name == node)
            .map_or_else(|| "site-1".to_string(), |n| n.site.clone())
    };

    let mut ports = Ports::default();
    // The endpoints, started.
    let mut services = Vec::new();
    for service in &spec.services {
        let mut list = Vec::new();
        for group in &service.endpoints {
            let mut behaviour = Vec::new();
            let mut flag = |name: &str, value: Option<String>| {
                if let Some(value) = value {
                    behaviour.push(format!("--{name}"));
                    behaviour.push(value);
                }
            };
            flag("delay", group.delay.clone());
            flag("delay-jitter", group.delay_jitter.clone());
            flag("error-rate", group.error_rate.map(|r| r.to_string()));
            flag("fail-after", group.fail_after.map(|n| n.to_string()));
            for _ in 0..group.replicas {
                let index = list.len();
                let mut endpoint = EndpointProcess {
                    pod: pod_name(&service.name, index),
                    node: group.node.clone(),
                    site: site_of(&group.node),
                    http: ports.tcp()?,
                    tcp: ports.tcp()?,
                    udp: ports.udp_and_tcp()?,
                    behaviour: behaviour.clone(),
                    child: None,
                };
                endpoint.start(binary)?;
                list.push(endpoint);
            }
        }
        services.push(list);
    }
    progress(&format!(
        "{}: {} endpoints up",
        scenario.name,
        services.iter().map(Vec::len).sum::<usize>()
    ));
    let endpoints: Endpoints = Arc::new(Mutex::new(services));

    let variants: Vec<&VariantSpec> = scenario.variants_in(&options.profile).collect();
    let service_index = |variant: &VariantSpec| {
        variant
            .service
            .as_ref()
            .and_then(|name| spec.services.iter().position(|s| &s.name == name))
            .unwrap_or(0)
    };

    // The manifests and the nodes, when a variant goes through the mesh.
    let mut processes: Vec<ChildProcess> = Vec::new();
    let mut mesh_listeners: Vec<Option<SocketAddr>> = vec![None; variants.len()];
    // Held for the run: a NATed node's advertised address, which never answers.
    let mut black_holes: Vec<UdpSocket> = Vec::new();
    if variants.iter().any(|v| v.via == Via::Mesh) {
        let identities = dir.join("identity");
        let mut tunnels = Vec::new();
        let mut objects = Vec::new();
        let placed: Vec<(&str, &str)> = spec
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.site.as_str()))
            .collect();
        harness::write_placed_identities(&identities, &placed)?;
        for node in &spec.nodes {
            let tunnel = ports.udp_and_tcp()?;
            let advertised = if node.behind_nat {
                let hole = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(io_error("cannot bind a black-hole UDP socket"))?;
                let addr = hole
                    .local_addr()
                    .map_err(io_error("cannot read the black hole's address"))?;
                black_holes.push(hole);
                addr
            } else {
                tunnel
            };
            objects.push(node_object(&node.name, &node.site, advertised));
            tunnels.push(tunnel);
        }
        let guard = lock(&endpoints);
        for (i, variant) in variants.iter().enumerate() {
            if variant.via != Via::Mesh {
                continue;
            }
            let s = service_index(variant);
            let protocol = spec.services[s].protocol;
            let (port_name, app_protocol) = port_naming(protocol);
            let name = variant_service_name(&spec.services[s].name, i);
            let chosen = scenario.endpoints_of(variant);
            let first = chosen
                .first()
                .and_then(|&e| guard[s].get(e))
                .map_or(0, |e| e.address(protocol).port());
            objects.push(service_object(
                NAMESPACE,
                &name,
                Ipv4Addr::new(10, 96, 1, u8::try_from(10 + i).unwrap_or(250)),
                SERVICE_PORT,
                first,
                port_name,
                app_protocol,
            ));
            for &e in &chosen {
                let endpoint = &guard[s][e];
                let addr = endpoint.address(protocol);
                objects.push(named_endpoint_slice_object(
                    NAMESPACE,
                    &name,
                    &format!("{name}-{e}"),
                    &[(addr.ip().to_string(), endpoint.node.clone())],
                    addr.port(),
                    port_name,
                ));
            }
            if let Some(policy) = &variant.policy {
                objects.push(traffic_policy_object(
                    NAMESPACE,
                    &name,
                    &name,
                    policy.clone(),
                ));
            }
            mesh_listeners[i] = Some(ports.tcp()?);
        }
        drop(guard);
        let manifests = harness::write_manifests(dir, "scenario.yaml", &objects)?;
        let relays: Vec<String> = spec
            .nodes
            .iter()
            .zip(&tunnels)
            .filter(|(n, _)| n.relay)
            .map(|(n, t)| format!("{}={t}", n.name))
            .collect();
        for (node, tunnel) in spec.nodes.iter().zip(&tunnels) {
            let mut command = harness::node_command(
                binary,
                &node.name,
                &node.site,
                dir,
                &identities,
                &manifests,
                *tunnel,
            );
            for relay in relays
                .iter()
                .filter(|r| !r.starts_with(&format!("{}=", node.name)))
            {
                command.args(["--relay", relay]);
            }
            if node.relay {
                command.arg("--serve-as-relay");
            }
            for (i, variant) in variants.iter().enumerate() {
                let caller = variant
                    .caller
                    .clone()
                    .or_else(|| spec.nodes.first().map(|n| n.name.clone()))
                    .unwrap_or_default();
                if let (Some(listener), true) = (mesh_listeners[i], caller == node.name) {
                    let name = variant_service_name(&spec.services[service_index(variant)].name, i);
                    command
                        .arg("--service")
                        .arg(format!("{NAMESPACE}/{name}:{SERVICE_PORT}={listener}"));
                }
            }
            processes.push(ChildProcess::spawn(
                &format!("mesh node {}", node.name),
                command,
                None,
            )?);
        }
        progress(&format!(
            "{}: {} mesh nodes started",
            scenario.name,
            spec.nodes.len()
        ));
    }

    // HAProxy, one frontend per variant that asks for it.
    let mut haproxy_frontends: Vec<Option<SocketAddr>> = vec![None; variants.len()];
    if variants.iter().any(|v| v.via == Via::Haproxy) {
        let haproxy = find_tool("haproxy", "haproxy")?;
        let mut config = String::from(HAPROXY_GLOBAL);
        let guard = lock(&endpoints);
        for (i, variant) in variants.iter().enumerate() {
            if variant.via != Via::Haproxy {
                continue;
            }
            let s = service_index(variant);
            let protocol = spec.services[s].protocol;
            let mode = match protocol {
                Protocol::Http1 => "http",
                Protocol::Tcp => "tcp",
                other => {
                    return Err(BenchError::Options(format!(
                        "{}: variant `{}`: HAProxy is compared over http1 and tcp only, not {}",
                        scenario.file,
                        variant.name,
                        other.name()
                    )));
                }
            };
            let listen = ports.tcp()?;
            config.push_str(&format!(
                "\nlisten v{i}\n    mode {mode}\n    bind {listen}\n    balance roundrobin\n"
            ));
            if mode == "http" {
                config.push_str("    option http-keep-alive\n    http-reuse always\n");
            }
            for &e in &scenario.endpoints_of(variant) {
                let endpoint = &guard[s][e];
                config.push_str(&format!(
                    "    server {} {}\n",
                    endpoint.pod,
                    endpoint.address(protocol)
                ));
            }
            haproxy_frontends[i] = Some(listen);
        }
        drop(guard);
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config)
            .map_err(io_error(format!("cannot write {}", file.display())))?;
        let mut command = Command::new(&haproxy);
        command.arg("-db").arg("-f").arg(&file);
        processes.push(ChildProcess::spawn("HAProxy", command, None)?);
    }

    // The targets.
    let mut targets = Vec::new();
    {
        let guard = lock(&endpoints);
        for (i, variant) in variants.iter().enumerate() {
            let s = service_index(variant);
            let protocol = spec.services[s].protocol;
            let chosen = scenario.endpoints_of(variant);
            let addr = match variant.via {
                Via::Mesh => mesh_listeners[i],
                Via::Haproxy => haproxy_frontends[i],
                Via::Direct => chosen.first().map(|&e| guard[s][e].address(protocol)),
            }
            .ok_or_else(|| {
                BenchError::Options(format!("variant `{}` has no address", variant.name))
            })?;
            let pods = match variant.via {
                Via::Direct => chosen
                    .iter()
                    .take(1)
                    .map(|&e| guard[s][e].pod.clone())
                    .collect(),
                _ => chosen.iter().map(|&e| guard[s][e].pod.clone()).collect(),
            };
            let authority = match variant.via {
                Via::Mesh => format!(
                    "{}.{NAMESPACE}",
                    variant_service_name(&spec.services[s].name, i)
                ),
                _ => addr.to_string(),
            };
            targets.push(Target {
                spec: (*variant).clone(),
                addr,
                protocol,
                pods,
                authority,
            });
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("cannot start the load generator's runtime"))?;
    let mut report = ScenarioReport {
        name: scenario.name.clone(),
        title: spec.title.clone(),
        file: scenario.file.clone(),
        ..ScenarioReport::default()
    };
    report
        .notes
        .push(describe_world(scenario, &load, &options.profile));
    let mut context = Context::default();
    for target in &targets {
        context
            .endpoints
            .insert(target.spec.name.clone(), target.pods.clone());
        // Endpoints a previous variant's events killed come back first.
        restore(&endpoints, binary)?;
        for process in processes.iter_mut() {
            process.check_running()?;
        }
        let call = call_spec(scenario, &load, target);
        progress(&format!(
            "{}: {} at {}",
            scenario.name, target.spec.name, target.addr
        ));
        if let Err(error) = runtime.block_on(wait_ready(target, &call)) {
            // What the proxies said is what explains a target that never answered.
            let tails: Vec<String> = processes
                .iter()
                .map(|p| format!("--- {}:\n{}", p.what(), p.stderr_tail()))
                .collect();
            // One variant that cannot be reached fails its own check; the others run.
            report.checks.push(CheckOutcome {
                name: format!("variant `{}` ran", target.spec.name),
                measured: format!("{error}\n{}", tails.join("\n")),
                bound: "answers within 30 s".into(),
                passed: false,
            });
            continue;
        }
        if !load.warmup.is_zero() {
            let warmup = load_spec(
                &load,
                target.protocol,
                call.clone(),
                load.warmup,
                load.rates.first().copied(),
            );
            runtime
                .block_on(generator::run(
                    target.addr,
                    &warmup,
                    &format!("{} warm-up", target.spec.name),
                ))
                .map_err(|e| BenchError::Scenario(e.to_string()))?;
        }
        let steps: Vec<Option<f64>> = match load.mode {
            LoadMode::Closed => vec![None],
            LoadMode::Open => load.rates.iter().copied().map(Some).collect(),
        };
        for (step, rate) in steps.into_iter().enumerate() {
            let spec_run = load_spec(&load, target.protocol, call.clone(), load.duration, rate);
            // Events happen in the first step of each variant they name.
            let events = if step == 0 {
                // The open loop starts its schedule 50 ms after it is called.
                let lead = match load.mode {
                    LoadMode::Open => Duration::from_millis(50),
                    LoadMode::Closed => Duration::ZERO,
                };
                start_events(scenario, target, endpoints.clone(), binary.clone(), lead)
            } else {
                None
            };
            let run = runtime.block_on(generator::run(target.addr, &spec_run, &target.spec.name));
            if let Some(events) = events {
                match events.join() {
                    Ok(problems) => report.notes.extend(problems),
                    Err(_) => report
                        .notes
                        .push(format!("{}: the event thread panicked", target.spec.name)),
                }
            }
            match run {
                Ok(run) => {
                    progress(&format!("  {}", summary_line(&run)));
                    report.runs.push(run);
                }
                // A run that overran fails its variant; the other variants still run.
                Err(error) => report.checks.push(CheckOutcome {
                    name: format!("variant `{}` ran", target.spec.name),
                    measured: error.to_string(),
                    bound: "finishes within its duration and grace".into(),
                    passed: false,
                }),
            }
        }
    }
    let (outcomes, figures) =
        checks::evaluate(scenario, &report.runs, &context, &options.thresholds);
    report.checks.extend(outcomes);
    report.figures = figures;
    drop(processes);
    drop(black_holes);
    Ok(report)
}

const HAPROXY_GLOBAL: &str = "# Written by `causeway bench`: HAProxy as the baseline proxy.
global
    nbthread 1
    maxconn 8192

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
";

/// The Service port's name and appProtocol for a protocol (how the mesh knows to
/// proxy per request, and which HTTP version to speak upstream).
fn port_naming(protocol: Protocol) -> (&'static str, Option<&'static str>) {
    match protocol {
        Protocol::Http1 => ("http", Some("http")),
        Protocol::Http2 => ("http2", Some("kubernetes.io/h2c")),
        Protocol::Grpc => ("grpc", Some("grpc")),
        Protocol::Tcp | Protocol::Udp => ("tcp", None),
    }
}

/// Every mesh variant has a Service of its own (the same endpoints, its own policy).
fn variant_service_name(service: &str, variant: usize) -> String {
    format!("{service}-v{variant}")
}

fn call_spec(scenario: &Scenario, load: &ResolvedLoad, target: &Target) -> CallSpec {
    let mut call = CallSpec::new(target.authority.clone());
    call.path = scenario.spec.load.path.clone();
    if target.protocol == Protocol::Grpc && call.path == "/" {
        call.path = "/causeway.echo.Echo/Call".into();
    }
    call.payload = scenario.spec.load.payload;
    call.timeout = load.timeout;
    call.key_header = scenario
        .spec
        .load
        .keys
        .as_ref()
        .and_then(|k| HeaderName::from_bytes(k.header.to_ascii_lowercase().as_bytes()).ok());
    call
}

fn load_spec(
    load: &ResolvedLoad,
    protocol: Protocol,
    call: CallSpec,
    duration: Duration,
    rate: Option<f64>,
) -> LoadSpec {
    let mode = match (load.mode, rate) {
        (LoadMode::Open, Some(rate)) => Mode::Open { rate },
        _ => Mode::Closed {
            concurrency: load.concurrency,
        },
    };
    LoadSpec {
        protocol,
        mode,
        connections: load.connections,
        duration,
        max_calls: 50_000_000,
        window: load.window,
        keys: load.keys,
        call,
    }
}

/// Calls the target until one call succeeds (through the mesh: the node has loaded
/// its manifests and the path works end to end).
async fn wait_ready(target: &Target, call: &CallSpec) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut last = String::from("nothing tried");
    while started.elapsed() < READY_DEADLINE {
        match Connection::open(target.protocol, target.addr, Duration::from_secs(2)).await {
            Ok(mut connection) => match connection.call(call, Some("key-0")).await {
                Outcome::Ok { .. } => return Ok(()),
                other => last = format!("{other:?}"),
            },
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NotReady {
        what: format!("variant `{}` at {}", target.spec.name, target.addr),
        waited: READY_DEADLINE,
        last,
    })
}

/// Starts every endpoint that is not running (killed by an event).
fn restore(endpoints: &Endpoints, binary: &Path) -> Result<(), BenchError> {
    let mut guard = lock(endpoints);
    for endpoint in guard.iter_mut().flatten() {
        if !endpoint.is_running() {
            // Killed by an event, or crashed: start it afresh on its ports.
            endpoint.child = None;
            endpoint.start(binary)?;
        }
    }
    Ok(())
}

/// Runs the scenario's events for this variant on a thread of their own, each at its
/// time from now; `None` when there are none.
fn start_events(
    scenario: &Scenario,
    target: &Target,
    endpoints: Endpoints,
    binary: PathBuf,
    lead: Duration,
) -> Option<std::thread::JoinHandle<Vec<String>>> {
    let mut events: Vec<(Duration, EventAction, usize, usize)> = scenario
        .spec
        .events
        .iter()
        .filter(|e| {
            e.variants
                .as_ref()
                .is_none_or(|v| v.iter().any(|n| n == &target.spec.name))
        })
        .filter_map(|e| {
            let service = e
                .service
                .as_ref()
                .and_then(|n| scenario.spec.services.iter().position(|s| &s.name == n))
                .unwrap_or(0);
            parse_duration(&e.at)
                .ok()
                .map(|at| (at, e.action, service, e.endpoint))
        })
        .collect();
    if events.is_empty() {
        return None;
    }
    events.sort_by_key(|e| e.0);
    let started = Instant::now() + lead;
    let variant = target.spec.name.clone();
    Some(std::thread::spawn(move || {
        let mut problems = Vec::new();
        for (at, action, service, endpoint) in events {
            std::thread::sleep((started + at).saturating_duration_since(Instant::now()));
            let mut guard = lock(&endpoints);
            let Some(process) = guard.get_mut(service).and_then(|s| s.get_mut(endpoint)) else {
                continue;
            };
            match action {
                // Dropping the child kills and reaps it.
                EventAction::Kill => process.child = None,
                EventAction::Restart if process.is_running() => problems.push(format!(
                    "{variant}: restart of {} at {at:?} skipped: it was running",
                    process.pod
                )),
                EventAction::Restart => {
                    if let Err(error) = process.start(&binary) {
                        tracing::warn!(%error, pod = %process.pod, "cannot restart the endpoint");
                        problems.push(format!(
                            "{variant}: restart of {} at {at:?} failed: {error}",
                            process.pod
                        ));
                    }
                }
            }
        }
        problems
    }))
}

fn describe_world(scenario: &Scenario, load: &ResolvedLoad, profile: &str) -> String {
    let spec = &scenario.spec;
    let endpoints: usize = spec
        .services
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|g| g.replicas)
        .sum();
    let shape = match load.mode {
        LoadMode::Closed => format!(
            "closed loop, {} callers on {} connections",
            load.concurrency, load.connections
        ),
        LoadMode::Open => format!(
            "open loop at {} calls/s over {} connections",
            load.rates
                .iter()
                .map(|r| format!("{r}"))
                .collect::<Vec<_>>()
                .join(", "),
            load.connections
        ),
    };
    format!(
        "profile {profile}: {} node(s), {endpoints} echo endpoint(s); {shape}; {:?} per run after {:?} of warm-up",
        spec.nodes.len(),
        load.duration,
        load.warmup
    )
}

fn summary_line(run: &RunResult) -> String {
    format!(
        "{}: {} ok, {} limited, {} errors, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        run.variant,
        run.ok,
        run.limited,
        run.errors(),
        run.throughput(),
        run.latency.p50_us / 1e3,
        run.latency.p99_us / 1e3
    )
}
