//! The two servers under test as the benchmark runs them — the mesh's DNS server on a
//! runtime of its own, dnsmasq as a child process — and the CPU time each uses, read
//! from `/proc`.
//!
//! Both listen on 127.0.0.1 only; dnsmasq reads no configuration but its command line,
//! and neither forwards anything anywhere.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use causeway_edge_core::metamanager::MetaManager;
use causeway_mesh::dns::{DnsConfig, DnsError, DnsHandler, DnsServer};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::{CpuTime, DnsBenchError, LOCALHOST, MESH_THREAD_NAME, TTL, USER_HZ, io};

/// A runtime shut down without blocking when dropped (dropping a runtime blocks, which
/// is not allowed on an async thread).
struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The mesh's DNS server on its own multi-thread runtime.
pub(super) struct MeshServer {
    pub(super) addr: SocketAddr,
    pub(super) handler: Arc<DnsHandler>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _runtime: BackgroundRuntime,
}

impl MeshServer {
    pub(super) async fn start(threads: usize, store: MetaManager) -> Result<Self, DnsBenchError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(MESH_THREAD_NAME)
            .enable_all()
            .build()
            .map_err(io("cannot build the mesh DNS runtime"))?;
        let runtime = BackgroundRuntime(Some(runtime));
        let any = SocketAddr::new(LOCALHOST, 0);
        let config = DnsConfig {
            udp: vec![any],
            tcp: vec![any],
            // No upstreams: every name asked is a cluster name, and nothing is forwarded.
            upstreams: Vec::new(),
            resolv_conf: None,
            cluster_ttl: TTL,
            ..DnsConfig::default()
        };
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = async move {
            match DnsServer::start(config, store).await {
                Ok(server) => {
                    let addr = server.udp_addrs().first().copied();
                    let _ = ready.send(Ok((addr, server.handler())));
                    let _ = stopped.await;
                    server.shutdown().await;
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }
        };
        let Some(handle) = runtime.0.as_ref().map(|r| r.handle().clone()) else {
            return Err(DnsBenchError::Dns(DnsError::Config(
                "the mesh DNS runtime is gone".to_string(),
            )));
        };
        let task = handle.spawn(server);
        let gone = |why: &str| DnsBenchError::Dns(DnsError::Config(why.to_string()));
        let (addr, handler) = match started.await {
            Ok(Ok((Some(addr), handler))) => (addr, handler),
            Ok(Ok((None, _))) => return Err(gone("no UDP address bound")),
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => return Err(gone("the server task ended before it started")),
        };
        Ok(Self {
            addr,
            handler,
            stop,
            task,
            _runtime: runtime,
        })
    }

    /// Stops the server and waits (a bounded time) for its sockets to close.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let task = self.task;
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        // The runtime is shut down in the background as `_runtime` drops.
    }
}

