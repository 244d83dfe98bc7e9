//! The scenario file (`kind: Scenario`, under `loadtests/scenarios/`): the loopback
//! topology, the Services and their echo endpoints (slow, flaky or dying on purpose),
//! the load shape, the variants compared in one run, the events during a run, and the
//! checks — decoded with located errors and checked as a whole before anything starts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use causeway_yaml::Source;
use serde::Deserialize;

use crate::echo::parse_duration;
use crate::generator::Protocol;
use crate::generator::load::{MAX_OPEN_CALLS, MIN_RATE};

/// The profiles a scenario can run in.
pub const PROFILES: [&str; 2] = ["ci", "full"];
/// The largest payload of a call.
const MAX_PAYLOAD: usize = 1 << 20;
/// The largest UDP payload: a datagram, less the echo's pod-name prefix.
const MAX_UDP_PAYLOAD: usize = 60_000;

/// Whether `name` is a DNS label: lowercase letters, digits and `-`, not at the ends.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Why a scenario was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: ScenarioSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

/// A scenario, checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (`metadata.name`): used in file names of the report.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// The spec.
    pub spec: ScenarioSpec,
}

/// What a scenario declares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioSpec {
    /// What it measures, one sentence.
    pub title: String,
    /// The profiles that run it (`ci`, `full`).
    pub profiles: Vec<String>,
    /// The mesh nodes, on loopback. Default: one node `node-a` in `site-1`.
    #[serde(default = "default_nodes")]
    pub nodes: Vec<NodeSpec>,
    /// The Services' endpoints.
    pub services: Vec<ServiceSpec>,
    /// The load.
    pub load: LoadShape,
    /// Changes to the load per profile (`ci: {duration: 3s}`).
    #[serde(default)]
    pub overrides: BTreeMap<String, LoadOverride>,
    /// What is compared, in order.
    pub variants: Vec<VariantSpec>,
    /// What happens during a run.
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// What must hold.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

fn default_nodes() -> Vec<NodeSpec> {
    vec![NodeSpec {
        name: "node-a".into(),
        site: default_site(),
        relay: false,
        behind_nat: false,
    }]
}

fn default_site() -> String {
    "site-1".into()
}

/// A mesh node (a `causeway node` process on loopback).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Its name.
    pub name: String,
    /// Its site.
    #[serde(default = "default_site")]
    pub site: String,
    /// Whether it relays for the others.
    #[serde(default)]
    pub relay: bool,
    /// Whether it cannot be dialled directly: its Node object advertises an address
    /// that never answers, so the others reach it through a relay.
    #[serde(default)]
    pub behind_nat: bool,
}

/// A Service and where its endpoints run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Its name.
    pub name: String,
    /// What its endpoints speak.
    pub protocol: Protocol,
    /// Groups of endpoints.
    pub endpoints: Vec<EndpointGroup>,
}

/// Endpoints alike: echo apps on one node with one behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointGroup {
    /// The node they belong to.
    pub node: String,
    /// How many.
    #[serde(default = "one")]
    pub replicas: usize,
    /// The echo's `--delay`.
    #[serde(default)]
    pub delay: Option<String>,
    /// The echo's `--delay-jitter`.
    #[serde(default)]
    pub delay_jitter: Option<String>,
    /// The echo's `--error-rate`.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The echo's `--fail-after`.
    #[serde(default)]
    pub fail_after: Option<u64>,
}

fn one() -> usize {
    1
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Constant rates, one step per rate.
    Open,
    /// A fixed number of callers.
    Closed,
}

