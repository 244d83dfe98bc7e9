//! Bad input is refused with a located, actionable diagnostic, and good input compiles to
//! the plan it says.

mod common;

use std::time::Duration;

use causeway_policies::Severity;
use causeway_policies::plan::{HashKey, LoadBalancer, OnLimit, RetryCondition};
use common::{check, summary, traffic_policy};

/// The one error of a spec, as `line:col path: message`.
fn only_error(spec_body: &str) -> String {
    let report = check(&traffic_policy(spec_body));
    let errors: Vec<String> = summary(&report)
        .into_iter()
        .filter(|s| s.starts_with("Error"))
        .collect();
    assert_eq!(errors.len(), 1, "{spec_body}\n{errors:#?}");
    errors[0].trim_start_matches("Error ").to_string()
}

#[test]
fn every_rule_names_line_column_field_and_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "  rateLimit:\n    qps: -5\n",
            "10:10 spec.rateLimit.qps: qps must be greater than 0, found -5",
        ),
        (
            "  rateLimit:\n    qps: 0\n",
            "10:10 spec.rateLimit.qps: qps must be greater than 0, found 0",
        ),
        (
            "  rateLimit:\n    qps: .nan\n",
            "10:10 spec.rateLimit.qps: qps must be a finite number",
        ),
        (
            "  rateLimit:\n    burst: 5\n",
            "10:5 spec.rateLimit.qps: missing required field `qps`",
        ),
        (
            "  rateLimit:\n    qps: 10\n    burst: 0\n",
            "11:12 spec.rateLimit.burst: burst must be at least 1, found 0",
        ),
        (
            "  rateLimit:\n    qps: 10\n    burst: 2.0\n",
            "11:12 spec.rateLimit.burst: burst must be written as an integer, found `2.0`",
        ),
        (
            "  rateLimit:\n    qps: \"10\"\n",
            "10:10 spec.rateLimit.qps: expected number, 0.001 to 1e9, found a string",
        ),
        (
            "  rateLimit:\n    qps: 10\n    scope: service\n",
            "11:12 spec.rateLimit.scope: unknown value `service`, did you mean `Service`?",
        ),
        (
            "  loadBalancer:\n    algorithm: RoundRobbin\n",
            "10:16 spec.loadBalancer.algorithm: unknown value `RoundRobbin`, did you mean `RoundRobin`?",
        ),
        (
            "  loadBalancer:\n    algorith: RoundRobin\n",
            "10:5 spec.loadBalancer.algorith: unknown field `algorith`, did you mean `algorithm`?",
        ),
        (
            "  loadBalancer:\n    algorithm: ConsistentHash\n",
            "10:5 spec.loadBalancer.consistentHash: missing required field `consistentHash`",
        ),
        (
            "  loadBalancer:\n    algorithm: RoundRobin\n    consistentHash:\n      header: x-user\n",
            "12:7 spec.loadBalancer.consistentHash: `consistentHash` applies only to algorithm ConsistentHash, but the algorithm is RoundRobin",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      header: x-user\n      sourceIP: true\n",
            "12:17 spec.loadBalancer.consistentHash.sourceIP: consistentHash takes one hash key, but both `header` and `sourceIP` are set",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      boundedLoad: 2\n",
            "11:7 spec.loadBalancer.consistentHash: consistentHash needs a hash key",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      header: x user\n",
            "11:15 spec.loadBalancer.consistentHash.header: `x user` is not a valid HTTP header name",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      sourceIP: true\n      boundedLoad: 0.5\n",
            "12:20 spec.loadBalancer.consistentHash.boundedLoad: boundedLoad must be at least 1.0, found 0.5",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      cookie:\n        name: s\n        path: nope\n",
            "13:15 spec.loadBalancer.consistentHash.cookie.path: `nope` is not a valid cookie path",
        ),
        (
            "  loadBalancer:\n    consistentHash:\n      sourceIP: false\n",
            "11:17 spec.loadBalancer.consistentHash.sourceIP: `sourceIP: false` selects no hash key",
        ),
        (
            "  timeouts:\n    request: 5\n",
            "10:14 spec.timeouts.request: duration `5` has no unit",
        ),
        (
            "  timeouts:\n    connect: 5d\n",
            "10:14 spec.timeouts.connect: invalid duration: unknown unit `d`; use ns, us, ms, s, m or h",
        ),
        (
            "  timeouts:\n    connect: 0s\n",
            "10:14 spec.timeouts.connect: connect must be longer than 0s",
        ),
        (
            "  timeouts:\n    request: 400d\n",
            "10:14 spec.timeouts.request: invalid duration: unknown unit `d`; use ns, us, ms, s, m or h",
        ),
        (
            "  timeouts:\n    request: 9000h\n",
            "10:14 spec.timeouts.request: request must be at most 8760h",
        ),
        (
            "  rateLimit:\n    qps: 1e-300\n",
            "10:10 spec.rateLimit.qps: qps must be at least 0.001 (one request per 1000s), found 1e-300",
        ),
        (
            "  retries:\n    retryOn: []\n",
            "10:14 spec.retries.retryOn: retryOn is empty, so nothing would be retried",
        ),
        (
            "  retries:\n    backoff:\n      maxInterval: 10ms\n",
            "11:20 spec.retries.backoff.maxInterval: maxInterval is shorter than baseInterval (25ms)",
        ),
        (
            "  loadBalancer:\n    peakEwma: {decay: 1s}\n    consistentHash: {header: x}\n",
            "11:21 spec.loadBalancer.consistentHash: both peakEwma and consistentHash are set, so the algorithm is ambiguous",
        ),
        (
            "  connectionPool:\n    maxConnections: 1e3\n",
            "10:21 spec.connectionPool.maxConnections: maxConnections must be written as an integer, found `1e3`",
        ),
        (
            "  connectionPool:\n    maxConnections: 99999999999999999999999999999999999999999\n",
            "10:21 spec.connectionPool.maxConnections: maxConnections must be at most 4294967295, found 99999999999999999999999999999999999999999",
        ),
        (
            "  retries:\n    nonIdempotent: yes\n",
            "10:20 spec.retries.nonIdempotent: expected boolean, found a string",
        ),
        (
            "  retries:\n    attempts: 11\n",
            "10:15 spec.retries.attempts: attempts must be between 0 and 10, found 11",
        ),
        (
            "  retries:\n    retryOn: [connect-failure, 5xxx]\n",
            "10:32 spec.retries.retryOn[1]: unknown value `5xxx`, did you mean `5xx`?",
        ),
        (
            "  retries:\n    retryOn: [200]\n",
            "10:15 spec.retries.retryOn[0]: retryOn[0] must be between 400 and 599, found 200",
        ),
        (
            "  retries:\n    backoff:\n      baseInterval: 1s\n      maxInterval: 100ms\n",
            "12:20 spec.retries.backoff.maxInterval: maxInterval is shorter than baseInterval (1s)",
        ),
        (
            "  retries:\n    budget:\n      ttl: 2m\n",
            "11:12 spec.retries.budget.ttl: ttl must be at most 60s",
        ),
        (
            "  retries:\n    budget:\n      percent: 120\n",
            "11:16 spec.retries.budget.percent: percent must be between 0 and 100, found 120",
        ),
        (
            "  outlierDetection:\n    maxEjectionPercent: 101\n",
            "10:25 spec.outlierDetection.maxEjectionPercent: maxEjectionPercent must be between 0 and 100, found 101",
        ),
        (
            "  connectionPool:\n    maxConnections: 0\n",
            "10:21 spec.connectionPool.maxConnections: maxConnections must be at least 1, found 0",
        ),
        (
            "  locality:\n    prefer: Zone\n",
            "10:13 spec.locality.prefer: unknown value `Zone`",
        ),
        (
            "  locality:\n    failover: [1]\n",
            "10:15 spec.locality.failover: expected a mapping, found a list",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(&only_error(body), expected, "for:\n{body}");
    }
}

