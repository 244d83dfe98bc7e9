//! The `causeway` binary as operators run it: exit codes, located errors, stdin, JSON.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn causeway(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the causeway binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("causeway exits")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

#[test]
fn the_examples_check_clean() {
    let out = causeway(&["policy", "check", "examples/policies/"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.ends_with("; 0 errors, 0 warnings\n"), "{text}");
}

#[test]
fn a_misspelt_key_a_negative_qps_and_a_second_policy_give_three_located_errors() {
    let fixture = "tests/fixtures/policies/three-errors.yaml";
    let out = causeway(&["policy", "check", fixture], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(
        errors,
        vec![
            "error: unknown field `burts`, did you mean `burst`?",
            "error: qps must be greater than 0, found -5",
            "error: service `shop/reviews` port 9080 already has a policy from TrafficPolicy `shop/reviews`, which has errors",
        ]
    );
    let locations: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .collect();
    assert_eq!(
        locations,
        vec![
            format!("{fixture}:14:5"),
            format!("{fixture}:25:10"),
            format!("{fixture}:33:3"),
        ]
    );
    assert!(text.contains(&format!(
        "note: TrafficPolicy `shop/reviews` targets it at {fixture}:9:3"
    )));
    assert!(text.contains("^^^^^ spec.rateLimit.burts"));
    assert!(text.contains("^^ spec.rateLimit.qps"));
}

#[test]
fn json_output_carries_locations_paths_and_plans() {
    let out = causeway(
        &[
            "policy",
            "check",
            "--output",
            "json",
            "tests/fixtures/policies/three-errors.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"], 3);
    let paths: Vec<&str> = json["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["path"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        paths,
        vec![
            "spec.rateLimit.burts",
            "spec.rateLimit.qps",
            "spec.targetRef"
        ]
    );
    assert_eq!(json["diagnostics"][1]["location"]["line"], 25);
    assert_eq!(json["diagnostics"][1]["location"]["column"], 10);

    let out = causeway(
        &["policy", "check", "-o", "json", "examples/policies"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let reviews = json["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["service"] == "shop/reviews")
        .expect("the reviews policy");
    assert_eq!(reviews["plan"]["rateLimit"]["qps"], 200.0);
    assert_eq!(reviews["plan"]["rateLimit"]["onLimit"]["maxWait"], "250ms");
    assert_eq!(reviews["plan"]["loadBalancer"]["algorithm"], "PeakEwma");
    assert_eq!(
        json["defaultPlan"]["loadBalancer"]["algorithm"],
        "LeastRequest"
    );
}

#[test]
fn an_istio_rule_with_a_header_hash_passes_from_stdin() {
    let rule = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n";
    let out = causeway(&["policy", "check", "-"], Some(rule));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "1 file: 1 policy attached to 1 target; 0 errors, 0 warnings\n"
    );
}

#[test]
fn warnings_alone_exit_zero() {
    let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n";
    let out = causeway(&["policy", "check", "-"], Some(rule));
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "warning: field `tls` is not supported by Causeway and is ignored\n --> <stdin>:8:5\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("0 errors, 1 warning\n"));
}

#[test]
fn unreadable_inputs_are_errors_and_usage_errors_exit_two() {
    let out = causeway(&["policy", "check", "no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .starts_with("error: cannot read `no/such/file.yaml`: No such file or directory")
    );

    let out = causeway(&["policy", "check"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FILE|DIR|-"));
}

#[test]
fn directories_are_read_recursively_for_yaml_only() {
    let dir = std::env::temp_dir().join(format!("causeway-cli-{}", std::process::id()));
    let nested = dir.join("a/b");
    std::fs::create_dir_all(&nested).expect("temp dirs");
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/cart-session-affinity.yaml"),
    )
    .expect("example");
    std::fs::write(nested.join("cart.yml"), &policy).expect("write");
    std::fs::write(dir.join("notes.txt"), "not: [yaml").expect("write");
    std::fs::write(dir.join(".hidden.yaml"), "not: [yaml").expect("write");
    let out = causeway(
        &["policy", "check", dir.to_str().expect("utf-8 path")],
        None,
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "1 file: 1 policy attached to 1 target; 0 errors, 0 warnings\n"
    );
}

#[test]
fn logs_go_to_stderr_in_the_chosen_format() {
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args([
            "--log-format",
            "json",
            "policy",
            "check",
            "examples/policies",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "debug")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("policy check finished"))
        .expect("a log line");
    let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(event["level"], "DEBUG");
    assert_eq!(event["errors"], 0);
}

#[test]
fn a_file_named_twice_is_read_once() {
    let out = causeway(
        &[
            "policy",
            "check",
            "examples/policies",
            "examples/policies/cart-session-affinity.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("5 files:"), "{}", stdout(&out));
}

#[test]
fn echo_refuses_bad_fault_flags_with_a_usage_error() {
    for (flag, value, says) in [
        ("--error-rate", "2", "between 0 and 1"),
        ("--delay", "50", "no unit"),
        ("--delay-jitter", "10 parsecs", "not a duration"),
    ] {
        let out = causeway(&["app", "echo", flag, value], None);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag) && stderr.contains(says), "{stderr}");
    }
}

/// Kills the child when the test ends, passing or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn echo_announces_its_http_tcp_and_udp_listeners_and_answers_on_each() {
    use std::io::{BufRead, BufReader, Read};
    use std::net::{SocketAddr, TcpStream, UdpSocket};
    use std::time::{Duration, Instant};

    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_causeway"))
            .args(["--log-format", "json", "app", "echo", "--pod", "cli-echo"])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--tcp-echo", "127.0.0.1:0", "--udp-echo", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the causeway binary runs"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (lines, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The three announcements, in order, each with the bound address.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addrs: Vec<(String, SocketAddr)> = Vec::new();
    while addrs.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = announced
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("announced only {addrs:?}"));
        let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        let message = event["message"].as_str().unwrap_or_default();
        if message.ends_with(" listening") {
            let addr = event["addr"].as_str().expect("an addr field");
            addrs.push((message.to_string(), addr.parse().expect("an address")));
        }
    }
    let names: Vec<&str> = addrs.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "echo app listening",
            "tcp echo listening",
            "udp echo listening"
        ]
    );
    for (_, addr) in &addrs {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addrs:?}");
    }
    let timeout = Some(Duration::from_secs(10));

    // HTTP.
    let mut http = TcpStream::connect(addrs[0].1).expect("connect to HTTP");
    http.set_read_timeout(timeout).expect("timeout");
    http.write_all(b"GET /cli HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    http.read_to_string(&mut answer).expect("an HTTP answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""pod":"cli-echo""#), "{answer}");

    // TCP echo: the greeting, then the bytes back.
    let tcp = TcpStream::connect(addrs[1].1).expect("connect to the TCP echo");
    tcp.set_read_timeout(timeout).expect("timeout");
    let mut reader = BufReader::new(tcp);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).expect("a greeting");
    assert_eq!(greeting, "causeway-echo pod=cli-echo node= site=\n");
    reader.get_mut().write_all(b"over L4").expect("send");
    let mut back = [0u8; 7];
    reader.read_exact(&mut back).expect("the echo");
    assert_eq!(&back, b"over L4");

    // UDP echo: the pod, a newline, the payload.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    udp.set_read_timeout(timeout).expect("timeout");
    udp.send_to(b"datagram", addrs[2].1).expect("send");
    let mut buffer = [0u8; 256];
    let (len, from) = udp.recv_from(&mut buffer).expect("a UDP answer");
    assert_eq!(from, addrs[2].1);
    assert_eq!(&buffer[..len], b"cli-echo\ndatagram");
}
