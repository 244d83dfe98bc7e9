//! The memory benchmark (`causeway bench memory`): the resident memory of one idle
//! `causeway node` holding N Services × M endpoints, against the same node holding
//! nothing.
//!
//! It writes manifests (Nodes, Services with one TCP port, one EndpointSlice per Service
//! whose endpoints are spread over the Nodes; pod IPs in 10.0.0.0/8, never dialled),
//! starts the node on them as a child process (admin on a free loopback port, HTTP proxy
//! and SOCKS off, DNS off — and, if asked, a second run with DNS on loopback), waits
//! until the node logs that the manifests are applied (so the reading is not inflated by
//! the benchmark's own `/config_dump`), lets it idle, reads `/proc/<pid>/status`, then
//! checks through `/config_dump` that every Service and endpoint is there and reads
//! again. With `from_store`, the loaded node is restarted from its SQLite store alone
//! (no manifests source), which shows what the source's own copy of the objects costs.
//!
//! Nothing is sent anywhere but the node's loopback admin port.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{
    self, BenchError, ChildProcess, ScratchDir, endpoint_slice_object, free_tcp_port, io_error,
    node_object, render_documents, tcp_service_object,
};

const SITE: &str = "bench";
const NAMESPACE: &str = "bench";
const ENDPOINT_PORT: u16 = 8080;

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct MemoryBenchConfig {
    /// The `causeway` executable.
    pub binary: PathBuf,
    /// Services to load.
    pub services: usize,
    /// Endpoints per Service.
    pub endpoints_per_service: usize,
    /// Node objects the endpoints are spread over (the node measured is the first).
    pub nodes: usize,
    /// Manifest files the Services are spread over.
    pub files: usize,
    /// How long the node idles before it is measured.
    pub idle: Duration,
    /// How long loading may take.
    pub load_deadline: Duration,
    /// Also measure the loaded node with its DNS server on.
    pub with_dns: bool,
    /// Also measure the loaded node restarted from its store, without the manifests.
    pub from_store: bool,
    /// Where to keep the files (kept afterwards); default: a scratch directory removed
    /// at the end.
    pub work_dir: Option<PathBuf>,
}

impl MemoryBenchConfig {
    /// The full run: 1,000 Services × 10 endpoints over 50 Nodes in 10 files, 5 s idle,
    /// with the DNS and from-store runs.
    pub fn full(binary: PathBuf) -> Self {
        Self {
            binary,
            services: 1000,
            endpoints_per_service: 10,
            nodes: 50,
            files: 10,
            idle: Duration::from_secs(5),
            load_deadline: Duration::from_secs(180),
            with_dns: true,
            from_store: true,
            work_dir: None,
        }
    }

    /// A smoke run: 100 Services × 10 endpoints over 10 Nodes, 1 s idle, every variant.
    pub fn quick(binary: PathBuf) -> Self {
        Self {
            services: 100,
            nodes: 10,
            files: 2,
            idle: Duration::from_secs(1),
            ..Self::full(binary)
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Options(m.to_string()));
        if self.services == 0 || self.services > 60_000 {
            return bad("services must be 1 to 60000");
        }
        if self.endpoints_per_service == 0 || self.endpoints_per_service > 1000 {
            return bad("endpoints per service must be 1 to 1000");
        }
        if self.services * self.endpoints_per_service > 1_000_000 {
            return bad("at most 1,000,000 endpoints in all");
        }
        if self.nodes == 0 || self.nodes > 10_000 {
            return bad("nodes must be 1 to 10000");
        }
        if self.files == 0 || self.files > self.services {
            return bad("files must be 1 to the number of services");
        }
        if self.idle > Duration::from_secs(600) || self.load_deadline > Duration::from_secs(1800) {
            return bad("idle at most 600 s, load deadline at most 1800 s");
        }
        Ok(())
    }

    fn objects(&self) -> usize {
        self.nodes + 2 * self.services
    }
}