#[test]
fn target_problems_are_located() {
    let text = "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: Reviews\n  namespace: shop\nspec:\n  targetRef:\n    kind: Deployment\n    name: reviews_v2\n    port: 70000\n";
    let report = check(text);
    assert_eq!(
        summary(&report),
        vec![
            "Error 4:9 metadata.name: `Reviews` is not a valid object name",
            "Error 8:11 spec.targetRef.kind: policies attach to Services, not to `Deployment`",
            "Error 9:11 spec.targetRef.name: `reviews_v2` is not a valid Service name",
            "Error 10:11 spec.targetRef.port: port must be between 1 and 65535, found 70000",
        ]
    );
    assert!(report.set.is_empty());
}

#[test]
fn one_pass_reports_every_error_of_a_document_and_keeps_the_others() {
    let text = format!(
        "{}---\n{}",
        traffic_policy("  rateLimit:\n    qps: -1\n    burts: 3\n  timeouts:\n    request: soon\n"),
        "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: ratings\n  namespace: shop\nspec:\n  targetRef:\n    name: ratings\n"
    );
    let report = check(&text);
    assert_eq!(report.errors(), 3, "{:#?}", summary(&report));
    assert_eq!(report.valid_objects, 1);
    assert!(report.set.bound("shop", "ratings", 80).is_some());
    assert!(report.set.bound("shop", "reviews", 80).is_none());
}

