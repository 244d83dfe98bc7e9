//! `causeway app echo`: the sample app, standing alone, optionally misbehaving on purpose
//! (`--delay`, `--delay-jitter`, `--error-rate`, `--fail-after`; see
//! [`causeway_loadtests::echo`] for the paths and headers it also answers), and
//! optionally a raw TCP echo (`--tcp-echo ADDR`) and a UDP echo (`--udp-echo ADDR`)
//! beside it, with the same identity and behaviour ([`causeway_loadtests::echo::raw`]).
//!
//! Once every listener is bound it logs, at `info` and in this order, `echo app
//! listening` (the HTTP listener), then `tcp echo listening` and `udp echo listening` for
//! those asked for, each with the bound address in field `addr` (the real port when
//! asked for port 0).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use causeway_loadtests::echo;

/// Arguments of `causeway app echo`.
#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The pod name it answers with.
    #[arg(long, env = "POD_NAME", default_value = "echo")]
    pod: String,
    /// The node name it answers with.
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node: String,
    /// The site it answers with.
    #[arg(long, env = "SITE_NAME", default_value = "")]
    site: String,
    /// Wait this long before every answer, e.g. `50ms`, `2s`.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = echo::parse_duration)]
    delay: Duration,
    /// Add a uniformly random extra delay up to this, drawn per request, e.g. `10ms`.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = echo::parse_duration)]
    delay_jitter: Duration,
    /// Answer this share of requests (0 to 1) with 503, at random.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = echo::parse_error_rate)]
    error_rate: f64,
    /// After this many requests, answer every request with 503 (the port stays open);
    /// on the TCP echo, close every connection after this many; on the UDP echo, answer
    /// no datagram after this many.
    #[arg(long, value_name = "N")]
    fail_after: Option<u64>,
    /// Also serve a raw TCP echo here: a greeting line with pod, node and site, then
    /// every byte back (the delay applies per chunk; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    tcp_echo: Option<SocketAddr>,
    /// Also serve a UDP echo here: each datagram answered with the pod, a newline and
    /// the payload (delay per datagram, error rate drops; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    udp_echo: Option<SocketAddr>,
}

impl EchoArgs {
    fn behaviour(&self) -> echo::Behaviour {
        echo::Behaviour {
            delay: self.delay,
            delay_jitter: self.delay_jitter,
            error_rate: self.error_rate,
            fail_after: self.fail_after,
        }
    }
}

/// Serves until Ctrl-C.
pub fn echo(args: &EchoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let identity = echo::Identity {
            pod: args.pod.clone(),
            node: args.node.clone(),
            site: args.site.clone(),
        };
        let behaviour = args.behaviour();
        let app = echo::spawn_with(args.listen, identity.clone(), behaviour.clone())
            .await
            .context("cannot start the echo app")?;
        let tcp = match args.tcp_echo {
            Some(listen) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen for the TCP echo on {listen}"))?;
                let addr = listener
                    .local_addr()
                    .context("cannot read the TCP echo's address")?;
                let serve = echo::serve_tcp_echo(listener, identity.clone(), behaviour.clone());
                Some((addr, tokio::spawn(serve)))
            }
            None => None,
        };
        let udp = match args.udp_echo {
            Some(listen) => {
                let socket = tokio::net::UdpSocket::bind(listen)
                    .await
                    .with_context(|| format!("cannot bind the UDP echo to {listen}"))?;
                let addr = socket
                    .local_addr()
                    .context("cannot read the UDP echo's address")?;
                let serve = echo::serve_udp_echo(socket, identity, behaviour.clone());
                Some((addr, tokio::spawn(serve)))
            }
            None => None,
        };
        tracing::info!(addr = %app.addr(), pod = %args.pod, ?behaviour, "echo app listening");
        if let Some((addr, _)) = &tcp {
            tracing::info!(%addr, pod = %args.pod, "tcp echo listening");
        }
        if let Some((addr, _)) = &udp {
            tracing::info!(%addr, pod = %args.pod, "udp echo listening");
        }
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        tracing::info!(requests = app.requests(), "echo app stopping");
        app.stop();
        for (_, task) in tcp.into_iter().chain(udp) {
            task.abort();
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        echo: EchoArgs,
    }

    fn parse(args: &[&str]) -> Result<EchoArgs, String> {
        Cli::try_parse_from(std::iter::once("echo").chain(args.iter().copied()))
            .map(|cli| cli.echo)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_fault_flags_parse_into_a_behaviour() {
        let args = parse(&[
            "--delay",
            "50ms",
            "--delay-jitter",
            "10ms",
            "--error-rate",
            "0.1",
            "--fail-after",
            "1000",
        ])
        .unwrap();
        let behaviour = args.behaviour();
        assert_eq!(behaviour.delay, Duration::from_millis(50));
        assert_eq!(behaviour.delay_jitter, Duration::from_millis(10));
        assert!((behaviour.error_rate - 0.1).abs() < f64::EPSILON);
        assert_eq!(behaviour.fail_after, Some(1000));
        let quiet = parse(&[]).unwrap().behaviour();
        assert_eq!(quiet.delay, Duration::ZERO);
        assert_eq!(quiet.error_rate, 0.0);
        assert_eq!(quiet.fail_after, None);
    }

    #[test]
    fn the_raw_echo_listeners_are_optional_addresses() {
        let args = parse(&["--tcp-echo", "127.0.0.1:0", "--udp-echo", "[::1]:9000"]).unwrap();
        assert_eq!(args.tcp_echo, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(args.udp_echo, Some("[::1]:9000".parse().unwrap()));
        let none = parse(&[]).unwrap();
        assert_eq!((none.tcp_echo, none.udp_echo), (None, None));
        let error = parse(&["--tcp-echo", "localhost"]).unwrap_err();
        assert!(error.contains("--tcp-echo"), "{error}");
    }

    #[test]
    fn bad_values_are_clap_errors_that_say_why() {
        let error = parse(&["--delay", "50"]).unwrap_err();
        assert!(
            error.contains("--delay") && error.contains("no unit"),
            "{error}"
        );
        let error = parse(&["--delay-jitter", "fast"]).unwrap_err();
        assert!(error.contains("not a duration"), "{error}");
        let error = parse(&["--error-rate", "1.5"]).unwrap_err();
        assert!(error.contains("between 0 and 1"), "{error}");
        let error = parse(&["--fail-after", "lots"]).unwrap_err();
        assert!(error.contains("--fail-after"), "{error}");
    }
}