/// Memory figures of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcMemory {
    /// Resident now.
    pub vm_rss_kib: u64,
    /// Resident at the peak.
    pub vm_hwm_kib: u64,
    /// Resident anonymous memory (heap, stacks).
    pub rss_anon_kib: u64,
    /// Resident file-backed memory (the executable's pages, mostly).
    pub rss_file_kib: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcMemory {
    /// Reads `/proc/<pid>/status`.
    pub fn read(pid: u32) -> Result<Self, BenchError> {
        let path = format!("/proc/{pid}/status");
        let text =
            std::fs::read_to_string(&path).map_err(io_error(format!("cannot read {path}")))?;
        Self::parse(&text).ok_or_else(|| BenchError::Parse {
            what: path,
            detail: "no VmRSS/VmHWM lines".into(),
        })
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        Some(Self {
            vm_rss_kib: field("VmRSS")?,
            vm_hwm_kib: field("VmHWM")?,
            rss_anon_kib: field("RssAnon").unwrap_or_default(),
            rss_file_kib: field("RssFile").unwrap_or_default(),
            threads: field("Threads").unwrap_or_default(),
        })
    }
}

/// One measured node.
#[derive(Debug, Clone)]
pub struct MemoryRun {
    /// What was loaded and how.
    pub name: String,
    /// Services loaded (as `/config_dump` counted them).
    pub services: usize,
    /// Endpoints loaded (as `/config_dump` counted them).
    pub endpoints: usize,
    /// From start to the objects being served.
    pub load_time: Duration,
    /// Idle, before anyone asked the admin endpoint anything.
    pub idle: ProcMemory,
    /// After one `/config_dump`.
    pub after_dump: ProcMemory,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    /// The runs: empty first, then loaded, then the variants.
    pub runs: Vec<MemoryRun>,
    /// The configuration, for the record.
    pub config: MemoryBenchConfig,
}

fn mb(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

impl MemoryReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| node | services | endpoints | ready after | VmRSS idle (MiB) | RssAnon | RssFile | VmHWM (peak) | threads | VmRSS after /config_dump |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} s | {} | {} | {} | {} | {} | {} |",
                run.name,
                run.services,
                run.endpoints,
                run.load_time.as_secs_f64(),
                mb(run.idle.vm_rss_kib),
                mb(run.idle.rss_anon_kib),
                mb(run.idle.rss_file_kib),
                mb(run.idle.vm_hwm_kib),
                run.idle.threads,
                mb(run.after_dump.vm_rss_kib),
            );
        }
        if let (Some(empty), Some(loaded)) = (self.runs.first(), self.runs.get(1))
            && loaded.services > 0
        {
            let extra = loaded.idle.vm_rss_kib.saturating_sub(empty.idle.vm_rss_kib);
            let _ = writeln!(
                out,
                "\nLoaded − empty: {} MiB idle, {:.1} KiB per Service with its {} endpoints ({:.0} bytes per endpoint).",
                mb(extra),
                extra as f64 / loaded.services as f64,
                self.config.endpoints_per_service,
                extra as f64 * 1024.0 / loaded.endpoints.max(1) as f64,
            );
        }
        out
    }
}