#[test]
fn syntax_errors_are_located_and_lose_only_their_document() {
    let text = format!(
        "{}---\nspec: [unclosed\n---\n{}",
        traffic_policy(""),
        traffic_policy("").replace("reviews", "other")
    );
    let report = check(&text);
    let lines = summary(&report);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0], "Error 10:7 -: invalid YAML: unclosed bracket '['");
    assert_eq!(report.valid_objects, 2);
}

#[test]
fn duplicate_keys_and_non_string_keys_are_errors() {
    let report = check(&traffic_policy(
        "  timeouts:\n    idle: 1s\n    idle: 2s\n    [a]: 1\n",
    ));
    assert_eq!(
        summary(&report),
        vec![
            "Error 11:5 spec.timeouts.idle: duplicate field `idle`",
            "Error 12:5 spec.timeouts: field names must be strings, found a list",
        ]
    );
    let related = &report.diagnostics[0].related[0];
    assert_eq!(related.location.pos.line, 10);
}

#[test]
fn objects_that_are_not_policies_are_skipped_and_lists_unpacked() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: reviews}\n- apiVersion: policy.causeway.dev/v1alpha1\n  kind: TrafficPolicy\n  metadata: {name: r, namespace: shop}\n  spec: {targetRef: {name: reviews}}\n";
    let report = check(text);
    assert_eq!(
        report.errors() + report.warnings(),
        0,
        "{:#?}",
        summary(&report)
    );
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.skipped[1].kind, "Deployment");
    assert_eq!(report.valid_objects, 1);
}

#[test]
fn a_document_that_is_not_an_object_is_an_error() {
    let report = check("just a string\n---\nfoo: bar\n---\n- 1\n");
    assert_eq!(
        summary(&report),
        vec![
            "Error 1:1 -: expected a Kubernetes object, found a string",
            "Error 3:1 -: not a Kubernetes object: missing `apiVersion`",
            "Error 5:1 -: expected a Kubernetes object, found a list",
        ]
    );
}

