//! Load state across picks: in-flight tokens, outcomes, endpoint sets that change under
//! outstanding picks, plan changes, and use from many threads at once.

#![allow(clippy::unwrap_used)]

#[path = "support/balance.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use causeway_mesh::balance::{
    CallerLocation, Candidate, ManualClock, Pick, PickContext, ServiceBalancer,
};
use causeway_policies::plan::{LoadBalancer, ServicePolicy};
use support::{anywhere, consistent_hash, endpoint_id, endpoints, every_algorithm, peak_ewma};

fn context() -> PickContext<'static> {
    PickContext::new(CallerLocation::unknown())
}

fn in_flight(balancer: &ServiceBalancer, i: usize) -> u64 {
    balancer.endpoint_stats(endpoint_id(i)).unwrap().in_flight
}

#[test]
fn everything_is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ServiceBalancer>();
    send_sync::<Pick>();
    send_sync::<Candidate>();
}

#[test]
fn a_pick_counts_in_flight_until_dropped() {
    for lb in every_algorithm() {
        let balancer = ServiceBalancer::new(&lb, &anywhere());
        let candidates = endpoints(1);
        let first = balancer.pick(&candidates, &context().with_hash(5)).unwrap();
        let second = balancer.pick(&candidates, &context().with_hash(5)).unwrap();
        assert_eq!((first.index(), first.id()), (0, endpoint_id(0)));
        assert_eq!(in_flight(&balancer, 0), 2, "{lb:?}");
        drop(first);
        assert_eq!(in_flight(&balancer, 0), 1, "{lb:?}");
        drop(second);
        assert_eq!(in_flight(&balancer, 0), 0, "{lb:?}");
    }
}

#[test]
fn outcomes_are_kept_for_outlier_detection() {
    let clock = Arc::new(ManualClock::new());
    let balancer = ServiceBalancer::with_clock(&peak_ewma(), &anywhere(), clock.clone());
    let candidates = endpoints(1);
    let stats = || balancer.endpoint_stats(endpoint_id(0)).unwrap();
    // Endpoints are known from the first pick that sees them.
    assert!(balancer.endpoint_stats(endpoint_id(0)).is_none());

    let mut failed = balancer.pick(&candidates, &context()).unwrap();
    assert_eq!(stats().latency_estimate, None);
    failed.record_failure();
    // The first outcome counts; a later one is ignored.
    failed.record_success(Duration::from_millis(1));
    assert!(failed.failed());
    assert_eq!(failed.latency(), None);
    drop(failed);
    let mut again = balancer.pick(&candidates, &context()).unwrap();
    again.record_failure();
    drop(again);
    assert_eq!(stats().consecutive_failures, 2);
    assert_eq!(stats().failures, 2);

    let mut ok = balancer.pick(&candidates, &context()).unwrap();
    ok.record_success(Duration::from_millis(40));
    assert!(!ok.failed());
    assert_eq!(ok.latency(), Some(Duration::from_millis(40)));
    drop(ok);
    let after = stats();
    assert_eq!(after.consecutive_failures, 0);
    assert_eq!(after.successes, 1);
    assert_eq!(after.latency_estimate, Some(Duration::from_millis(40)));
    assert_eq!(after.in_flight, 0);

    // A pick dropped with nothing recorded changes only the in-flight count.
    drop(balancer.pick(&candidates, &context()).unwrap());
    assert_eq!(stats().successes, 1);
    assert_eq!(stats().failures, 2);
}

#[test]
fn load_carries_over_when_the_endpoint_set_changes() {
    // One endpoint with three requests in flight…
    let balancer = ServiceBalancer::new(&LoadBalancer::LeastRequest, &anywhere());
    let one = endpoints(1);
    let held: Vec<Pick> = (0..3)
        .map(|_| balancer.pick(&one, &context()).unwrap())
        .collect();
    // …then a second endpoint appears, listed first. Two candidates means both are
    // compared every time, so the next three picks must all go to the newcomer: the
    // old endpoint's count survived the change.
    let two = vec![
        Candidate::new(endpoint_id(1), true),
        Candidate::new(endpoint_id(0), true),
    ];
    let newcomer: Vec<Pick> = (0..3)
        .map(|_| balancer.pick(&two, &context()).unwrap())
        .collect();
    for pick in &newcomer {
        assert_eq!(pick.id(), endpoint_id(1));
        assert_eq!(pick.index(), 0);
    }
    assert_eq!(in_flight(&balancer, 0), 3);
    assert_eq!(in_flight(&balancer, 1), 3);
    drop(held);
    assert_eq!(in_flight(&balancer, 0), 0);
    drop(newcomer);
}

