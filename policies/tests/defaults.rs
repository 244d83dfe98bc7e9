//! The defaults the schema (and so the reference) prints are the ones compiled into plans.

use std::collections::BTreeMap;

use causeway_policies::duration::format;
use causeway_policies::plan::{self, ServicePolicy};
use causeway_policies::schema::Field;
use causeway_policies::{destination_rule, traffic_policy};

fn defaults(
    schema: &'static causeway_policies::schema::ObjectSchema,
) -> BTreeMap<String, &'static str> {
    schema
        .paths("spec")
        .into_iter()
        .filter_map(|(path, field): (String, &Field)| field.default.map(|d| (path, d)))
        .collect()
}

#[test]
fn traffic_policy_defaults_are_the_compiled_ones() {
    let documented = defaults(&traffic_policy::SPEC);
    let plan = ServicePolicy::default();
    let retry_on: Vec<String> = plan
        .retries
        .retry_on
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .expect("serializes")
                .as_str()
                .expect("a name")
                .to_string()
        })
        .collect();
    let compiled: Vec<(&str, String)> = vec![
        (
            "spec.loadBalancer.algorithm",
            format!("{:?}", plan.load_balancer.algorithm()),
        ),
        (
            "spec.loadBalancer.peakEwma.decay",
            format(plan::DEFAULT_EWMA_DECAY),
        ),
        (
            "spec.loadBalancer.peakEwma.defaultRtt",
            format(plan::DEFAULT_EWMA_RTT),
        ),
        (
            "spec.loadBalancer.consistentHash.boundedLoad",
            plan::DEFAULT_BOUNDED_LOAD.to_string(),
        ),
        (
            "spec.loadBalancer.consistentHash.cookie.path",
            plan::DEFAULT_COOKIE_PATH.to_string(),
        ),
        (
            "spec.locality.prefer",
            format!("{:?}", plan.locality.prefer),
        ),
        (
            "spec.locality.failover.minEndpoints",
            plan.locality.min_endpoints.to_string(),
        ),
        (
            "spec.locality.failover.minHealthyPercent",
            plan.locality.min_healthy_percent.to_string(),
        ),
        (
            "spec.rateLimit.maxQueueWait",
            format(plan::DEFAULT_MAX_QUEUE_WAIT),
        ),
        ("spec.timeouts.connect", format(plan.timeouts.connect)),
        (
            "spec.timeouts.idle",
            format(plan.timeouts.idle.expect("an idle timeout")),
        ),
        ("spec.retries.attempts", plan.retries.attempts.to_string()),
        ("spec.retries.retryOn", format!("[{}]", retry_on.join(", "))),
        (
            "spec.retries.backoff.baseInterval",
            format(plan.retries.backoff.base_interval),
        ),
        (
            "spec.retries.backoff.maxInterval",
            format(plan.retries.backoff.max_interval),
        ),
        (
            "spec.retries.budget.percent",
            plan.retries.budget.percent.to_string(),
        ),
        (
            "spec.retries.budget.minRetriesPerSecond",
            plan.retries.budget.min_retries_per_second.to_string(),
        ),
        ("spec.retries.budget.ttl", format(plan.retries.budget.ttl)),
        (
            "spec.retries.nonIdempotent",
            plan.retries.non_idempotent.to_string(),
        ),
        (
            "spec.outlierDetection.consecutiveErrors",
            plan::DEFAULT_CONSECUTIVE_ERRORS.to_string(),
        ),
        (
            "spec.outlierDetection.interval",
            format(plan::DEFAULT_OUTLIER_INTERVAL),
        ),
        (
            "spec.outlierDetection.baseEjectionTime",
            format(plan::DEFAULT_BASE_EJECTION_TIME),
        ),
        (
            "spec.outlierDetection.maxEjectionPercent",
            plan::DEFAULT_MAX_EJECTION_PERCENT.to_string(),
        ),
        (
            "spec.connectionPool.maxPendingRequests",
            plan.connection_pool.max_pending_requests.to_string(),
        ),
    ];
    for (path, value) in &compiled {
        assert_eq!(
            documented.get(*path).copied(),
            Some(value.as_str()),
            "{path}"
        );
    }
    // Defaults that are not values ("none", "unlimited", a formula) follow from the plan
    // holding nothing.
    assert_eq!(documented["spec.timeouts.request"], "none");
    assert!(plan.timeouts.request.is_none());
    assert_eq!(documented["spec.retries.perTryTimeout"], "none");
    assert!(plan.retries.per_try_timeout.is_none());
    assert_eq!(
        documented["spec.connectionPool.maxConnections"],
        "unlimited"
    );
    assert!(plan.connection_pool.max_connections.is_none());
    assert_eq!(
        documented["spec.connectionPool.maxRequestsPerConnection"],
        "unlimited"
    );
    assert!(plan.connection_pool.max_requests_per_connection.is_none());
    assert_eq!(documented["spec.rateLimit.burst"], "max(1, ceil(qps))");
    assert_eq!(plan::default_burst(0.2), 1);
    assert_eq!(plan::default_burst(99.5), 100);
}

#[test]
fn destination_rule_defaults_are_the_compiled_ones() {
    let documented = defaults(&destination_rule::SPEC);
    let plan = ServicePolicy::default();
    let tp = "spec.trafficPolicy";
    assert_eq!(
        documented[&format!("{tp}.loadBalancer.simple")],
        "LEAST_REQUEST"
    );
    assert_eq!(
        format!("{:?}", plan.load_balancer.algorithm()),
        "LeastRequest"
    );
    assert_eq!(
        documented[&format!("{tp}.connectionPool.tcp.connectTimeout")],
        format(plan.timeouts.connect)
    );
    assert_eq!(
        documented[&format!("{tp}.connectionPool.tcp.idleTimeout")],
        format(plan.timeouts.idle.expect("an idle timeout"))
    );
    assert_eq!(
        documented[&format!("{tp}.connectionPool.http.idleTimeout")],
        format(plan.timeouts.idle.expect("an idle timeout"))
    );
    assert_eq!(
        documented[&format!("{tp}.connectionPool.http.http1MaxPendingRequests")],
        plan.connection_pool.max_pending_requests.to_string()
    );
    assert_eq!(
        documented[&format!("{tp}.outlierDetection.consecutive5xxErrors")],
        plan::DEFAULT_CONSECUTIVE_ERRORS.to_string()
    );
    assert_eq!(
        documented[&format!("{tp}.outlierDetection.interval")],
        format(plan::DEFAULT_OUTLIER_INTERVAL)
    );
    assert_eq!(
        documented[&format!("{tp}.outlierDetection.baseEjectionTime")],
        format(plan::DEFAULT_BASE_EJECTION_TIME)
    );
    assert_eq!(
        documented[&format!("{tp}.outlierDetection.maxEjectionPercent")],
        plan::DEFAULT_MAX_EJECTION_PERCENT.to_string()
    );
}