#[test]
fn misspelt_kinds_and_wrong_versions_of_policy_kinds_are_errors() {
    let report = check(
        "apiVersion: policy.causeway.dev/v1alpha1\nkind: TraficPolicy\n---\napiVersion: policy.causeway.dev/v1\nkind: TrafficPolicy\n---\napiVersion: causeway.dev/v1\nkind: TrafficPolicy\n---\napiVersion: networking.istio.io/v2\nkind: DestinationRule\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRul\n",
    );
    assert_eq!(
        summary(&report),
        vec![
            "Error 2:7 kind: unknown kind `TraficPolicy`, did you mean `TrafficPolicy`?",
            "Error 4:13 apiVersion: unsupported API version `v1`",
            "Error 7:13 apiVersion: TrafficPolicy is served as `policy.causeway.dev/v1alpha1`, not `causeway.dev/v1`",
            "Error 10:13 apiVersion: unsupported API version `v2`",
            "Error 14:7 kind: unknown kind `DestinationRul`, did you mean `DestinationRule`?",
        ]
    );
}

#[test]
fn a_number_where_a_string_belongs_gets_a_hint() {
    let text = "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: reviews\n  labels: [a]\nspec:\n  targetRef:\n    name: 42\n";
    let report = check(text);
    assert_eq!(
        summary(&report),
        vec![
            "Error 5:11 metadata.labels: expected a mapping of strings, found a list",
            "Error 8:11 spec.targetRef.name: expected a Service name (DNS-1035 label), found an integer",
        ]
    );
    assert_eq!(
        report.diagnostics[1].help.as_deref(),
        Some("put the value in quotes to make it a string")
    );
}

#[test]
fn max_queue_wait_without_queue_warns_and_per_try_longer_than_request_warns() {
    let report = check(&traffic_policy(
        "  rateLimit:\n    qps: 5\n    maxQueueWait: 1s\n  timeouts:\n    request: 1s\n  retries:\n    perTryTimeout: 2s\n",
    ));
    assert_eq!(report.errors(), 0);
    assert_eq!(
        summary(&report),
        vec![
            "Warning 11:19 spec.rateLimit.maxQueueWait: maxQueueWait has no effect unless onLimit is Queue",
            "Warning 15:20 spec.retries.perTryTimeout: perTryTimeout is not shorter than timeouts.request, so no retry can happen after a timed-out try",
        ]
    );
}

#[test]
fn defaults_are_filled_in_the_plan() {
    let report = check(&traffic_policy(
        "  rateLimit:\n    qps: 2.5\n    onLimit: Queue\n",
    ));
    assert_eq!(report.errors(), 0, "{:#?}", summary(&report));
    let plan = report.set.lookup("shop", "reviews", 9080);
    let limit = plan.rate_limit.as_ref().expect("a rate limit");
    assert_eq!(limit.burst, 3);
    assert_eq!(
        limit.on_limit,
        OnLimit::Queue {
            max_wait: Duration::from_secs(1)
        }
    );
    assert_eq!(plan.load_balancer, LoadBalancer::LeastRequest);
    assert_eq!(plan.timeouts.connect, Duration::from_secs(5));
    assert_eq!(plan.retries.attempts, 2);
    assert_eq!(plan.connection_pool.max_pending_requests, 1024);
    assert!(plan.outlier_detection.is_none());
}

#[test]
fn parameters_imply_their_algorithm_and_names_are_normalised() {
    let report = check(&traffic_policy(
        "  loadBalancer:\n    consistentHash:\n      header: X-User-Id\n  retries:\n    retryOn: [unavailable, 503, connect-failure, 503]\n",
    ));
    assert_eq!(report.errors(), 0, "{:#?}", summary(&report));
    let plan = report.set.lookup("shop", "reviews", 1);
    assert_eq!(
        plan.load_balancer,
        LoadBalancer::ConsistentHash {
            key: HashKey::Header {
                name: "x-user-id".into()
            },
            bounded_load: 1.25
        }
    );
    assert_eq!(
        plan.retries.retry_on,
        vec![
            RetryCondition::ConnectFailure,
            RetryCondition::Unavailable,
            RetryCondition::Status(503)
        ]
    );
    let report = check(&traffic_policy(
        "  loadBalancer:\n    peakEwma:\n      decay: 5s\n",
    ));
    assert!(matches!(
        report.set.lookup("shop", "reviews", 1).load_balancer,
        LoadBalancer::PeakEwma { decay, .. } if decay == Duration::from_secs(5)
    ));
}

