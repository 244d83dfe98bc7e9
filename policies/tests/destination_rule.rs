//! Istio DestinationRules map onto the same plans as TrafficPolicies.

mod common;

use std::time::Duration;

use causeway_policies::plan::{HashKey, LoadBalancer};
use causeway_policies::{PolicyKind, Severity};
use common::{check, summary};

fn rule(version: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/{version}\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n{spec}"
    )
}

#[test]
fn http_header_hash_passes_in_every_served_version() {
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let report = check(&rule(
            version,
            "  host: reviews.shop.svc.cluster.local\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n",
        ));
        assert!(
            report.is_ok() && report.warnings() == 0,
            "{:#?}",
            summary(&report)
        );
        let bound = report.set.bound("shop", "reviews", 80).expect("bound");
        assert_eq!(bound.origin.kind, PolicyKind::DestinationRule);
        assert_eq!(
            bound.plan.load_balancer,
            LoadBalancer::ConsistentHash {
                key: HashKey::Header {
                    name: "x-user".into()
                },
                bounded_load: 1.25
            }
        );
    }
}

#[test]
fn connection_pool_and_outlier_detection_map_onto_the_plan() {
    let report = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n    connectionPool:\n      tcp:\n        maxConnections: 100\n        connectTimeout: 30ms\n        idleTimeout: 1h\n      http:\n        http1MaxPendingRequests: 0\n        maxRequestsPerConnection: 0\n        idleTimeout: 10m\n    outlierDetection:\n      consecutive5xxErrors: 7\n      interval: 5m\n      baseEjectionTime: 15m\n      maxEjectionPercent: 100\n",
    ));
    assert!(report.is_ok(), "{:#?}", summary(&report));
    let plan = report.set.lookup("shop", "reviews", 80);
    assert_eq!(plan.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(plan.connection_pool.max_connections, Some(100));
    assert_eq!(
        plan.connection_pool.max_pending_requests, 1024,
        "0 means the default"
    );
    assert_eq!(
        plan.connection_pool.max_requests_per_connection, None,
        "0 means unlimited"
    );
    assert_eq!(plan.timeouts.connect, Duration::from_millis(30));
    assert_eq!(
        plan.timeouts.idle,
        Some(Duration::from_secs(600)),
        "the shorter idle timeout wins"
    );
    let outlier = plan.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(outlier.consecutive_errors, 7);
    assert_eq!(outlier.interval, Duration::from_secs(300));
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(900));
    assert_eq!(outlier.max_ejection_percent, 100);
}

#[test]
fn port_level_settings_replace_the_top_level_whole_as_in_istio() {
    let report = check(&rule(
        "v1beta1",
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simple: RANDOM\n    outlierDetection:\n      consecutive5xxErrors: 3\n    portLevelSettings:\n    - port: {number: 9080}\n      loadBalancer:\n        consistentHash:\n          useSourceIp: true\n    - port: {number: 9090}\n      outlierDetection:\n        consecutive5xxErrors: 0\n    - port: {number: 9443}\n      tls: {mode: SIMPLE}\n",
    ));
    assert!(report.is_ok(), "{:#?}", summary(&report));
    let set = &report.set;
    // The port's own sections apply; the sections it does not write take the defaults,
    // not the rule's top level ("will not be inherited", Istio's API reference).
    let p9080 = set.lookup("shop", "reviews", 9080);
    assert!(matches!(
        p9080.load_balancer,
        LoadBalancer::ConsistentHash {
            key: HashKey::SourceIp,
            ..
        }
    ));
    assert!(p9080.outlier_detection.is_none(), "not inherited");
    let p9090 = set.lookup("shop", "reviews", 9090);
    assert_eq!(
        p9090.load_balancer,
        LoadBalancer::LeastRequest,
        "the default, not RANDOM"
    );
    assert!(p9090.outlier_detection.is_none(), "0 turns ejection off");
    // A port that writes only what Causeway ignores still leaves the top level.
    let p9443 = set.lookup("shop", "reviews", 9443);
    assert_eq!(p9443.load_balancer, LoadBalancer::LeastRequest);
    // Every other port: the top level.
    let other = set.lookup("shop", "reviews", 1);
    assert_eq!(other.load_balancer, LoadBalancer::Random);
    assert_eq!(
        other
            .outlier_detection
            .as_ref()
            .map(|o| o.consecutive_errors),
        Some(3)
    );
    assert_eq!(set.len(), 4);
}

#[test]
fn a_rule_that_maps_nothing_claims_nothing() {
    let subsets_only = rule(
        "v1",
        "  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: ISTIO_MUTUAL}\n",
    );
    let policy = "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: reviews, namespace: shop}\nspec:\n  targetRef: {name: reviews}\n  loadBalancer: {algorithm: RoundRobin}\n";
    let report = check(&format!("{subsets_only}---\n{policy}"));
    assert_eq!(report.errors(), 0, "{:#?}", summary(&report));
    assert_eq!(
        report.set.lookup("shop", "reviews", 80).load_balancer,
        LoadBalancer::RoundRobin
    );
    assert_eq!(report.set.len(), 1);
}

