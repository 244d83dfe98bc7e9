//! The verdicts of a scenario's checks and the figures derived from its runs: pure
//! functions of the runs, the scenario and the thresholds, so every gate is tested
//! on made-up runs without sockets.

use std::collections::{BTreeMap, BTreeSet};

use causeway_yaml::Source;

use super::spec::{CheckKind, CheckSpec, EventAction, Scenario};
use crate::echo::parse_duration;
use crate::generator::RunResult;
use crate::report::{CheckOutcome, Figure};

/// The thresholds file the binary carries (`loadtests/thresholds.yaml`).
pub const THRESHOLDS: &str = include_str!("../../thresholds.yaml");

/// Named bounds, from `thresholds.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(BTreeMap<String, f64>);

impl Thresholds {
    /// The built-in thresholds.
    pub fn builtin() -> Result<Self, String> {
        Self::parse(&Source::new("loadtests/thresholds.yaml", THRESHOLDS))
    }

    /// Reads a thresholds file: a map of names to numbers.
    pub fn parse(source: &Source) -> Result<Self, String> {
        let map: BTreeMap<String, f64> =
            crate::located::decode_one(source, "a map of threshold names to numbers")
                .map_err(|e| format!("{}: {e}", source.name()))?;
        if let Some((name, value)) = map.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!(
                "{}: {name}: {value} is not a number",
                source.name()
            ));
        }
        Ok(Self(map))
    }

    /// A threshold by name.
    pub fn get(&self, name: &str) -> Result<f64, String> {
        self.0.get(name).copied().ok_or_else(|| {
            format!(
                "no threshold `{name}` in thresholds.yaml (it has: {})",
                self.0.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// What the checks read besides the runs: each variant's endpoint (pod) names.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Variant name → the pods of the endpoints it balances over.
    pub endpoints: BTreeMap<String, Vec<String>>,
}

/// Evaluates every check of `scenario`; a check that cannot be evaluated (its variant
/// did not run, a threshold is missing) fails and says why.
pub fn evaluate(
    scenario: &Scenario,
    runs: &[RunResult],
    context: &Context,
    thresholds: &Thresholds,
) -> (Vec<CheckOutcome>, Vec<Figure>) {
    let mut outcomes = Vec::new();
    let mut figures = Vec::new();
    for check in &scenario.spec.checks {
        match evaluate_one(scenario, check, runs, context, thresholds, &mut figures) {
            Ok(Some(outcome)) => outcomes.push(outcome),
            Ok(None) => {}
            Err(why) => outcomes.push(CheckOutcome {
                name: format!("{:?}", check.kind),
                measured: why,
                bound: check.threshold.clone().unwrap_or_default(),
                passed: false,
            }),
        }
    }
    (outcomes, figures)
}

/// The run of a variant that checks read: its last (an open loop's highest step).
fn run_of<'a>(runs: &'a [RunResult], variant: Option<&String>) -> Result<&'a RunResult, String> {
    let name = variant.ok_or("no variant named")?;
    runs.iter()
        .rev()
        .find(|r| &r.variant == name)
        .ok_or_else(|| format!("variant `{name}` has no run in this profile"))
}

/// The first run of a variant: the one its events happened in.
fn first_run_of<'a>(
    runs: &'a [RunResult],
    variant: Option<&String>,
) -> Result<&'a RunResult, String> {
    let name = variant.ok_or("no variant named")?;
    runs.iter()
        .find(|r| &r.variant == name)
        .ok_or_else(|| format!("variant `{name}` has no run in this profile"))
}

/// Slack for comparing window starts, which are sums of floats.
const EPSILON: f64 = 1e-6;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn figure(name: impl Into<String>, value: f64, unit: &str) -> Figure {
    Figure {
        name: name.into(),
        value,
        unit: unit.into(),
    }
}