#[test]
fn port_policies_win_over_service_policies_which_win_over_the_default() {
    let text = format!(
        "{}---\n{}",
        traffic_policy("  loadBalancer:\n    algorithm: Random\n"),
        traffic_policy("  loadBalancer:\n    algorithm: RoundRobin\n")
            .replace(
                "name: reviews\n  namespace",
                "name: reviews-grpc\n  namespace"
            )
            .replace("    name: reviews\n", "    name: reviews\n    port: 9090\n")
    );
    let report = check(&text);
    assert_eq!(report.errors(), 0, "{:#?}", summary(&report));
    let set = &report.set;
    assert_eq!(
        set.lookup("shop", "reviews", 9090).load_balancer,
        LoadBalancer::RoundRobin
    );
    assert_eq!(
        set.lookup("shop", "reviews", 80).load_balancer,
        LoadBalancer::Random
    );
    assert_eq!(
        set.lookup("shop", "ratings", 80).load_balancer,
        LoadBalancer::LeastRequest
    );
    assert_eq!(
        set.lookup("other", "reviews", 80).load_balancer,
        LoadBalancer::LeastRequest
    );
    assert_eq!(set.len(), 2);
}

#[test]
fn conflicts_name_both_places() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: RANDOM}\n";
    let report = check(&format!(
        "{}---\n{dr}---\n{}",
        traffic_policy(""),
        traffic_policy("")
    ));
    let lines = summary(&report);
    assert_eq!(
        lines,
        vec![
            "Error 18:5 spec.trafficPolicy: service `shop/reviews` (all ports) already has a policy from TrafficPolicy `shop/reviews`",
            "Error 20:1 metadata.name: TrafficPolicy `shop/reviews` is defined twice",
        ]
    );
    assert_eq!(report.diagnostics[0].related[0].location.pos.line, 7);
    assert_eq!(report.diagnostics[1].related[0].location.pos.line, 1);
}

#[test]
fn aliases_work_and_alias_bombs_do_not() {
    let ok = "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a, namespace: shop}\nspec:\n  targetRef: {name: a}\n  timeouts: &t {connect: 1s}\n---\napiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: b, namespace: shop}\nspec:\n  targetRef: {name: b}\n  timeouts: *t\n";
    let report = check(ok);
    assert_eq!(
        report.errors(),
        1,
        "aliases do not cross documents: {:#?}",
        summary(&report)
    );
    let one_doc = ok.replace("---\napiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: b, namespace: shop}\nspec:\n  targetRef: {name: b}\n  timeouts: *t\n", "");
    assert_eq!(check(&one_doc).errors(), 0);

    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "b{i}: &b{i} [{}]\n",
            vec![
                if i == 1 {
                    "*a".to_string()
                } else {
                    format!("*b{}", i - 1)
                };
                10
            ]
            .join(", ")
        ));
    }
    let report = check(&bomb);
    assert_eq!(report.errors(), 1);
    assert!(
        report.diagnostics[0]
            .message
            .contains("once its aliases are expanded")
    );
}

#[test]
fn severity_of_unsupported_istio_fields_is_warning() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n";
    let report = check(text);
    assert!(report.is_ok());
    let warnings: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| (d.path.clone().unwrap_or_default(), d.message.clone()))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (
                "spec.subsets".to_string(),
                "field `subsets` is not supported by Causeway and is ignored".to_string()
            ),
            (
                "spec.trafficPolicy.tls".to_string(),
                "field `tls` is not supported by Causeway and is ignored".to_string()
            ),
        ]
    );
    assert!(report.diagnostics.iter().all(|d| d.help.is_some()));
}

