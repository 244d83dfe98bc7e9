//! What the process-level benchmarks ([`crate::proxy_bench`], [`crate::memory_bench`])
//! share: child processes that are killed when dropped, a scratch directory removed when
//! dropped, free loopback ports, tools looked up on `PATH`, a node identity, Kubernetes
//! manifests rendered as JSON documents, and bounded waits for an HTTP answer.
//!
//! Everything listens on and calls loopback only; every wait has a deadline.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_tunnels::{CertificateAuthority, IdentityFiles, NodeName, Validity};
use serde_json::json;

use crate::client::{self, Response};

/// Why a benchmark could not run or could not trust what it measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A tool the benchmark compares against or drives is not installed.
    #[error(
        "`{tool}` is not installed (looked in PATH, /usr/sbin and /sbin); install it with `apt-get install {package}` (or run scripts/install-deps.sh as root)"
    )]
    MissingTool {
        /// The executable.
        tool: String,
        /// The Debian packages to install.
        package: String,
    },
    /// A file or directory could not be made, read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A child process could not be started.
    #[error("cannot start {what} ({program}): {source}")]
    Spawn {
        /// Which process.
        what: String,
        /// The program.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A child process ended before it should have.
    #[error("{what} exited ({status}); last lines of its standard error:\n{stderr}")]
    Exited {
        /// Which process.
        what: String,
        /// How it ended.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// Something did not become ready within its deadline.
    #[error("{what} was not ready within {waited:?}: {last}")]
    NotReady {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
        /// The last thing seen.
        last: String,
    },
    /// A target answered, but not what the echo app answers.
    #[error("{target} answered wrongly: {detail}")]
    WrongAnswer {
        /// The target.
        target: String,
        /// What was wrong.
        detail: String,
    },
    /// A tool's output could not be read.
    #[error("cannot read the output of {what}: {detail}")]
    Parse {
        /// Which tool.
        what: String,
        /// What was wrong, with the output.
        detail: String,
    },
    /// The node identity could not be made.
    #[error("cannot issue the benchmark node's identity: {0}")]
    Identity(String),
    /// The options do not make a run.
    #[error("invalid benchmark options: {0}")]
    Options(String),
    /// A scenario, its thresholds or its load could not be used.
    #[error("{0}")]
    Scenario(String),
    /// The report could not be written.
    #[error("cannot write the report: {0}")]
    Report(String),
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// A scratch directory under the system's temporary directory, removed when dropped
/// (unless kept for a post-mortem).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Makes `causeway-<prefix>-<pid>-<n>` under the temporary directory, or uses `dir`
    /// (made if missing, and kept) when given.
    pub fn new(prefix: &str, dir: Option<&Path>) -> Result<Self, BenchError> {
        let (path, keep) = match dir {
            Some(dir) => (dir.to_path_buf(), true),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or_default();
                let name = format!("causeway-{prefix}-{}-{nanos}", std::process::id());
                (std::env::temp_dir().join(name), false)
            }
        };
        std::fs::create_dir_all(&path)
            .map_err(io_error(format!("cannot create {}", path.display())))?;
        Ok(Self { path, keep })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Lines of standard error kept per child for error messages.
const STDERR_TAIL: usize = 40;

/// A child process, killed (and reaped) when dropped. Its standard error is read by a
/// thread that keeps the last lines and, if asked, forwards every line.
#[derive(Debug)]
pub struct ChildProcess {
    what: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl ChildProcess {
    /// Starts `command` (its standard output discarded, standard error captured). With
    /// `lines`, every line of standard error is sent there too.
    pub fn spawn(
        what: &str,
        mut command: Command,
        lines: Option<mpsc::Sender<String>>,
    ) -> Result<Self, BenchError> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| BenchError::Spawn {
            what: what.to_string(),
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(lines) = &lines {
                        let _ = lines.send(line.clone());
                    }
                    if let Ok(mut tail) = tail.lock() {
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            });
        }
        Ok(Self {
            what: what.to_string(),
            child,
            tail,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this process is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// An error if the process has exited.
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status)),
            Err(source) => Err(BenchError::Io {
                what: format!("cannot check on {}", self.what),
                source,
            }),
        }
    }

    fn exited(&self, status: ExitStatus) -> BenchError {
        // Give the reader thread a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        BenchError::Exited {
            what: self.what.clone(),
            status: status.to_string(),
            stderr: self.stderr_tail(),
        }
    }

    /// The last lines of its standard error.
    pub fn stderr_tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to completion, killing it past `deadline`; returns its exit status