/// The first event of `action` in the runs of `variant`: when (seconds from the start),
/// and the pod it acts on.
fn event_at(scenario: &Scenario, variant: &str, action: EventAction) -> Option<(f64, String)> {
    scenario
        .spec
        .events
        .iter()
        .filter(|e| e.action == action)
        .filter(|e| {
            e.variants
                .as_ref()
                .is_none_or(|v| v.iter().any(|n| n == variant))
        })
        .filter_map(|e| {
            let at = parse_duration(&e.at).ok()?.as_secs_f64();
            let service = scenario.service(e.service.as_deref())?;
            Some((at, super::pod_name(&service.name, e.endpoint)))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

fn evaluate_one(
    scenario: &Scenario,
    check: &CheckSpec,
    runs: &[RunResult],
    context: &Context,
    thresholds: &Thresholds,
    figures: &mut Vec<Figure>,
) -> Result<Option<CheckOutcome>, String> {
    let threshold_name = check.threshold.clone().unwrap_or_default();
    let threshold = || thresholds.get(&threshold_name);
    let outcome = |name: &str, measured: String, bound: String, passed: bool| {
        Ok(Some(CheckOutcome {
            name: name.into(),
            measured,
            bound: format!("{bound} ({threshold_name})"),
            passed,
        }))
    };
    match check.kind {
        CheckKind::Share => {
            let run = run_of(runs, check.variant.as_ref())?;
            let t = threshold()?;
            let expected = context
                .endpoints
                .get(&run.variant)
                .ok_or("the variant's endpoints are unknown")?;
            let fair = 1.0 / expected.len().max(1) as f64;
            let shares = run.shares();
            let mut worst = (0.0f64, String::new(), 0.0f64);
            for pod in expected {
                let share = shares.get(pod).copied().unwrap_or(0.0);
                let deviation = (share - fair).abs() / fair;
                if deviation >= worst.0 {
                    worst = (deviation, pod.clone(), share);
                }
            }
            let strangers: Vec<&String> = shares.keys().filter(|p| !expected.contains(p)).collect();
            figures.push(figure(
                format!("{}: worst share deviation", run.variant),
                worst.0 * 100.0,
                "%",
            ));
            outcome(
                &format!("{} share per endpoint", run.variant),
                format!(
                    "worst {} at {} of a fair {} ({} off) over {} answers{}",
                    worst.1,
                    pct(worst.2),
                    pct(fair),
                    pct(worst.0),
                    run.ok,
                    if strangers.is_empty() {
                        String::new()
                    } else {
                        format!("; answers from unexpected endpoints {strangers:?}")
                    }
                ),
                format!("within ±{} of fair", pct(t)),
                worst.0 <= t && strangers.is_empty() && run.ok > 0,
            )
        }
        CheckKind::LimitAccuracy => {
            let run = run_of(runs, check.variant.as_ref())?;
            let t = threshold()?;
            let qps = scenario
                .spec
                .variants
                .iter()
                .find(|v| v.name == run.variant)
                .and_then(|v| v.policy.as_ref())
                .and_then(|p| p.pointer("/rateLimit/qps"))
                .and_then(serde_json::Value::as_f64)
                .ok_or("the variant's policy has no rateLimit.qps")?;
            let after_first = run.windows.get(1..).unwrap_or(&[]);
            if after_first.is_empty() || run.window_s <= 0.0 {
                return Err("the run has fewer than two windows".into());
            }
            let admitted: u64 = after_first.iter().map(|w| w.ok).sum();
            let rate = admitted as f64 / (after_first.len() as f64 * run.window_s);
            let worst = after_first
                .iter()
                .map(|w| w.ok as f64 / run.window_s)
                .max_by(|a, b| (a - qps).abs().total_cmp(&(b - qps).abs()))
                .unwrap_or(rate);
            let deviation = (rate - qps).abs() / qps;
            // What is not admitted must be refused as a limit says so: 429 with
            // Retry-After (gRPC: RESOURCE_EXHAUSTED), not errors or silence. A thousandth
            // of the calls may fail otherwise (a connection reset on a loaded machine).
            let refused_badly = run.errors() + run.limited_without_retry_after;
            let refused_badly = if (refused_badly as f64) <= run.offered as f64 / 1000.0 {
                0
            } else {
                refused_badly
            };
            let offered_rate = run.offered_rate.unwrap_or(0.0);
            let rejected_properly = offered_rate <= qps * (1.0 + t) || run.limited > 0;
            figures.push(figure(
                format!("{}: admitted per second", run.variant),
                rate,
                "req/s",
            ));
            outcome(
                &format!("{} rate limit accuracy", run.variant),
                format!(
                    "{rate:.1}/s admitted of {qps} qps ({} off; worst window {worst:.0}/s), {} offered/s, {} limited{}{}",
                    pct(deviation),
                    run.offered_rate.unwrap_or(0.0),
                    run.limited,
                    if refused_badly == 0 {
                        String::new()
                    } else {
                        format!(", {refused_badly} refused otherwise than 429 with Retry-After")
                    },
                    if rejected_properly {
                        ""
                    } else {
                        ", the excess was not refused"
                    },
                ),
                format!("within ±{}, the rest refused with 429", pct(t)),
                deviation <= t && refused_badly == 0 && rejected_properly,
            )
        }
        CheckKind::P99Ratio => {
            let slower = run_of(runs, check.slower.as_ref())?;
            let faster = run_of(runs, check.faster.as_ref())?;
            let t = threshold()?;
            if faster.latency.count == 0 || slower.latency.count == 0 {
                return Err("a variant has no successful call".into());
            }
            let ratio = slower.latency.p99_us / faster.latency.p99_us.max(1.0);
            figures.push(figure(
                format!("p99 {} ÷ {}", slower.variant, faster.variant),
                ratio,
                "×",
            ));
            outcome(
                &format!("p99 {} vs {}", faster.variant, slower.variant),
                format!(
                    "{} p99 {:.2} ms, {} p99 {:.2} ms: {ratio:.1}×",
                    slower.variant,
                    slower.latency.p99_us / 1e3,
                    faster.variant,
                    faster.latency.p99_us / 1e3
                ),
                format!("at least {t}×"),
                ratio >= t,
            )
        }
        CheckKind::ErrorsAfterFailover => {
            let run = first_run_of(runs, check.variant.as_ref())?;
            let t = threshold()?;
            let settle = thresholds.get("failoverSettle")?;
            let (kill, pod) = event_at(scenario, &run.variant, EventAction::Kill)
                .ok_or("no kill event in this variant's runs")?;
            let until = event_at(scenario, &run.variant, EventAction::Restart)
                .map_or(run.duration_s, |(at, _)| at.min(run.duration_s));
            let settling: u64 = run
                .windows
                .iter()
                .filter(|w| w.start_s + EPSILON >= kill && w.start_s < kill + settle - EPSILON)
                .map(|w| w.errors)
                .sum();
            // Whole windows from the end of the settling time to the restart.
            let counted: Vec<_> = run
                .windows
                .iter()
                .filter(|w| {
                    w.start_s + EPSILON >= kill + settle
                        && w.start_s + run.window_s <= until + EPSILON
                })
                .collect();
            if counted.is_empty() {
                return Err(format!(
                    "no whole window between {:.1} s (kill + settle) and {until:.1} s (restart or end): lengthen the run or move the events",
                    kill + settle
                ));
            }
            let after: u64 = counted.iter().map(|w| w.errors).sum();
            let still_answering: u64 = counted
                .iter()
                .map(|w| w.endpoints.get(&pod).copied().unwrap_or(0))
                .sum();
            figures.push(figure(
                format!("{}: errors while failing over", run.variant),
                settling as f64,
                "",
            ));
            figures.push(figure(
                format!("{}: errors in the whole run", run.variant),
                run.errors() as f64,
                "",
            ));
            let dead = if still_answering == 0 {
                String::new()
            } else {
                format!(
                    "; but {pod} answered {still_answering} calls after its kill: the kill did not take"
                )
            };
            outcome(
                &format!("{} errors after failover", run.variant),
                format!(
                    "{after} errors from {:.1} s after the kill until the restart ({settling} in the first {settle} s, {} in the run){dead}",
                    settle,
                    run.errors()
                ),
                format!("at most {t}"),
                after as f64 <= t && still_answering == 0,
            )
        }
        CheckKind::Recovery => {
            let run = first_run_of(runs, check.variant.as_ref())?;
            let t = threshold()?;
            let (restart, pod) = event_at(scenario, &run.variant, EventAction::Restart)
                .ok_or("no restart event in this variant's runs")?;
            let (kill, _) = event_at(scenario, &run.variant, EventAction::Kill)
                .filter(|(at, killed)| *at < restart && *killed == pod)
                .ok_or("no kill of the restarted endpoint before its restart")?;
            // It must have been gone: no answers in the whole windows between.
            let answered_while_dead: u64 = run
                .windows
                .iter()
                .filter(|w| {
                    w.start_s + EPSILON >= kill + 1.0
                        && w.start_s + run.window_s <= restart + EPSILON
                })
                .map(|w| w.endpoints.get(&pod).copied().unwrap_or(0))
                .sum();
            if answered_while_dead > 0 {
                return Err(format!(
                    "{pod} answered {answered_while_dead} calls while it should have been dead: nothing to recover from"
                ));
            }
            let expected = context
                .endpoints
                .get(&run.variant)
                .ok_or("the variant's endpoints are unknown")?;
            let fair = 1.0 / expected.len().max(1) as f64;
            let back = run.windows.iter().find(|w| {
                let total: u64 = w.endpoints.values().sum();
                w.start_s + EPSILON >= restart
                    && total > 0
                    && w.endpoints.get(&pod).copied().unwrap_or(0) as f64 / total as f64
                        >= fair / 2.0
            });
            match back {
                Some(w) => {
                    let seconds = w.start_s + run.window_s - restart;
                    figures.push(figure(
                        format!("{}: time to recover", run.variant),
                        seconds,
                        "s",
                    ));
                    outcome(
                        &format!("{} recovery", run.variant),
                        format!(
                            "{pod} back to half its share within {seconds:.1} s of its restart"
                        ),
                        format!("at most {t} s"),
                        seconds <= t,
                    )
                }
                None => outcome(
                    &format!("{} recovery", run.variant),
                    format!("{pod} did not get half its share back before the run ended"),
                    format!("at most {t} s"),
                    false,
                ),
            }
        }
        CheckKind::Stickiness => {
            let run = run_of(runs, check.variant.as_ref())?;
            let t = threshold()?;
            if run.keys.is_empty() {
                return Err("the run sent no keys (load.keys)".into());
            }
            // A key called once is trivially sticky: ask for a few calls per key.
            let calls: u64 = run.keys.values().flat_map(|per| per.values()).sum();
            if calls < 5 * run.keys.len() as u64 {
                return Err(format!(
                    "{calls} calls over {} keys: fewer than 5 per key cannot show stickiness; lengthen the run or use fewer keys",
                    run.keys.len()
                ));
            }
            let (usual, all) = run.keys.values().fold((0u64, 0u64), |(u, a), per| {
                (
                    u + per.values().max().copied().unwrap_or(0),
                    a + per.values().sum::<u64>(),
                )
            });
            let stickiness = usual as f64 / all.max(1) as f64;
            figures.push(figure(
                format!("{}: stickiness", run.variant),
                stickiness * 100.0,
                "%",
            ));
            outcome(
                &format!("{} stickiness", run.variant),
                format!(
                    "{} of {all} calls over {} keys reached their key's usual endpoint",
                    pct(stickiness),
                    run.keys.len()
                ),
                format!("at least {}", pct(t)),
                stickiness >= t,
            )
        }
        CheckKind::Churn => {
            let before = run_of(runs, check.before.as_ref())?;
            let after = run_of(runs, check.after.as_ref())?;
            let t = threshold()?;
            let remaining: BTreeSet<&String> = context
                .endpoints
                .get(&after.variant)
                .ok_or("the after variant's endpoints are unknown")?
                .iter()
                .collect();
            let usual = |per: &BTreeMap<String, u64>| {
                per.iter().max_by_key(|(_, n)| **n).map(|(e, _)| e.clone())
            };
            let (mut kept, mut moved_needlessly, mut moved_all, mut compared) = (0, 0, 0, 0);
            for (key, per) in &before.keys {
                let (Some(was), Some(is)) = (usual(per), after.keys.get(key).and_then(usual))
                else {
                    continue;
                };
                compared += 1;
                if was != is {
                    moved_all += 1;
                }
                if remaining.contains(&was) {
                    kept += 1;
                    if was != is {
                        moved_needlessly += 1;
                    }
                }
            }
            if compared == 0 {
                return Err("no key answered in both runs".into());
            }
            let excess = f64::from(moved_needlessly) / f64::from(kept.max(1));
            let moved = f64::from(moved_all) / f64::from(compared);
            figures.push(figure(
                "keys moved by removing an endpoint",
                moved * 100.0,
                "%",
            ));
            figures.push(figure("keys moved needlessly", excess * 100.0, "%"));
            outcome(
                "consistent-hash churn",
                format!(
                    "{} of {compared} keys moved (ideal {}); {moved_needlessly} of the {kept} keys whose endpoint stayed moved ({})",
                    pct(moved),
                    pct(1.0 / (remaining.len() + 1) as f64),
                    pct(excess)
                ),
                format!("at most {} moved needlessly", pct(t)),
                excess <= t,
            )
        }
        CheckKind::Compare => {
            let baseline = run_of(runs, check.baseline.as_ref())?;
            let mut seen = BTreeSet::new();
            for run in runs.iter().rev() {
                // A baseline compares the variants that speak its protocol.
                if run.variant == baseline.variant
                    || run.protocol != baseline.protocol
                    || !seen.insert(run.variant.clone())
                {
                    continue;
                }
                let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                figures.push(figure(
                    format!("{} throughput ÷ {}", run.variant, baseline.variant),
                    ratio(run.throughput(), baseline.throughput()),
                    "×",
                ));
                figures.push(figure(
                    format!("{} p50 ÷ {}", run.variant, baseline.variant),
                    ratio(run.latency.p50_us, baseline.latency.p50_us),
                    "×",
                ));
                figures.push(figure(
                    format!("{} p99 ÷ {}", run.variant, baseline.variant),
                    ratio(run.latency.p99_us, baseline.latency.p99_us),
                    "×",
                ));
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Window;

    const SCENARIO: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Scenario
metadata: {name: checks}
spec:
  title: every check kind
  profiles: [ci]
  services:
  - name: s
    protocol: http1
    endpoints: [{node: node-a, replicas: 4}]
  load: {mode: open, rates: [500], duration: 4s}
  variants:
  - {name: rr, via: mesh}
  - {name: ewma, via: mesh}
  - {name: limited, via: mesh, policy: {rateLimit: {qps: 100}}}
  - {name: three, via: mesh, endpoints: [0, 1, 2]}
  - {name: direct, via: direct}
  events:
  - {at: 1s, action: kill, endpoint: 0, variants: [rr]}
  - {at: 3s, action: restart, endpoint: 0, variants: [rr]}
  checks:
  - {kind: share, variant: rr, threshold: share}
  - {kind: limitAccuracy, variant: limited, threshold: accuracy}
  - {kind: p99Ratio, slower: rr, faster: ewma, threshold: factor}
  - {kind: errorsAfterFailover, variant: rr, threshold: errors}
  - {kind: recovery, variant: rr, threshold: recovery}
  - {kind: stickiness, variant: rr, threshold: sticky}
  - {kind: churn, before: rr, after: three, threshold: churn}
  - {kind: compare, baseline: direct}
"#;

    fn scenario() -> Scenario {
        Scenario::parse(&Source::new("checks.yaml", SCENARIO)).expect("parses")
    }

    fn thresholds() -> Thresholds {
        Thresholds::parse(&Source::new(
            "t.yaml",
            "share: 0.05\naccuracy: 0.1\nfactor: 2\nerrors: 5\nfailoverSettle: 1\nrecovery: 3\nsticky: 0.95\nchurn: 0.1\n",
        ))
        .expect("thresholds")
    }

    fn context() -> Context {
        let pods = |n: usize| (0..n).map(|i| format!("s-{i}")).collect::<Vec<_>>();
        let mut context = Context::default();
        for name in ["rr", "ewma", "limited", "direct"] {
            context.endpoints.insert(name.into(), pods(4));
        }
        context.endpoints.insert("three".into(), pods(3));
        context
    }

    fn window(start_s: f64, ok: u64, errors: u64, endpoints: &[(&str, u64)]) -> Window {
        Window {
            start_s,
            offered: ok + errors,
            ok,
            limited: 0,
            errors,
            endpoints: endpoints.iter().map(|(e, n)| (e.to_string(), *n)).collect(),
        }
    }

    fn run(variant: &str) -> RunResult {
        RunResult {
            variant: variant.into(),
            window_s: 1.0,
            duration_s: 4.0,
            ..RunResult::default()
        }
    }

    /// Runs that meet every bound; each test breaks one.
    fn good_runs() -> Vec<RunResult> {
        let mut rr = run("rr");
        for i in 0..4 {
            rr.endpoints.insert(format!("s-{i}"), 250);
        }
        rr.ok = 1000;
        rr.latency.count = 1000;
        rr.latency.p99_us = 50_000.0;
        rr.windows = vec![
            window(
                0.0,
                100,
                0,
                &[("s-0", 25), ("s-1", 25), ("s-2", 25), ("s-3", 25)],
            ),
            window(1.0, 100, 3, &[("s-1", 34), ("s-2", 33), ("s-3", 33)]),
            window(2.0, 100, 0, &[("s-1", 34), ("s-2", 33), ("s-3", 33)]),
            window(
                3.0,
                100,
                0,
                &[("s-0", 20), ("s-1", 27), ("s-2", 27), ("s-3", 26)],
            ),
        ];
        for k in 0..40 {
            let pod = format!("s-{}", k % 4);
            rr.keys
                .insert(format!("key-{k}"), [(pod, 10)].into_iter().collect());
        }
        let mut ewma = run("ewma");
        ewma.latency.count = 1000;
        ewma.latency.p99_us = 2_000.0;
        let mut limited = run("limited");
        limited.offered_rate = Some(500.0);
        limited.offered = 2000;
        limited.ok = 410;
        limited.limited = 1590;
        limited.windows = vec![
            window(0.0, 110, 0, &[]),
            window(1.0, 101, 0, &[]),
            window(2.0, 99, 0, &[]),
            window(3.0, 100, 0, &[]),
        ];
        let mut three = run("three");
        for k in 0..40 {
            // Keys of s-3 move to s-0; the others stay.
            let pod = if k % 4 == 3 {
                "s-0".to_string()
            } else {
                format!("s-{}", k % 4)
            };
            three
                .keys
                .insert(format!("key-{k}"), [(pod, 10)].into_iter().collect());
        }
        let mut direct = run("direct");
        direct.ok = 2000;
        direct.latency.p50_us = 100.0;
        direct.latency.p99_us = 500.0;
        vec![rr, ewma, limited, three, direct]
    }

    fn verdicts(runs: &[RunResult]) -> BTreeMap<String, (bool, String)> {
        let (outcomes, _) = evaluate(&scenario(), runs, &context(), &thresholds());
        outcomes
            .into_iter()
            .map(|o| (o.name, (o.passed, o.measured)))
            .collect()
    }

    #[test]
    fn runs_within_every_bound_pass_every_check() {
        let runs = good_runs();
        let all = verdicts(&runs);
        assert_eq!(
            all.len(),
            7,
            "compare gives figures, not a verdict: {all:?}"
        );
        for (name, (passed, measured)) in &all {
            assert!(passed, "{name}: {measured}");
        }
        let (_, figures) = evaluate(&scenario(), &runs, &context(), &thresholds());
        let ratio = figures
            .iter()
            .find(|f| f.name == "rr p99 ÷ direct")
            .expect("compare figure");
        assert_eq!(ratio.value, 100.0);
    }

    #[test]
    fn an_uneven_share_fails() {
        let mut runs = good_runs();
        runs[0].endpoints.insert("s-0".into(), 200);
        let (passed, measured) = &verdicts(&runs)["rr share per endpoint"];
        assert!(!passed, "{measured}");
        assert!(measured.contains("s-0"), "{measured}");
    }

    #[test]
    fn an_answer_from_an_endpoint_outside_the_service_fails_the_share() {
        let mut runs = good_runs();
        runs[0].endpoints.insert("stranger".into(), 1);
        assert!(!verdicts(&runs)["rr share per endpoint"].0);
    }

    #[test]
    fn a_limit_that_admits_too_much_fails_and_the_burst_window_is_ignored() {
        let mut runs = good_runs();
        // The first window's burst does not count.
        runs[2].windows[0].ok = 400;
        assert!(verdicts(&runs)["limited rate limit accuracy"].0);
        runs[2].windows[2].ok = 180;
        let (passed, measured) = &verdicts(&runs)["limited rate limit accuracy"];
        assert!(!passed, "{measured}");
    }

    #[test]
    fn a_limit_that_refuses_with_errors_instead_of_429_fails() {
        let mut runs = good_runs();
        runs[2].limited = 0;
        runs[2].failed = 1590;
        let (passed, measured) = &verdicts(&runs)["limited rate limit accuracy"];
        assert!(!passed, "{measured}");
        assert!(measured.contains("refused otherwise"), "{measured}");
        let mut runs = good_runs();
        runs[2].limited_without_retry_after = 1590;
        assert!(!verdicts(&runs)["limited rate limit accuracy"].0);
    }

    #[test]
    fn a_peak_ewma_no_better_than_round_robin_fails() {
        let mut runs = good_runs();
        runs[1].latency.p99_us = 40_000.0;
        assert!(!verdicts(&runs)["p99 ewma vs rr"].0);
    }

    #[test]
    fn errors_after_the_failover_settled_fail() {
        let mut runs = good_runs();
        // Errors in the settle second (1..2 s) are allowed; errors later are not.
        runs[0].windows[1].errors = 50;
        assert!(verdicts(&runs)["rr errors after failover"].0);
        runs[0].windows[2].errors = 5;
        assert!(
            verdicts(&runs)["rr errors after failover"].0,
            "at the bound"
        );
        runs[0].windows[2].errors = 6;
        let (passed, measured) = &verdicts(&runs)["rr errors after failover"];
        assert!(!passed, "{measured}");
        // After the restart (3 s) errors are the restart's, not the failover's.
        runs[0].windows[2].errors = 0;
        runs[0].windows[3].errors = 50;
        assert!(verdicts(&runs)["rr errors after failover"].0);
    }

    #[test]
    fn a_kill_that_did_not_take_fails_failover_and_recovery() {
        let mut runs = good_runs();
        runs[0].windows[2].endpoints.insert("s-0".into(), 25);
        let (passed, measured) = &verdicts(&runs)["rr errors after failover"];
        assert!(!passed, "{measured}");
        assert!(measured.contains("did not take"), "{measured}");
        let all = verdicts(&runs);
        let recovery = all
            .iter()
            .find(|(n, _)| n.contains("Recovery") || n.contains("recovery"));
        assert!(recovery.is_some_and(|(_, (passed, _))| !passed), "{all:?}");
    }

    #[test]
    fn too_few_calls_per_key_cannot_show_stickiness() {
        let mut runs = good_runs();
        for per in runs[0].keys.values_mut() {
            per.values_mut().for_each(|n| *n = 1);
        }
        let all = verdicts(&runs);
        let sticky = all
            .iter()
            .find(|(_, (_, m))| m.contains("fewer than 5 per key"));
        assert!(sticky.is_some_and(|(_, (passed, _))| !passed), "{all:?}");
    }

    #[test]
    fn an_endpoint_that_never_comes_back_fails_recovery() {
        let mut runs = good_runs();
        runs[0].windows[3].endpoints.remove("s-0");
        let (passed, measured) = &verdicts(&runs)["rr recovery"];
        assert!(!passed, "{measured}");
        assert!(measured.contains("did not"), "{measured}");
    }

    #[test]
    fn keys_that_wander_fail_stickiness_and_churn() {
        let mut runs = good_runs();
        runs[0].keys.insert(
            "key-0".into(),
            [("s-0".to_string(), 5), ("s-1".to_string(), 5)]
                .into_iter()
                .collect(),
        );
        for k in 1..8 {
            runs[0].keys.insert(
                format!("key-{k}"),
                [("s-0".to_string(), 5), ("s-1".to_string(), 5)]
                    .into_iter()
                    .collect(),
            );
        }
        assert!(!verdicts(&runs)["rr stickiness"].0);
        let mut runs = good_runs();
        for k in [0, 1, 2, 4, 5, 6] {
            runs[3].keys.insert(
                format!("key-{k}"),
                [("s-2".to_string(), 10)].into_iter().collect(),
            );
        }
        let (passed, measured) = &verdicts(&runs)["consistent-hash churn"];
        assert!(!passed, "{measured}");
    }

    #[test]
    fn a_variant_that_did_not_run_or_a_missing_threshold_fails_with_its_reason() {
        let mut runs = good_runs();
        runs.retain(|r| r.variant != "ewma");
        let (outcomes, _) = evaluate(&scenario(), &runs, &context(), &thresholds());
        let failed = outcomes.iter().find(|o| !o.passed).expect("one fails");
        assert!(failed.measured.contains("`ewma` has no run"), "{failed:?}");
        let few = Thresholds::parse(&Source::new("t.yaml", "share: 0.05\n")).expect("parses");
        let (outcomes, _) = evaluate(&scenario(), &good_runs(), &context(), &few);
        assert!(
            outcomes
                .iter()
                .any(|o| !o.passed && o.measured.contains("no threshold `accuracy`"))
        );
    }

    #[test]
    fn threshold_files_must_be_maps_of_numbers() {
        assert!(Thresholds::builtin().is_ok());
        let error =
            Thresholds::parse(&Source::new("t.yaml", "share: wide\n")).expect_err("refused");
        assert!(
            error.contains("t.yaml") && error.contains("share"),
            "{error}"
        );
        assert!(Thresholds::parse(&Source::new("t.yaml", "[1, 2]\n")).is_err());
    }
}