/// The load of every variant's run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadShape {
    /// Open or closed loop.
    pub mode: LoadMode,
    /// Connections.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Closed loop: concurrent callers (default: `connections`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Open loop: calls per second, one step each.
    #[serde(default)]
    pub rates: Vec<f64>,
    /// How long each run (each step) lasts.
    pub duration: String,
    /// Load before each variant's first run, not measured.
    #[serde(default = "default_warmup")]
    pub warmup: String,
    /// The report's window.
    #[serde(default = "default_window")]
    pub window: String,
    /// One call's deadline.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The request path.
    #[serde(default = "default_path")]
    pub path: String,
    /// Payload bytes per call (TCP, UDP, gRPC).
    #[serde(default = "default_payload")]
    pub payload: usize,
    /// Hash keys sent with the calls.
    #[serde(default)]
    pub keys: Option<KeysSpec>,
}

fn default_connections() -> usize {
    8
}
fn default_warmup() -> String {
    "1s".into()
}
fn default_window() -> String {
    "1s".into()
}
fn default_timeout() -> String {
    "5s".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_payload() -> usize {
    64
}

/// Hash keys: `key-0` … `key-{count-1}` in turn, in header `header`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeysSpec {
    /// The header.
    pub header: String,
    /// How many keys.
    pub count: u32,
}

/// A profile's changes to the load.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadOverride {
    /// Instead of `load.duration`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Instead of `load.rates`.
    #[serde(default)]
    pub rates: Option<Vec<f64>>,
    /// Instead of `load.connections`.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Instead of `load.concurrency`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Instead of `load.warmup`.
    #[serde(default)]
    pub warmup: Option<String>,
}

/// How a variant reaches the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Through the caller node's per-Service listener: the mesh.
    Mesh,
    /// Straight to the first endpoint: the baseline without a proxy.
    Direct,
    /// Through HAProxy balancing round-robin over the endpoints.
    Haproxy,
}

/// One of the things compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VariantSpec {
    /// Its name in the report.
    pub name: String,
    /// How it reaches the endpoints.
    pub via: Via,
    /// The Service (default: the first).
    #[serde(default)]
    pub service: Option<String>,
    /// Mesh: the node whose listener is called (default: the first node).
    #[serde(default)]
    pub caller: Option<String>,
    /// Mesh: the TrafficPolicy's spec sections (`loadBalancer`, `rateLimit`, …).
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
    /// The Service's endpoints this variant uses, by index (default: all).
    #[serde(default)]
    pub endpoints: Option<Vec<usize>>,
    /// Only in these profiles (default: every profile the scenario runs in).
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// Kill an endpoint's process.
    Kill,
    /// Start it again, on the same port.
    Restart,
}

/// Something done to an endpoint during each run of the named variants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventSpec {
    /// When, from the start of the run.
    pub at: String,
    /// What.
    pub action: EventAction,
    /// The Service (default: the first).
    #[serde(default)]
    pub service: Option<String>,
    /// The endpoint, by index.
    pub endpoint: usize,
    /// The variants whose runs it happens in (default: all).
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckKind {
    /// Every endpoint's share within the threshold (relative) of a fair share.
    Share,
    /// Admitted calls per second, after the first window, within the threshold
    /// (relative) of the variant's `rateLimit.qps`.
    LimitAccuracy,
    /// `slower`'s p99 divided by `faster`'s at least the threshold.
    P99Ratio,
    /// Errors after the first kill, past the threshold `failoverSettle` seconds, at
    /// most the threshold.
    ErrorsAfterFailover,
    /// A restarted endpoint gets its share again within the threshold (seconds).
    Recovery,
    /// The share of calls that reached their key's usual endpoint, at least the
    /// threshold.
    Stickiness,
    /// Keys that moved between `before` and `after` although their endpoint is in
    /// both, as a share of those keys: at most the threshold.
    Churn,
    /// No verdict: throughput and latency of each variant against `baseline`.
    Compare,
}

