//! dnsperf as the benchmark drives it: one command line for both servers but the port,
//! runs bounded in time (`-l`) and count (`-n`) and killed if they outlive their bound,
//! and the statistics and per-query latencies it prints.
//!
//! dnsperf is pointed at 127.0.0.1 only.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::servers::Cpu;
use super::{
    DNSPERF_TIMEOUT_SECS, DnsBenchError, DnsBenchOptions, DnsperfRun, MAX_LATENCY_SAMPLES,
    MAX_QPS_BOUND, Percentiles, RUN_SLACK, io, seconds,
};

/// dnsperf, as both servers get it.
pub(super) struct Load<'a> {
    pub(super) dnsperf: &'a Path,
    pub(super) queries: &'a Path,
    pub(super) options: &'a DnsBenchOptions,
    pub(super) services: usize,
}

impl Load<'_> {
    /// dnsperf's arguments; `rate` makes it the latency pass (`-Q`, `-v`).
    pub(super) fn arguments(
        &self,
        port: &str,
        data: &str,
        time: Duration,
        rate: Option<u32>,
    ) -> Vec<String> {
        let o = self.options;
        // The count bound: at most this many passes over the names.
        let per_second = rate.map_or(MAX_QPS_BOUND, u64::from);
        let services = u64::try_from(self.services.max(1)).unwrap_or(u64::MAX);
        let passes = (per_second.saturating_mul(time.as_millis().max(1) as u64) / 1000)
            .div_ceil(services)
            .max(1);
        let mut args: Vec<String> = [
            "-s",
            "127.0.0.1",
            "-p",
            port,
            "-d",
            data,
            "-l",
            &seconds(time),
            "-n",
            &passes.to_string(),
            "-c",
            &o.clients.to_string(),
            "-T",
            &o.threads.to_string(),
            "-q",
            &o.outstanding.to_string(),
            "-t",
            &DNSPERF_TIMEOUT_SECS.to_string(),
        ]
        .into_iter()
        .map(String::from)
        .collect();
        if let Some(rate) = rate {
            args.extend(["-Q".to_string(), rate.to_string(), "-v".to_string()]);
        }
        args
    }

    async fn dnsperf(
        &self,
        server: &'static str,
        addr: SocketAddr,
        time: Duration,
        rate: Option<u32>,
    ) -> Result<String, DnsBenchError> {
        let args = self.arguments(
            &addr.port().to_string(),
            &self.queries.display().to_string(),
            time,
            rate,
        );
        let child = Command::new(self.dnsperf)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("cannot start {}", self.dnsperf.display())))?;
        let limit = time + Duration::from_secs(DNSPERF_TIMEOUT_SECS) + RUN_SLACK;
        let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(output) => output.map_err(io("cannot read dnsperf's output"))?,
            // Dropping the child (kill_on_drop) killed it.
            Err(_) => {
                return Err(DnsBenchError::Dnsperf {
                    server,
                    problem: format!("still running after {limit:?}; killed"),
                });
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(DnsBenchError::Dnsperf {
                server,
                problem: format!(
                    "{} ({}):\n{}{}",
                    output.status,
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr),
                    stdout
                ),
            });
        }
        Ok(stdout)
    }

    /// One unthrottled run.
    pub(super) async fn throughput(
        &self,
        server: &'static str,
        addr: SocketAddr,
        cpu: Cpu,
        time: Duration,
    ) -> Result<DnsperfRun, DnsBenchError> {
        let cpu_before = cpu.read();
        let start = Instant::now();
        let output = self.dnsperf(server, addr, time, None).await?;
        let wall = start.elapsed();
        let cpu_after = cpu.read();
        let mut run = parse_dnsperf(&output).map_err(|problem| DnsBenchError::Dnsperf {
            server,
            problem: format!("{problem}; its output:\n{output}"),
        })?;
        run.wall = wall;
        run.server_cpu = cpu_before
            .zip(cpu_after)
            .and_then(|(before, after)| after.since(&before));
        if run.completed == 0 {
            return Err(DnsBenchError::Dnsperf {
                server,
                problem: format!("no query was answered; its output:\n{output}"),
            });
        }
        Ok(run)
    }

    /// One run at the latency rate, with per-query latencies.
    pub(super) async fn latency(
        &self,
        server: &'static str,
        addr: SocketAddr,
        time: Duration,
    ) -> Result<Option<Percentiles>, DnsBenchError> {
        let output = self
            .dnsperf(server, addr, time, Some(self.options.latency_rate))
            .await?;
        Ok(percentiles(parse_latencies(&output)))
    }
}