/// dnsmasq as a child process on 127.0.0.1, killed when dropped.
pub(super) struct Dnsmasq {
    pub(super) addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq answering `names` from a hosts file, on a free port of 127.0.0.1.
    pub(super) async fn start(
        program: &Path,
        dir: &Path,
        names: &[(String, Ipv4Addr)],
    ) -> Result<Self, DnsBenchError> {
        let hosts = dir.join("hosts");
        let mut text = String::new();
        for (name, ip) in names {
            text.push_str(&format!("{ip} {name}\n"));
        }
        std::fs::write(&hosts, text).map_err(io("cannot write dnsmasq's hosts file"))?;
        let log = dir.join("dnsmasq.log");
        let port = free_port().await?;
        let stderr = std::fs::File::create(&log).map_err(io("cannot create dnsmasq's log"))?;
        let child = Command::new(program)
            .args([
                "--keep-in-foreground",
                "--log-facility=-",
                // No configuration but this command line: not /etc/dnsmasq.conf, not
                // /etc/hosts, not resolv.conf (nothing is forwarded anywhere).
                "--conf-file=/dev/null",
                "--no-hosts",
                "--no-resolv",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--cache-size=10000",
            ])
            .arg(format!("--local-ttl={TTL}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("cannot start {}", program.display())))?;
        Ok(Self {
            addr: SocketAddr::new(LOCALHOST, port),
            child,
            log,
        })
    }

    /// Whose CPU time is dnsmasq's.
    pub(super) fn cpu(&self) -> Cpu {
        self.child.id().map_or(Cpu::Unknown, Cpu::Process)
    }

    /// Kills dnsmasq and waits (a bounded time) for it to be gone.
    pub(super) async fn stop(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.kill()).await;
    }

    /// An error when dnsmasq has exited.
    pub(super) fn check_alive(&mut self) -> Result<(), DnsBenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(DnsBenchError::DnsmasqExited {
                status: status.to_string(),
                output: std::fs::read_to_string(&self.log).unwrap_or_default(),
            }),
            Err(error) => Err(DnsBenchError::Io {
                what: "cannot see whether dnsmasq runs".to_string(),
                source: error,
            }),
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        // SIGKILL; tokio reaps the child in the background.
        let _ = self.child.start_kill();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
async fn free_port() -> Result<u16, DnsBenchError> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind((LOCALHOST, 0))
            .await
            .map_err(io("cannot find a free port"))?;
        let port = udp
            .local_addr()
            .map_err(io("cannot find a free port"))?
            .port();
        match std::net::TcpListener::bind((LOCALHOST, port)) {
            Ok(_) => return Ok(port),
            Err(error) => last = Some(error),
        }
    }
    Err(DnsBenchError::Io {
        what: "no port free for both UDP and TCP on 127.0.0.1".to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no attempt made")),
    })
}

/// Whose CPU time a run's `server_cpu` counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cpu {
    /// The mesh server's worker threads, in this process.
    MeshThreads,
    /// A child process (dnsmasq).
    Process(u32),
    /// Not known.
    Unknown,
}

impl Cpu {
    /// User and system CPU time so far; `None` when `/proc` does not say.
    pub(super) fn read(self) -> Option<CpuTime> {
        match self {
            Cpu::Process(pid) => {
                stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
            }
            Cpu::MeshThreads => {
                let mut total = CpuTime::default();
                let mut found = false;
                for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
                    let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                        continue;
                    };
                    if stat_comm(&text) == Some(MESH_THREAD_NAME) {
                        let thread = stat_cpu(&text)?;
                        total.user += thread.user;
                        total.system += thread.system;
                        found = true;
                    }
                }
                found.then_some(total)
            }
            Cpu::Unknown => None,
        }
    }
}

/// The command (thread) name of a `/proc/*/stat` line.
fn stat_comm(text: &str) -> Option<&str> {
    text.get(text.find('(')? + 1..text.rfind(')')?)
}

/// utime and stime of a `/proc/*/stat` line (fields 14 and 15, counted after the name,
/// which may hold spaces).
fn stat_cpu(text: &str) -> Option<CpuTime> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = |field: Option<&str>| -> Option<Duration> {
        let ticks: u64 = field?.parse().ok()?;
        Some(Duration::from_millis(ticks.saturating_mul(1000) / USER_HZ))
    };
    Some(CpuTime {
        user: ticks(fields.next())?,
        system: ticks(fields.next())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_times() {
        let line =
            "31500 (cw bench) dns) R 31498 31498 3200 0 -1 4194304 156 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_comm(line), Some("cw bench) dns"));
        assert_eq!(
            stat_cpu(line),
            Some(CpuTime {
                user: Duration::from_millis(2500),
                system: Duration::from_millis(500)
            })
        );
        assert_eq!(stat_cpu("1 (x) R"), None);
        // This test's own thread is there to be read.
        assert!(Cpu::Process(std::process::id()).read().is_some());
    }
}