/// and standard output. Standard error is appended to the output on failure.
pub fn run_bounded(
    what: &str,
    mut command: Command,
    deadline: Duration,
) -> Result<(ExitStatus, String), BenchError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|source| BenchError::Spawn {
        what: what.to_string(),
        program,
        source,
    })?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::NotReady {
                    what: format!("{what} to finish"),
                    waited: deadline,
                    last: "killed".into(),
                });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Io {
                    what: format!("cannot wait for {what}"),
                    source,
                });
            }
        }
    };
    let mut out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        out.push_str(&err);
    }
    Ok((status, out))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<SocketAddr, BenchError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(io_error("cannot find a free TCP port on 127.0.0.1"))
}

/// A UDP port on 127.0.0.1 that was free a moment ago (and free for TCP too, so one
/// port serves a DNS server's UDP and TCP).
pub fn free_udp_and_tcp_port() -> Result<SocketAddr, BenchError> {
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|s| s.local_addr())
            .map_err(io_error("cannot find a free UDP port on 127.0.0.1"))?;
        if TcpListener::bind(udp).is_ok() {
            return Ok(udp);
        }
    }
    Err(BenchError::Io {
        what: "cannot find a port free for both UDP and TCP on 127.0.0.1".into(),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    })
}

/// Finds `tool` on `PATH`, or in /usr/sbin and /sbin (where Debian puts haproxy, and
/// which a non-root `PATH` often lacks).
pub fn find_tool(tool: &str, package: &str) -> Result<PathBuf, BenchError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| BenchError::MissingTool {
            tool: tool.to_string(),
            package: package.to_string(),
        })
}

/// Writes a fresh CA and the identity of `node` in `site` to `dir` (ca.pem, node.pem,
/// node-key.pem).
pub fn write_identity(dir: &Path, node: &str, site: &str) -> Result<(), BenchError> {
    let fail = |e: causeway_tunnels::identity::IdentityError| BenchError::Identity(e.to_string());
    std::fs::create_dir_all(dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    let ca = CertificateAuthority::generate().map_err(fail)?;
    let name = NodeName::new(node).map_err(fail)?;
    let credentials = ca
        .issue(
            &name,
            site,
            Validity::starting_now(Duration::from_secs(24 * 3600)),
        )
        .map_err(fail)?;
    credentials.write(&IdentityFiles::in_dir(dir)).map_err(fail)
}

/// Writes the identities of `nodes` (all in `site`), issued by one fresh CA so that
/// they trust each other, to `root/<node>/` (ca.pem, node.pem, node-key.pem each).
pub fn write_identities(root: &Path, nodes: &[&str], site: &str) -> Result<(), BenchError> {
    let placed: Vec<(&str, &str)> = nodes.iter().map(|n| (*n, site)).collect();
    write_placed_identities(root, &placed)
}

/// Writes the identities of `(node, site)` pairs, issued by one fresh CA so that they
/// trust each other, to `root/<node>/`.
pub fn write_placed_identities(root: &Path, nodes: &[(&str, &str)]) -> Result<(), BenchError> {
    let fail = |e: causeway_tunnels::identity::IdentityError| BenchError::Identity(e.to_string());
    let ca = CertificateAuthority::generate().map_err(fail)?;
    for (node, site) in nodes {
        let dir = root.join(node);
        std::fs::create_dir_all(&dir)
            .map_err(io_error(format!("cannot create {}", dir.display())))?;
        let name = NodeName::new(node).map_err(fail)?;
        let credentials = ca
            .issue(
                &name,
                site,
                Validity::starting_now(Duration::from_secs(24 * 3600)),
            )
            .map_err(fail)?;
        credentials
            .write(&IdentityFiles::in_dir(&dir))
            .map_err(fail)?;
    }
    Ok(())
}

/// A Node object: its site label and tunnel address annotation.
pub fn node_object(name: &str, site: &str, tunnel: SocketAddr) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {causeway_api::labels::SITE_LABEL: site},
            "annotations": {causeway_api::labels::TUNNEL_ADDRESS_ANNOTATION: tunnel.to_string()},
        },
    })
}