#[test]
fn picks_of_an_endpoint_that_left_release_safely() {
    for lb in every_algorithm() {
        let balancer = ServiceBalancer::new(&lb, &anywhere());
        let three = endpoints(3);
        let held: Vec<Pick> = (0..30)
            .map(|i| balancer.pick(&three, &context().with_hash(i)).unwrap())
            .collect();
        // Endpoint 0 leaves; picks of it are still outstanding.
        let two: Vec<Candidate> = three[1..].to_vec();
        for i in 0..30 {
            let pick = balancer.pick(&two, &context().with_hash(i)).unwrap();
            assert_ne!(pick.id(), endpoint_id(0), "{lb:?}");
        }
        assert!(balancer.endpoint_stats(endpoint_id(0)).is_none());
        drop(held);
        assert_eq!(in_flight(&balancer, 1), 0, "{lb:?}");
        assert_eq!(in_flight(&balancer, 2), 0, "{lb:?}");
        // It comes back with a clean slate.
        balancer.pick(&three, &context()).unwrap();
        assert_eq!(in_flight(&balancer, 0), 0, "{lb:?}");
    }
}

#[test]
fn replanning_keeps_the_load() {
    let clock = Arc::new(ManualClock::new());
    let balancer = ServiceBalancer::with_clock(&LoadBalancer::RoundRobin, &anywhere(), clock);
    let candidates = endpoints(2);
    let held: Vec<Pick> = (0..4)
        .map(|_| balancer.pick(&candidates, &context()).unwrap())
        .collect();
    let mut timed = balancer.pick(&candidates, &context()).unwrap();
    let timed_index = timed.index();
    timed.record_success(Duration::from_millis(7));
    drop(timed);

    for lb in [LoadBalancer::LeastRequest, consistent_hash(1.25)] {
        let next = balancer.replan(&lb, &anywhere());
        assert_eq!(next.algorithm(), lb.algorithm());
        assert_eq!(in_flight(&next, 0), 2);
        assert_eq!(in_flight(&next, 1), 2);
        let stats = next.endpoint_stats(endpoint_id(timed_index)).unwrap();
        assert_eq!(stats.latency_estimate, Some(Duration::from_millis(7)));
        // The new plan's picks count on the same state (the ring is built on demand).
        let pick = next.pick(&candidates, &context().with_hash(3)).unwrap();
        assert_eq!(in_flight(&balancer, pick.index()), 3);
    }
    drop(held);
    assert_eq!(in_flight(&balancer, 0), 0);
}

#[test]
fn a_balancer_for_the_default_policy_is_least_request_on_the_node() {
    let balancer = ServiceBalancer::for_policy(&ServicePolicy::default());
    assert_eq!(
        balancer.algorithm(),
        causeway_policies::plan::Algorithm::LeastRequest
    );
    assert_eq!(balancer.locality(), &ServicePolicy::default().locality);
}

#[test]
fn many_threads_pick_at_once() {
    const THREADS: usize = 8;
    const PICKS: usize = 5_000;
    for lb in every_algorithm() {
        let balancer = ServiceBalancer::new(&lb, &anywhere());
        let candidates = endpoints(10);
        // Half the threads see a set without endpoint 9, so the table changes under
        // concurrent picks too.
        let fewer: Vec<Candidate> = candidates[..9].to_vec();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let set = if t % 2 == 0 { &candidates } else { &fewer };
                let balancer = &balancer;
                scope.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..PICKS {
                        let pick = balancer.pick(set, &context().with_hash(i as u64)).unwrap();
                        assert_eq!(set[pick.index()].id, pick.id());
                        held.push(pick);
                        if held.len() > 16 {
                            held.remove(0);
                        }
                    }
                });
            }
        });
        // Every pick was released: counts of the endpoints that stayed in the set
        // throughout are back to zero.
        for i in 0..9 {
            assert_eq!(in_flight(&balancer, i), 0, "{lb:?}");
        }
    }
}