/// A check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckSpec {
    /// What it measures.
    pub kind: CheckKind,
    /// The variant it reads (share, limitAccuracy, errorsAfterFailover, recovery,
    /// stickiness).
    #[serde(default)]
    pub variant: Option<String>,
    /// p99Ratio: the variant expected slower.
    #[serde(default)]
    pub slower: Option<String>,
    /// p99Ratio: the variant expected faster.
    #[serde(default)]
    pub faster: Option<String>,
    /// churn: the variant before the change.
    #[serde(default)]
    pub before: Option<String>,
    /// churn: the variant after it.
    #[serde(default)]
    pub after: Option<String>,
    /// compare: the variant the others are divided by.
    #[serde(default)]
    pub baseline: Option<String>,
    /// The threshold's name in `thresholds.yaml` (none for compare).
    #[serde(default)]
    pub threshold: Option<String>,
}

/// The load of one profile, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedLoad {
    /// Open or closed.
    pub mode: LoadMode,
    /// Connections.
    pub connections: usize,
    /// Closed-loop callers.
    pub concurrency: usize,
    /// Open-loop rates.
    pub rates: Vec<f64>,
    /// Each run's length.
    pub duration: Duration,
    /// Unmeasured load first.
    pub warmup: Duration,
    /// Window length.
    pub window: Duration,
    /// Call deadline.
    pub timeout: Duration,
    /// Hash keys to cycle through (0: none).
    pub keys: u32,
}

impl Scenario {
    /// Decodes and checks a scenario file's text.
    pub fn parse(source: &Source) -> Result<Self, ScenarioError> {
        let fail = |message: String| ScenarioError {
            file: source.name().to_string(),
            message,
        };
        let file: ScenarioFile =
            crate::located::decode_one(source, "a `kind: Scenario` document").map_err(fail)?;
        crate::located::check_kind(&file.api_version, &file.kind, "Scenario").map_err(fail)?;
        let scenario = Self {
            name: file.metadata.name,
            file: source.name().to_string(),
            spec: file.spec,
        };
        scenario.check().map_err(fail)?;
        Ok(scenario)
    }

    /// Whether it runs in `profile`.
    pub fn runs_in(&self, profile: &str) -> bool {
        self.spec.profiles.iter().any(|p| p == profile)
    }

    /// The variants that run in `profile`.
    pub fn variants_in<'a>(&'a self, profile: &'a str) -> impl Iterator<Item = &'a VariantSpec> {
        self.spec.variants.iter().filter(move |v| {
            v.profiles
                .as_ref()
                .is_none_or(|p| p.iter().any(|p| p == profile))
        })
    }

    /// The Service a variant or event names (`None`: the first).
    pub fn service(&self, name: Option<&str>) -> Option<&ServiceSpec> {
        match name {
            None => self.spec.services.first(),
            Some(name) => self.spec.services.iter().find(|s| s.name == name),
        }
    }

    /// A variant's endpoints, as indices into its Service's endpoint list.
    pub fn endpoints_of(&self, variant: &VariantSpec) -> Vec<usize> {
        let total = self
            .service(variant.service.as_deref())
            .map_or(0, |s| s.endpoints.iter().map(|g| g.replicas).sum());
        variant
            .endpoints
            .clone()
            .unwrap_or_else(|| (0..total).collect())
    }

    /// The load in `profile`, with its overrides.
    pub fn load_in(&self, profile: &str) -> Result<ResolvedLoad, ScenarioError> {
        let fail = |message: String| ScenarioError {
            file: self.file.clone(),
            message,
        };
        let load = &self.spec.load;
        let over = self
            .spec
            .overrides
            .get(profile)
            .cloned()
            .unwrap_or_default();
        let duration = |field: &str, text: &str| {
            parse_duration(text).map_err(|e| fail(format!("{field}: {e}")))
        };
        let connections = over.connections.unwrap_or(load.connections);
        Ok(ResolvedLoad {
            mode: load.mode,
            connections,
            concurrency: over.concurrency.or(load.concurrency).unwrap_or(connections),
            rates: over.rates.unwrap_or_else(|| load.rates.clone()),
            duration: duration(
                "load.duration",
                over.duration.as_deref().unwrap_or(&load.duration),
            )?,
            warmup: duration(
                "load.warmup",
                over.warmup.as_deref().unwrap_or(&load.warmup),
            )?,
            window: duration("load.window", &load.window)?,
            timeout: duration("load.timeout", &load.timeout)?,
            keys: load.keys.as_ref().map_or(0, |k| k.count),
        })
    }