/// A Service with one plain TCP port (no appProtocol: carried per connection).
pub fn tcp_service_object(
    namespace: &str,
    name: &str,
    cluster_ip: Ipv4Addr,
    port: u16,
    target_port: u16,
) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "clusterIP": cluster_ip.to_string(),
            "ports": [{"name": "tcp", "port": port, "targetPort": target_port, "protocol": "TCP"}],
        },
    })
}

/// The EndpointSlice of Service `namespace/name`: ready endpoints `(ip, node)` on
/// `port` (named like the Service port of [`tcp_service_object`]).
pub fn endpoint_slice_object(
    namespace: &str,
    name: &str,
    endpoints: &[(String, String)],
    port: u16,
) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, node)| {
            json!({
                "addresses": [ip],
                "nodeName": node,
                "conditions": {"ready": true},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-bench"),
            "namespace": namespace,
            "labels": {causeway_api::labels::SERVICE_NAME_LABEL: name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "tcp", "port": port, "protocol": "TCP"}],
    })
}

/// A Service with one TCP port named `port_name`, with `appProtocol` when given (`http`,
/// `kubernetes.io/h2c`, …: the mesh then proxies it per request).
pub fn service_object(
    namespace: &str,
    name: &str,
    cluster_ip: Ipv4Addr,
    port: u16,
    target_port: u16,
    port_name: &str,
    app_protocol: Option<&str>,
) -> serde_json::Value {
    let mut service_port = json!({
        "name": port_name,
        "port": port,
        "targetPort": target_port,
        "protocol": "TCP",
    });
    if let Some(app_protocol) = app_protocol {
        service_port["appProtocol"] = json!(app_protocol);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip.to_string(), "ports": [service_port]},
    })
}

/// An EndpointSlice `slice` of Service `namespace/service`: ready endpoints `(ip, node)`
/// on `port`, named `port_name` (as the Service port it serves). A Service may have
/// several, e.g. one per endpoint when the endpoints listen on different ports.
pub fn named_endpoint_slice_object(
    namespace: &str,
    service: &str,
    slice: &str,
    endpoints: &[(String, String)],
    port: u16,
    port_name: &str,
) -> serde_json::Value {
    let mut object = endpoint_slice_object(namespace, service, endpoints, port);
    object["metadata"]["name"] = json!(slice);
    object["ports"] = json!([{"name": port_name, "port": port, "protocol": "TCP"}]);
    object
}

/// A TrafficPolicy `namespace/name` for every port of Service `service`, with the given
/// spec sections besides `targetRef` (`{"rateLimit": {...}}`, `{"loadBalancer": ...}`).
pub fn traffic_policy_object(
    namespace: &str,
    name: &str,
    service: &str,
    sections: serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({"targetRef": {"kind": "Service", "name": service}});
    if let (Some(spec), serde_json::Value::Object(sections)) = (spec.as_object_mut(), sections) {
        spec.extend(sections);
    }
    json!({
        "apiVersion": "policy.causeway.dev/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Objects as a manifests file: one compact JSON document each (JSON is YAML).
pub fn render_documents(objects: &[serde_json::Value]) -> String {
    let mut out = String::from("# Written by a causeway benchmark.\n");
    for object in objects {
        out.push_str("---\n");
        out.push_str(&object.to_string());
        out.push('\n');
    }
    out
}

/// Writes `objects` as `dir/manifests/<file>` (the directory a node's `--manifests`
/// watches) and returns the directory.
pub fn write_manifests(
    dir: &Path,
    file: &str,
    objects: &[serde_json::Value],
) -> Result<PathBuf, BenchError> {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)
        .map_err(io_error(format!("cannot create {}", manifests.display())))?;
    let path = manifests.join(file);
    std::fs::write(&path, render_documents(objects))
        .map_err(io_error(format!("cannot write {}", path.display())))?;
    Ok(manifests)
}

/// The `causeway node` command of a benchmark node: state in `dir/state-<name>`, its
/// identity in `identities/<name>`, fed from `manifests`, the tunnel on `tunnel`, no
/// proxy, SOCKS, admin or DNS listener (callers add `--service` listeners), loopback
/// endpoints allowed, logging warnings without colour.
pub fn node_command(
    binary: &Path,
    name: &str,
    site: &str,
    dir: &Path,
    identities: &Path,
    manifests: &Path,
    tunnel: SocketAddr,
) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["node", "--name", name, "--site", site])
        .arg("--state-dir")
        .arg(dir.join(format!("state-{name}")))
        .arg("--identity-dir")
        .arg(identities.join(name))
        .arg("--manifests")
        .arg(manifests)
        .args(["--tunnel-listen", &tunnel.to_string()])
        .args(["--http-proxy", "off", "--socks", "off", "--admin", "off"])
        .args(["--dns", "off"])
        .arg("--allow-loopback-endpoints")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    command
}