#[test]
fn istio_zero_values_mean_what_istio_means() {
    let report = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        idleTimeout: 0s\n    outlierDetection:\n      consecutiveErrors: 0\n      maxEjectionPercent: 0\n",
    ));
    assert!(report.is_ok(), "{:#?}", summary(&report));
    let plan = report.set.lookup("shop", "reviews", 80);
    assert_eq!(plan.timeouts.idle, None, "0s turns the idle timeout off");
    let outlier = plan
        .outlier_detection
        .as_ref()
        .expect("outlier detection on");
    assert_eq!(outlier.consecutive_errors, 5, "deprecated 0 means unset");
    assert_eq!(outlier.max_ejection_percent, 10, "0 means unset");

    let both = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    outlierDetection:\n      consecutive5xxErrors: 4\n      consecutiveErrors: 9\n",
    ));
    assert!(both.is_ok());
    assert!(
        summary(&both).iter().any(|l| l.contains("consecutiveErrors is ignored because consecutive5xxErrors is set")),
        "{:#?}",
        summary(&both)
    );
    assert_eq!(
        both.set
            .lookup("shop", "reviews", 80)
            .outlier_detection
            .as_ref()
            .map(|o| o.consecutive_errors),
        Some(4)
    );
}

#[test]
fn an_istio_cookie_without_ttl_is_hashed_but_not_set() {
    let cookie = |ttl: &str| {
        let report = check(&rule(
            "v1",
            &format!(
                "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie:\n          name: user\n{ttl}"
            ),
        ));
        assert!(report.is_ok(), "{:#?}", summary(&report));
        match &report.set.lookup("shop", "reviews", 80).load_balancer {
            LoadBalancer::ConsistentHash {
                key: HashKey::Cookie { generate, ttl, .. },
                ..
            } => (*generate, *ttl),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(cookie(""), (false, None));
    assert_eq!(
        cookie("          ttl: 0s\n"),
        (true, None),
        "session cookie"
    );
    assert_eq!(
        cookie("          ttl: 1h\n"),
        (true, Some(Duration::from_secs(3600)))
    );
}

#[test]
fn the_namespace_of_a_host_is_checked() {
    for host in [
        "reviews..svc.cluster.local",
        "reviews.Prod_NS.svc.cluster.local",
    ] {
        let report = check(&rule(
            "v1",
            &format!("  host: {host}\n  trafficPolicy:\n    loadBalancer: {{simple: RANDOM}}\n"),
        ));
        assert_eq!(report.errors(), 1, "{host}: {:#?}", summary(&report));
        assert!(
            summary(&report)[0].contains("is not a valid namespace"),
            "{:#?}",
            summary(&report)
        );
        assert!(report.set.is_empty());
    }
}

#[test]
fn a_port_listed_twice_is_a_conflict_naming_both() {
    let report = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      loadBalancer: {simple: RANDOM}\n    - port: {number: 80}\n      loadBalancer: {simple: ROUND_ROBIN}\n",
    ));
    assert_eq!(
        summary(&report),
        vec![
            "Error 12:7 spec.trafficPolicy.portLevelSettings[1]: service `shop/reviews` port 80 already has a policy from DestinationRule `shop/reviews`"
        ]
    );
    assert_eq!(report.diagnostics[0].related[0].location.pos.line, 10);
}

#[test]
fn istio_specific_values_warn_and_fall_back() {
    let report = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simple: LEAST_CONN\n    portLevelSettings:\n    - port: {number: 81}\n      loadBalancer:\n        simple: PASSTHROUGH\n    outlierDetection:\n      consecutiveErrors: 2\n",
    ));
    assert!(report.is_ok(), "{:#?}", summary(&report));
    assert_eq!(
        summary(&report),
        vec![
            "Warning 10:15 spec.trafficPolicy.loadBalancer.simple: LEAST_CONN is deprecated in Istio",
            "Warning 14:17 spec.trafficPolicy.portLevelSettings[0].loadBalancer.simple: PASSTHROUGH is not supported by Causeway; the default LEAST_REQUEST is used",
            "Warning 16:7 spec.trafficPolicy.outlierDetection.consecutiveErrors: field `consecutiveErrors` is deprecated",
        ]
    );
    let plan = report.set.lookup("shop", "reviews", 80);
    assert_eq!(
        plan.outlier_detection
            .as_ref()
            .map(|o| o.consecutive_errors),
        Some(2)
    );
}

#[test]
fn hosts_outside_the_cluster_are_skipped_with_a_warning() {
    for host in ["api.example.com", "*.shop.svc.cluster.local"] {
        let report = check(&rule("v1", &format!("  host: \"{host}\"\n")));
        assert!(report.is_ok());
        assert!(report.set.is_empty());
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.diagnostics.len(), 1);
        assert_eq!(report.diagnostics[0].severity, Severity::Warning);
        assert_eq!(report.diagnostics[0].path.as_deref(), Some("spec.host"));
    }
}

#[test]
fn typos_in_istio_fields_are_errors_not_warnings() {
    let report = check(&rule(
        "v1",
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeader: x-user\n",
    ));
    assert_eq!(
        summary(&report),
        vec![
            "Error 11:9 spec.trafficPolicy.loadBalancer.consistentHash.httpHeader: unknown field `httpHeader`, did you mean `httpHeaderName`?",
            "Error 11:9 spec.trafficPolicy.loadBalancer.consistentHash: consistentHash needs a hash key",
        ]
    );
}

#[test]
fn other_istio_kinds_warn_that_they_have_no_effect() {
    let report = check(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {}\n",
    );
    assert!(report.is_ok());
    assert_eq!(
        summary(&report),
        vec!["Warning 2:7 kind: Istio VirtualService is not read by Causeway; it has no effect"]
    );
}