/// Runs the benchmark. `progress` is told what happens, a line at a time.
pub fn run(
    config: &MemoryBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<MemoryReport, BenchError> {
    config.check()?;
    if !Path::new("/proc/self/status").exists() {
        return Err(BenchError::Options(
            "this benchmark reads /proc/<pid>/status (Linux only)".into(),
        ));
    }
    let scratch = ScratchDir::new("bench-memory", config.work_dir.as_deref())?;
    let dir = scratch.path();
    progress(&format!("files in {}", dir.display()));
    let node_names: Vec<String> = (0..config.nodes).map(|i| format!("node-{i:03}")).collect();
    let me = node_names[0].clone();
    let identity = dir.join("identity");
    harness::write_identity(&identity, &me, SITE)?;
    let empty = dir.join("manifests-empty");
    std::fs::create_dir_all(&empty)
        .map_err(io_error(format!("cannot create {}", empty.display())))?;
    let loaded = dir.join("manifests-loaded");
    let written = write_manifests(config, &loaded, &node_names)?;
    progress(&format!(
        "wrote {} objects ({} Services × {} endpoints over {} Nodes, {} KiB of manifests)",
        config.objects(),
        config.services,
        config.endpoints_per_service,
        config.nodes,
        written / 1024
    ));

    let mut runs = Vec::new();
    let spec =
        |name: &str, state: &str, manifests: Option<&Path>, objects: usize, dns: bool| NodeRun {
            name: name.to_string(),
            node: me.clone(),
            state: dir.join(state),
            identity: identity.clone(),
            manifests: manifests.map(Path::to_path_buf),
            objects,
            dns,
        };
    let mut plan = vec![
        spec("empty", "state-empty", Some(&empty), 0, false),
        spec(
            "loaded",
            "state-loaded",
            Some(&loaded),
            config.objects(),
            false,
        ),
    ];
    if config.with_dns {
        plan.push(spec(
            "loaded, DNS on",
            "state-dns",
            Some(&loaded),
            config.objects(),
            true,
        ));
    }
    if config.from_store {
        plan.push(spec(
            "loaded, from store (no manifests source)",
            "state-loaded",
            None,
            config.objects(),
            false,
        ));
    }
    for node in plan {
        let run = measure(config, &node, progress)?;
        let expected = if node.objects == 0 {
            (0, 0)
        } else {
            (
                config.services,
                config.services * config.endpoints_per_service,
            )
        };
        if (run.services, run.endpoints) != expected {
            return Err(BenchError::WrongAnswer {
                target: format!("the {} node's /config_dump", node.name),
                detail: format!(
                    "{} services with {} endpoints, expected {} with {}",
                    run.services, run.endpoints, expected.0, expected.1
                ),
            });
        }
        progress(&format!(
            "{}: {} services, {} endpoints, ready in {:.1} s; idle VmRSS {} MiB (peak {} MiB)",
            run.name,
            run.services,
            run.endpoints,
            run.load_time.as_secs_f64(),
            mb(run.idle.vm_rss_kib),
            mb(run.idle.vm_hwm_kib)
        ));
        runs.push(run);
    }
    Ok(MemoryReport {
        runs,
        config: config.clone(),
    })
}

/// Writes the Nodes and the Services with their EndpointSlices; returns the bytes
/// written.
fn write_manifests(
    config: &MemoryBenchConfig,
    dir: &Path,
    nodes: &[String],
) -> Result<usize, BenchError> {
    std::fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    let mut bytes = 0;
    let mut write = |name: String, objects: &[serde_json::Value]| {
        let path = dir.join(name);
        let text = render_documents(objects);
        bytes += text.len();
        std::fs::write(&path, text).map_err(io_error(format!("cannot write {}", path.display())))
    };
    let node_objects: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // Tunnel addresses on loopback; nothing dials them while the node idles.
            let port = 20_000 + u16::try_from(i % 40_000).unwrap_or(0);
            node_object(name, SITE, SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .collect();
    write("nodes.yaml".into(), &node_objects)?;
    let per_file = config.services.div_ceil(config.files);
    let m = config.endpoints_per_service;
    for (f, first) in (0..config.services).step_by(per_file).enumerate() {
        let mut objects = Vec::with_capacity(2 * per_file);
        for s in first..(first + per_file).min(config.services) {
            let name = format!("svc-{s:05}");
            let cluster_ip = std::net::Ipv4Addr::new(10, 96, (s / 256) as u8, (s % 256) as u8);
            objects.push(tcp_service_object(
                NAMESPACE,
                &name,
                cluster_ip,
                80,
                ENDPOINT_PORT,
            ));
            let endpoints: Vec<(String, String)> = (0..m)
                .map(|e| {
                    let k = s * m + e;
                    let ip = format!("10.{}.{}.{}", 1 + k / 65_536, (k / 256) % 256, k % 256);
                    (ip, nodes[k % nodes.len()].clone())
                })
                .collect();
            objects.push(endpoint_slice_object(
                NAMESPACE,
                &name,
                &endpoints,
                ENDPOINT_PORT,
            ));
        }
        write(format!("services-{f:03}.yaml"), &objects)?;
    }
    Ok(bytes)
}

struct NodeRun {
    name: String,
    node: String,
    state: PathBuf,
    identity: PathBuf,
    manifests: Option<PathBuf>,
    objects: usize,
    dns: bool,
}

fn measure(
    config: &MemoryBenchConfig,
    run: &NodeRun,
    progress: &mut dyn FnMut(&str),
) -> Result<MemoryRun, BenchError> {
    let admin = free_tcp_port()?;
    let tunnel = harness::free_udp_and_tcp_port()?;
    let mut command = Command::new(&config.binary);
    command
        .args(["--log-format", "json", "node", "--name", &run.node])
        .args(["--site", SITE])
        .arg("--state-dir")
        .arg(&run.state)
        .arg("--identity-dir")
        .arg(&run.identity)
        .args(["--tunnel-listen", &tunnel.to_string()])
        .args(["--http-proxy", "off", "--socks", "off"])
        .args(["--admin", &admin.to_string()])
        .env("RUST_LOG", "info");
    if let Some(manifests) = &run.manifests {
        command.arg("--manifests").arg(manifests);
    }
    if run.dns {
        let dns = harness::free_udp_and_tcp_port()?;
        // Names outside the cluster would go to a loopback port nobody serves; none are
        // asked.
        let upstream = harness::free_udp_and_tcp_port()?;
        command
            .args(["--dns", &dns.to_string()])
            .args(["--dns-upstream", &upstream.to_string()]);
    } else {
        command.args(["--dns", "off"]);
    }
    progress(&format!("starting the {} node", run.name));
    let (lines, logged) = mpsc::channel();
    let started = Instant::now();
    let mut child = ChildProcess::spawn(&format!("the {} node", run.name), command, Some(lines))?;
    let ready = |event: &serde_json::Value| match &run.manifests {
        Some(_) => {
            event["message"] == "manifests applied"
                && event["objects"].as_u64() == u64::try_from(run.objects).ok()
        }
        None => event["message"] == "node up",
    };
    wait_for_log(&mut child, &logged, config.load_deadline, ready)?;
    let load_time = started.elapsed();
    std::thread::sleep(config.idle);
    child.check_running()?;
    let idle = ProcMemory::read(child.pid())?;
    let dump = harness::wait_for_http(&mut child, admin, "/config_dump", Duration::from_secs(30))?;
    let (services, endpoints, dns) = count_dump(&dump).map_err(|detail| BenchError::Parse {
        what: "/config_dump".into(),
        detail,
    })?;
    if dns != run.dns {
        return Err(BenchError::WrongAnswer {
            target: format!("the {} node's /config_dump", run.name),
            detail: format!("its DNS server is {}", if dns { "on" } else { "off" }),
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let after_dump = ProcMemory::read(child.pid())?;
    drop(child);
    Ok(MemoryRun {
        name: run.name.clone(),
        services,
        endpoints,
        load_time,
        idle,
        after_dump,
    })
}

fn wait_for_log(
    child: &mut ChildProcess,
    lines: &mpsc::Receiver<String>,
    deadline: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut last = String::from("no log line");
    while started.elapsed() < deadline {
        child.check_running()?;
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && ready(&event)
                {
                    return Ok(());
                }
                last = line;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                child.check_running()?;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Err(BenchError::NotReady {
        what: format!("{} (its objects loaded)", child.what()),
        waited: deadline,
        last,
    })
}

/// Services and endpoints in a `/config_dump`, and whether it shows a DNS server.
fn count_dump(body: &str) -> Result<(usize, usize, bool), String> {
    let dump: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let services = dump["services"].as_array().ok_or("no `services` list")?;
    let endpoints = services
        .iter()
        .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
        .sum();
    Ok((services.len(), endpoints, !dump["dns"].is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_is_read() {
        let text = "Name:\tcauseway\nVmHWM:\t   30000 kB\nVmRSS:\t   25000 kB\nRssAnon:\t   15000 kB\nRssFile:\t   10000 kB\nThreads:\t5\n";
        assert_eq!(
            ProcMemory::parse(text),
            Some(ProcMemory {
                vm_rss_kib: 25000,
                vm_hwm_kib: 30000,
                rss_anon_kib: 15000,
                rss_file_kib: 10000,
                threads: 5,
            })
        );
        assert_eq!(ProcMemory::parse("Name: x\n"), None);
        assert!(ProcMemory::read(std::process::id()).is_ok());
    }

    #[test]
    fn dumps_are_counted() {
        let body = r#"{"services":[{"endpoints":[{},{}]},{"endpoints":[]}],"dns":null}"#;
        assert_eq!(count_dump(body), Ok((2, 2, false)));
        let body = r#"{"services":[],"dns":{"udp":[]}}"#;
        assert_eq!(count_dump(body), Ok((0, 0, true)));
        assert!(count_dump("{}").is_err());
    }

    #[test]
    fn manifests_hold_every_object() {
        let dir = ScratchDir::new("memory-manifests-test", None).unwrap();
        let mut config = MemoryBenchConfig::quick(PathBuf::from("causeway"));
        config.services = 7;
        config.files = 3;
        config.nodes = 2;
        config.endpoints_per_service = 3;
        let nodes = vec!["node-000".to_string(), "node-001".to_string()];
        write_manifests(&config, dir.path(), &nodes).unwrap();
        let mut objects = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let decoded = causeway_api::manifest::decode(&causeway_yaml::Source::new(
                path.display().to_string(),
                text,
            ));
            assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
            objects += decoded.objects.len();
            files += 1;
        }
        assert_eq!(files, 4);
        assert_eq!(objects, config.objects());
    }
}