#[test]
fn merge_keys_work_as_in_kubernetes_manifests() {
    let text = "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a, namespace: shop}\nspec:\n  targetRef: {name: a}\n  timeouts: &defaults\n    connect: 1s\n    idle: 10m\n  retries:\n    <<: {attempts: 4, perTryTimeout: 2s}\n    attempts: 1\n";
    let report = check(text);
    assert!(report.is_ok(), "{:#?}", summary(&report));
    let plan = report.set.lookup("shop", "a", 80);
    assert_eq!(
        plan.retries.attempts, 1,
        "the key written in the mapping wins"
    );
    assert_eq!(plan.retries.per_try_timeout, Some(Duration::from_secs(2)));

    let bad = check(&traffic_policy("  retries:\n    <<: [1, 2]\n"));
    assert_eq!(
        summary(&bad),
        vec![
            "Error 10:9 spec.retries.<<: the merge key `<<` needs a mapping or a list of mappings, found a list"
        ]
    );
}

#[test]
fn yaml_1_1_booleans_get_a_hint() {
    let report = check(&traffic_policy("  retries:\n    nonIdempotent: yes\n"));
    assert_eq!(
        report.diagnostics[0].help.as_deref(),
        Some("YAML 1.2 reads `yes` as a string; write `true` or `false`")
    );
}

#[test]
fn a_near_miss_of_a_policy_kind_in_another_group_is_not_silent() {
    let report = check(
        "apiVersion: causeway.dev/v1alpha1\nkind: Trafficpolicy\nmetadata: {name: x}\nspec: {rateLimit: {qps: -1}}\n",
    );
    assert!(report.is_ok());
    assert_eq!(
        summary(&report),
        vec![
            "Warning 2:7 kind: `Trafficpolicy` of `causeway.dev/v1alpha1` is not a policy Causeway reads, so it is skipped"
        ]
    );
    assert_eq!(
        report.diagnostics[0].help.as_deref(),
        Some("did you mean kind `TrafficPolicy` of `policy.causeway.dev/v1alpha1`?")
    );
    // Ordinary manifests stay quiet.
    assert!(
        check("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
            .diagnostics
            .is_empty()
    );
}

#[test]
fn paths_inside_a_list_start_at_its_items() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: policy.causeway.dev/v1alpha1\n  kind: TrafficPolicy\n  metadata: {name: r, namespace: shop}\n  spec: {targetRef: {name: reviews}, rateLimit: {qps: 0}}\n- 7\n";
    let lines = summary(&check(text));
    assert_eq!(
        lines,
        vec![
            "Error 7:55 items[0].spec.rateLimit.qps: qps must be greater than 0, found 0",
            "Error 8:3 items[1]: expected a Kubernetes object, found an integer",
        ]
    );
}

#[test]
fn a_flood_of_problems_is_cut_short() {
    let mut text = traffic_policy("  timeouts:\n");
    for i in 0..500 {
        text.push_str(&format!("    bogus{i}: 1\n"));
    }
    let report = check(&text);
    assert_eq!(report.diagnostics.len(), 101);
    let last = report.diagnostics.last().unwrap();
    assert_eq!(
        last.message,
        "400 more problems in this file are not shown (400 errors, 0 warnings)"
    );
    assert!(!report.is_ok());
}

#[test]
fn a_long_line_is_quoted_around_the_problem() {
    let padding = "x".repeat(2000);
    let report = check(&traffic_policy(&format!(
        "  timeouts: {{request: 1s, idle: 1s, connect: 5}} # {padding}\n"
    )));
    let text = report.render_text();
    assert!(text.lines().all(|l| l.chars().count() < 200), "{text}");
    assert!(text.contains("connect: 5}"), "{text}");
    assert!(text.contains("duration `5` has no unit"), "{text}");
}