    fn check(&self) -> Result<(), String> {
        let spec = &self.spec;
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "metadata.name: `{}` must be lowercase letters, digits and `-` (it names report files)",
                self.name
            ));
        }
        if spec.profiles.is_empty() {
            return Err("spec.profiles: name at least one of `ci`, `full`".into());
        }
        for (i, p) in spec
            .profiles
            .iter()
            .chain(spec.overrides.keys())
            .enumerate()
        {
            if !PROFILES.contains(&p.as_str()) {
                return Err(format!(
                    "spec.profiles[{i}] / spec.overrides: unknown profile `{p}`; expected `ci` or `full`"
                ));
            }
        }
        let mut nodes = BTreeSet::new();
        for (i, node) in spec.nodes.iter().enumerate() {
            if !is_label(&node.name) || !is_label(&node.site) {
                return Err(format!(
                    "spec.nodes[{i}]: `{}` in `{}`: names and sites are DNS labels (a-z, 0-9, `-`)",
                    node.name, node.site
                ));
            }
            if !nodes.insert(node.name.as_str()) {
                return Err(format!("spec.nodes[{i}].name: `{}` twice", node.name));
            }
        }
        if spec.nodes.iter().any(|n| n.behind_nat) && !spec.nodes.iter().any(|n| n.relay) {
            return Err("spec.nodes: a node is behindNat but no node is a relay".into());
        }
        if spec.services.is_empty() {
            return Err("spec.services: at least one Service".into());
        }
        let mut services = BTreeSet::new();
        for (i, service) in spec.services.iter().enumerate() {
            // `-v<N>` is appended to name each variant's Service.
            if !is_label(&service.name) || service.name.len() > 55 {
                return Err(format!(
                    "spec.services[{i}].name: `{}` must be a DNS label (a-z, 0-9, `-`) of at most 55 characters",
                    service.name
                ));
            }
            if !services.insert(service.name.as_str()) {
                return Err(format!("spec.services[{i}].name: `{}` twice", service.name));
            }
            if service.endpoints.iter().map(|g| g.replicas).sum::<usize>() == 0 {
                return Err(format!("spec.services[{i}].endpoints: no endpoint"));
            }
            for (j, group) in service.endpoints.iter().enumerate() {
                let at = format!("spec.services[{i}].endpoints[{j}]");
                if !nodes.contains(group.node.as_str()) {
                    return Err(format!("{at}.node: no node `{}` in spec.nodes", group.node));
                }
                for (field, value) in [
                    ("delay", &group.delay),
                    ("delayJitter", &group.delay_jitter),
                ] {
                    if let Some(value) = value {
                        parse_duration(value).map_err(|e| format!("{at}.{field}: {e}"))?;
                    }
                }
                if group.error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                    return Err(format!("{at}.errorRate: a share between 0 and 1"));
                }
            }
        }
        for profile in &spec.profiles {
            let load = self.load_in(profile).map_err(|e| e.message)?;
            if load.mode == LoadMode::Open && load.rates.is_empty() {
                return Err(format!(
                    "spec.load.rates: an open loop needs rates ({profile})"
                ));
            }
            for rate in &load.rates {
                if !(rate.is_finite() && *rate >= MIN_RATE) {
                    return Err(format!(
                        "spec.load.rates: {rate} is not a rate of at least {MIN_RATE} calls/s ({profile})"
                    ));
                }
                let calls = rate * load.duration.as_secs_f64();
                if !(1.0..=MAX_OPEN_CALLS as f64).contains(&calls) {
                    return Err(format!(
                        "spec.load.rates: {rate}/s for {:?} makes {calls:.0} calls; between 1 and {MAX_OPEN_CALLS} ({profile})",
                        load.duration
                    ));
                }
            }
            if load.window < Duration::from_millis(10) || load.window > load.duration {
                return Err(format!(
                    "spec.load.window: at least 10ms and at most the duration ({profile})"
                ));
            }
            if load.timeout.is_zero() || load.timeout > Duration::from_secs(60) {
                return Err("spec.load.timeout: more than 0 and at most 60s".into());
            }
            if load.warmup > Duration::from_secs(60) {
                return Err("spec.load.warmup: at most 60s".into());
            }
            for (i, event) in spec.events.iter().enumerate() {
                if parse_duration(&event.at).is_ok_and(|at| at >= load.duration) {
                    return Err(format!(
                        "spec.events[{i}].at: {} is not within a run of {:?} ({profile})",
                        event.at, load.duration
                    ));
                }
            }
            for (i, check) in spec.checks.iter().enumerate() {
                for name in [
                    &check.variant,
                    &check.slower,
                    &check.faster,
                    &check.before,
                    &check.after,
                    &check.baseline,
                ]
                .into_iter()
                .flatten()
                {
                    if !self.variants_in(profile).any(|v| &v.name == name) {
                        return Err(format!(
                            "spec.checks[{i}]: variant `{name}` does not run in profile {profile}"
                        ));
                    }
                }
            }
            if load.connections == 0 || load.concurrency == 0 {
                return Err("spec.load: connections and concurrency must be at least 1".into());
            }
            if load.duration.is_zero() || load.duration > Duration::from_secs(600) {
                return Err(format!(
                    "spec.load.duration: more than 0 and at most 10 minutes ({profile})"
                ));
            }
        }
        let load = &spec.load;
        if !load.path.starts_with('/') {
            return Err(format!("spec.load.path: `{}` must start with /", load.path));
        }
        let max_payload = if spec.services.iter().any(|s| s.protocol == Protocol::Udp) {
            MAX_UDP_PAYLOAD
        } else {
            MAX_PAYLOAD
        };
        if load.payload > max_payload {
            return Err(format!(
                "spec.load.payload: at most {max_payload} bytes for these protocols"
            ));
        }
        if let Some(keys) = &load.keys {
            if http::HeaderName::from_bytes(keys.header.as_bytes()).is_err() {
                return Err(format!(
                    "spec.load.keys.header: `{}` is not an HTTP header name",
                    keys.header
                ));
            }
            if keys.count == 0 {
                return Err("spec.load.keys.count: at least 1".into());
            }
        }
        if spec.variants.is_empty() {
            return Err("spec.variants: at least one variant".into());
        }
        let mut variants = BTreeSet::new();
        for (i, variant) in spec.variants.iter().enumerate() {
            let at = format!("spec.variants[{i}]");
            if !variants.insert(variant.name.as_str()) {
                return Err(format!("{at}.name: `{}` twice", variant.name));
            }
            let Some(service) = self.service(variant.service.as_deref()) else {
                return Err(format!("{at}.service: no such Service in spec.services"));
            };
            if let Some(caller) = &variant.caller
                && !nodes.contains(caller.as_str())
            {
                return Err(format!("{at}.caller: no node `{caller}`"));
            }
            let total: usize = service.endpoints.iter().map(|g| g.replicas).sum();
            let chosen = self.endpoints_of(variant);
            if chosen.is_empty() || chosen.iter().any(|&e| e >= total) {
                return Err(format!(
                    "{at}.endpoints: indices must be below {total}, the Service's endpoints"
                ));
            }
            if variant.via == Via::Mesh && service.protocol == Protocol::Udp {
                return Err(format!(
                    "{at}.via: the mesh carries UDP Services through transparent capture, which needs root and the interception work; use `direct` for UDP here"
                ));
            }
            if variant.via != Via::Mesh && variant.policy.is_some() {
                return Err(format!("{at}.policy: only a `mesh` variant has a policy"));
            }
            if variant.via == Via::Haproxy
                && !matches!(service.protocol, Protocol::Http1 | Protocol::Tcp)
            {
                return Err(format!(
                    "{at}.via: HAProxy is compared over http1 and tcp, not {}",
                    service.protocol.name()
                ));
            }
            for profile in variant.profiles.iter().flatten() {
                if !spec.profiles.contains(profile) {
                    return Err(format!(
                        "{at}.profiles: `{profile}` is not one of the scenario's profiles"
                    ));
                }
            }
        }
        for (i, event) in spec.events.iter().enumerate() {
            let at = format!("spec.events[{i}]");
            parse_duration(&event.at).map_err(|e| format!("{at}.at: {e}"))?;
            let Some(service) = self.service(event.service.as_deref()) else {
                return Err(format!("{at}.service: no such Service"));
            };
            if event.endpoint >= service.endpoints.iter().map(|g| g.replicas).sum() {
                return Err(format!("{at}.endpoint: no endpoint {}", event.endpoint));
            }
            for name in event.variants.iter().flatten() {
                if !variants.contains(name.as_str()) {
                    return Err(format!("{at}.variants: no variant `{name}`"));
                }
            }
            if event.action == EventAction::Restart {
                let at_time = parse_duration(&event.at).unwrap_or_default();
                let killed_before = spec.events.iter().any(|k| {
                    k.action == EventAction::Kill
                        && k.service == event.service
                        && k.endpoint == event.endpoint
                        && parse_duration(&k.at).is_ok_and(|t| t < at_time)
                });
                if !killed_before {
                    return Err(format!(
                        "{at}: a restart needs a kill of the same endpoint before it"
                    ));
                }
            }
        }
        for (i, check) in spec.checks.iter().enumerate() {
            let at = format!("spec.checks[{i}]");
            let names: Vec<(&str, &Option<String>)> = match check.kind {
                CheckKind::P99Ratio => vec![("slower", &check.slower), ("faster", &check.faster)],
                CheckKind::Churn => vec![("before", &check.before), ("after", &check.after)],
                CheckKind::Compare => vec![("baseline", &check.baseline)],
                _ => vec![("variant", &check.variant)],
            };
            for (field, name) in names {
                match name {
                    None => return Err(format!("{at}.{field}: required for this kind")),
                    Some(name) if !variants.contains(name.as_str()) => {
                        return Err(format!("{at}.{field}: no variant `{name}`"));
                    }
                    Some(_) => {}
                }
            }
            if check.kind != CheckKind::Compare && check.threshold.is_none() {
                return Err(format!("{at}.threshold: name one from thresholds.yaml"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "apiVersion: causeway.dev/v1alpha1
kind: Scenario
metadata: {name: good}
spec:
  title: a scenario
  profiles: [ci, full]
  services:
  - name: s
    protocol: http1
    endpoints:
    - {node: node-a, replicas: 2, delay: 5ms}
  load:
    mode: closed
    duration: 10s
  overrides:
    ci: {duration: 2s, connections: 2}
  variants:
  - {name: rr, via: mesh, policy: {loadBalancer: {algorithm: RoundRobin}}}
  - {name: direct, via: direct, profiles: [full]}
  checks:
  - {kind: share, variant: rr, threshold: roundRobinShare}
";

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(&Source::new("s.yaml", text))
    }

    #[test]
    fn a_good_scenario_resolves_per_profile() {
        let scenario = parse(GOOD).expect("parses");
        let ci = scenario.load_in("ci").expect("ci");
        assert_eq!(ci.duration, Duration::from_secs(2));
        assert_eq!((ci.connections, ci.concurrency), (2, 2));
        let full = scenario.load_in("full").expect("full");
        assert_eq!(full.duration, Duration::from_secs(10));
        assert_eq!(full.connections, 8);
        assert_eq!(scenario.variants_in("ci").count(), 1);
        assert_eq!(scenario.variants_in("full").count(), 2);
        assert_eq!(
            scenario.endpoints_of(&scenario.spec.variants[0]),
            vec![0, 1]
        );
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        let cases = [
            (GOOD.replace("replicas: 2", "replicaz: 2"), "replicaz"),
            (
                GOOD.replace("protocol: http1", "protocol: http3"),
                "protocol",
            ),
            (
                GOOD.replace("duration: 10s", "duration: ten"),
                "load.duration",
            ),
            (
                GOOD.replace("node: node-a", "node: node-z"),
                "no node `node-z`",
            ),
            (GOOD.replace("variant: rr", "variant: rrr"), "variant `rrr`"),
            (
                GOOD.replace(
                    "    duration: 10s\n",
                    "    duration: 10s\n    path: status\n",
                ),
                "must start with /",
            ),
            (
                GOOD.replace(
                    "    duration: 10s\n",
                    "    duration: 10s\n    payload: 9999999\n",
                ),
                "spec.load.payload",
            ),
            (
                GOOD.replace(
                    "    duration: 10s\n",
                    "    duration: 10s\n    keys: {header: \"x y\", count: 3}\n",
                ),
                "not an HTTP header name",
            ),
            (
                GOOD.replace(
                    "  checks:",
                    "  events:\n  - {at: 1s, action: restart, endpoint: 0}\n  checks:",
                ),
                "needs a kill",
            ),
            (
                GOOD.replace(
                    "  checks:",
                    "  events:\n  - {at: 5s, action: kill, endpoint: 0}\n  checks:",
                ),
                "not within a run",
            ),
            (
                GOOD.replace(
                    "{name: direct, via: direct,",
                    "{name: direct, via: haproxy,",
                )
                .replace("protocol: http1", "protocol: grpc"),
                "HAProxy is compared",
            ),
            (
                GOOD.replace("variant: rr,", "variant: direct,"),
                "does not run in profile ci",
            ),
            (
                GOOD.replace("node: node-a, replicas", "node: ../x, replicas")
                    .replace("  services:", "  nodes: [{name: ../x}]\n  services:"),
                "DNS labels",
            ),
            (
                GOOD.replace("profiles: [ci, full]", "profiles: [nightly]"),
                "unknown profile",
            ),
            (
                GOOD.replace("name: good", "name: Good Scenario"),
                "metadata.name",
            ),
            (
                GOOD.replace("via: direct,", "via: direct, policy: {}, "),
                "only a `mesh` variant",
            ),
            (
                GOOD.replace("kind: Scenario", "kind: Topology"),
                "kind Scenario",
            ),
            (
                GOOD.replace(
                    "{name: rr, via: mesh,",
                    "{name: rr, via: mesh, endpoints: [5],",
                ),
                "indices",
            ),
            (GOOD.replace("threshold: roundRobinShare", ""), "threshold"),
        ];
        for (text, expected) in cases {
            let error = parse(&text).expect_err(expected).to_string();
            assert!(error.starts_with("s.yaml: "), "{error}");
            assert!(error.contains(expected), "expected {expected:?} in {error}");
        }
        let located = parse(&GOOD.replace("replicas: 2", "replicaz: 2")).expect_err("refused");
        assert!(
            located.message.starts_with("11:"),
            "line of the field: {located}"
        );
    }

    #[test]
    fn udp_through_the_mesh_is_refused_with_the_reason() {
        let text = GOOD.replace("protocol: http1", "protocol: udp");
        let error = parse(&text).expect_err("refused").to_string();
        assert!(error.contains("transparent capture"), "{error}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn a_good_file_cut_anywhere_never_panics(cut in 0usize..GOOD.len()) {
            let _ = parse(&GOOD[..cut]);
        }
    }
}