/// GETs `path` from `addr` with a deadline, on a runtime of its own (the benchmarks
/// drive processes and are not async).
pub fn get_blocking(
    addr: SocketAddr,
    path: &str,
    deadline: Duration,
) -> Result<Response, client::CallError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| client::CallError(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(client::get(addr, path, deadline))
}

/// Polls `addr` until `GET path` answers 200, `child` dies, or `deadline` passes;
/// returns the body.
pub fn wait_for_http(
    child: &mut ChildProcess,
    addr: SocketAddr,
    path: &str,
    deadline: Duration,
) -> Result<String, BenchError> {
    let started = Instant::now();
    let mut last = String::from("nothing tried");
    while started.elapsed() < deadline {
        child.check_running()?;
        match get_blocking(addr, path, Duration::from_secs(2)) {
            Ok(response) if response.status == 200 => return Ok(response.body),
            Ok(response) => last = format!("status {}: {}", response.status, response.body),
            Err(error) => last = error.0,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BenchError::NotReady {
        what: format!("{} at http://{addr}{path}", child.what()),
        waited: deadline,
        last,
    })
}

/// This machine in one line: CPU model, cores, memory, kernel (from /proc).
pub fn machine_summary() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0));
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{model}, {cores} cores, {memory_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// The 1-minute load average from /proc/loadavg ("?" if unreadable): the benchmarks
/// share their machine, and say how busy it was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The median of one measure of `runs` (see [`median`]).
pub fn median_of<T>(runs: &[T], measure: impl Fn(&T) -> f64) -> f64 {
    median(&runs.iter().map(measure).collect::<Vec<_>>())
}

/// The median of `values` (the mean of the middle two for an even count); 0 if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn manifests_decode_as_the_node_reads_them() {
        let text = render_documents(&[
            node_object("n1", "s1", "127.0.0.1:7443".parse().unwrap()),
            tcp_service_object("bench", "echo", Ipv4Addr::new(10, 96, 0, 1), 80, 8080),
            endpoint_slice_object("bench", "echo", &[("127.0.0.1".into(), "n1".into())], 8080),
        ]);
        let decoded =
            causeway_api::manifest::decode(&causeway_yaml::Source::new("bench.yaml", text));
        assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
        assert_eq!(decoded.objects.len(), 3);
    }

    #[test]
    fn http_manifests_decode_as_the_node_reads_them() {
        let text = render_documents(&[
            service_object(
                "bench",
                "web",
                Ipv4Addr::new(10, 96, 0, 2),
                80,
                8080,
                "http",
                Some("http"),
            ),
            named_endpoint_slice_object(
                "bench",
                "web",
                "web-0",
                &[("127.0.0.1".into(), "n1".into())],
                8080,
                "http",
            ),
        ]);
        let decoded =
            causeway_api::manifest::decode(&causeway_yaml::Source::new("bench.yaml", text));
        assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
        assert_eq!(decoded.objects.len(), 2);
        let policy = traffic_policy_object(
            "bench",
            "web",
            "web",
            json!({"rateLimit": {"qps": 100, "enforceAt": "Source"}}),
        );
        assert_eq!(policy["spec"]["targetRef"]["name"], "web");
        assert_eq!(policy["spec"]["rateLimit"]["qps"], 100);
    }
}