/// Reads the statistics dnsperf prints at the end of a run.
pub(super) fn parse_dnsperf(output: &str) -> Result<DnsperfRun, String> {
    let field = |label: &str| -> Option<&str> {
        output
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(str::trim)
    };
    let first_word = |label: &str| field(label).and_then(|v| v.split_whitespace().next());
    let count = |label: &str| -> Result<u64, String> {
        first_word(label)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no number after {label:?}"))
    };
    let secs = |label: &str| -> Option<Duration> {
        first_word(label)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
    };
    let noerror = field("Response codes:")
        .and_then(|codes| {
            codes.split(',').find_map(|code| {
                let mut words = code.split_whitespace();
                (words.next() == Some("NOERROR"))
                    .then(|| words.next().and_then(|n| n.parse().ok()))
                    .flatten()
            })
        })
        .unwrap_or(0);
    Ok(DnsperfRun {
        sent: count("Queries sent:")?,
        completed: count("Queries completed:")?,
        lost: count("Queries lost:")?,
        noerror,
        qps: first_word("Queries per second:")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or("no number after \"Queries per second:\"")?,
        average_latency: secs("Average Latency (s):").unwrap_or_default(),
        latency_stddev: secs("Latency StdDev (s):").unwrap_or_default(),
        server_cpu: None,
        wall: Duration::ZERO,
    })
}

/// The latencies of dnsperf's per-query lines (`-v`): `> NOERROR name A 0.000045`.
/// Lines of other answers (or none) are left out.
pub(super) fn parse_latencies(output: &str) -> Vec<Duration> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some(">") || words.next() != Some("NOERROR") {
                return None;
            }
            words
                .last()?
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
        })
        .take(MAX_LATENCY_SAMPLES)
        .collect()
}

/// p50, p99 and max (nearest rank); `None` with no samples.
pub(super) fn percentiles(mut samples: Vec<Duration>) -> Option<Percentiles> {
    samples.sort_unstable();
    let rank = |p: usize| {
        let index = (samples.len() * p).div_ceil(100).saturating_sub(1);
        samples.get(index).copied()
    };
    Some(Percentiles {
        samples: samples.len(),
        p50: rank(50)?,
        p99: rank(99)?,
        max: samples.last().copied()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 15353 -d queries -l 3 -c 2 -T 1 -q 100
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         307518
  Queries completed:    307511 (100.00%)
  Queries lost:         7 (0.00%)

  Response codes:       NOERROR 307500 (99.99%), SERVFAIL 11 (0.01%)
  Average packet size:  request 48, response 64
  Run time (s):         3.000491
  Queries per second:   102489.225930

  Average Latency (s):  0.000795 (min 0.000021, max 0.012687)
  Latency StdDev (s):   0.000499
";

    #[test]
    fn dnsperf_statistics_are_read() {
        let run = parse_dnsperf(OUTPUT).unwrap();
        assert_eq!(run.sent, 307_518);
        assert_eq!(run.completed, 307_511);
        assert_eq!(run.lost, 7);
        assert_eq!(run.noerror, 307_500);
        assert!((run.qps - 102_489.225_93).abs() < 1e-6);
        assert_eq!(run.average_latency, Duration::from_micros(795));
        assert_eq!(run.latency_stddev, Duration::from_micros(499));
        assert!(parse_dnsperf("Queries sent: 1\n").is_err());
    }

    #[test]
    fn per_query_latencies_and_percentiles() {
        let mut text = String::from(
            "[Status] Sending queries\n> T svc-0.bench.svc.cluster.local A\n> SERVFAIL x A 0.5\n",
        );
        for i in 1..=100 {
            text.push_str(&format!(
                "> NOERROR svc-{i}.bench.svc.cluster.local A 0.{i:06}\n"
            ));
        }
        let samples = parse_latencies(&text);
        assert_eq!(samples.len(), 100);
        let p = percentiles(samples).unwrap();
        assert_eq!(p.p50, Duration::from_micros(50));
        assert_eq!(p.p99, Duration::from_micros(99));
        assert_eq!(p.max, Duration::from_micros(100));
        assert!(percentiles(Vec::new()).is_none());
    }
}
