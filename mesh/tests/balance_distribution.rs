//! Every algorithm spreads 100,000 picks over ten equal endpoints as it should.
//!
//! Tolerances, per endpoint, of the fair share (10,000):
//! - RoundRobin: exact.
//! - Random, and LeastRequest/PeakEwma with nothing in flight (every comparison a tie,
//!   settled at random): ±5%. A binomial count has a standard deviation of
//!   √(100,000 × 0.1 × 0.9) ≈ 95, so ±500 is over 5 standard deviations: a false
//!   failure is a one-in-millions event.
//! - LeastRequest and PeakEwma with requests held in flight: ±5% too (measured within
//!   ±0.7%), and in-flight counts kept close: a mean spread between the most and least
//!   loaded endpoint of at most 4.5 (measured ≈ 3.4; random placement ≈ 6.8).
//! - ConsistentHash over 100,000 distinct keys: ±20%. Each endpoint's share of the ring
//!   varies with a relative standard deviation of about 1/√256 ≈ 6%, so ±20% is over
//!   three of them; the hash is stable, so the outcome is the same on every run.

#![allow(clippy::unwrap_used)]

#[path = "support/balance.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use causeway_mesh::balance::{
    CallerLocation, ManualClock, PickContext, ServiceBalancer, stable_hash,
};
use causeway_policies::plan::LoadBalancer;
use support::{Tally, anywhere, consistent_hash, endpoints, peak_ewma};

const PICKS: usize = 100_000;
const ENDPOINTS: usize = 10;

/// `PICKS` picks, each dropped before the next.
fn one_at_a_time(balancer: &ServiceBalancer, key: impl Fn(usize) -> Option<u64>) -> Tally {
    let candidates = endpoints(ENDPOINTS);
    let mut tally = Tally::new(ENDPOINTS);
    for i in 0..PICKS {
        let mut context = PickContext::new(CallerLocation::unknown());
        if let Some(key) = key(i) {
            context = context.with_hash(key);
        }
        let pick = balancer.pick(&candidates, &context).unwrap();
        tally.add(&pick);
    }
    tally
}

#[test]
fn round_robin_is_exact() {
    let balancer = ServiceBalancer::new(&LoadBalancer::RoundRobin, &anywhere());
    let tally = one_at_a_time(&balancer, |_| None);
    assert_eq!(tally.0, vec![PICKS / ENDPOINTS; ENDPOINTS]);
}

#[test]
fn round_robin_takes_turns() {
    let balancer = ServiceBalancer::new(&LoadBalancer::RoundRobin, &anywhere());
    let candidates = endpoints(ENDPOINTS);
    let context = PickContext::new(CallerLocation::unknown());
    let first = balancer.pick(&candidates, &context).unwrap().index();
    for step in 1..50 {
        let pick = balancer.pick(&candidates, &context).unwrap();
        assert_eq!(pick.index(), (first + step) % ENDPOINTS);
    }
}

#[test]
fn random_is_within_five_percent() {
    let balancer = ServiceBalancer::new(&LoadBalancer::Random, &anywhere());
    let tally = one_at_a_time(&balancer, |_| None);
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
}

#[test]
fn least_request_with_nothing_in_flight_is_within_five_percent() {
    let balancer = ServiceBalancer::new(&LoadBalancer::LeastRequest, &anywhere());
    let tally = one_at_a_time(&balancer, |_| None);
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
}

#[test]
fn peak_ewma_with_nothing_in_flight_is_within_five_percent() {
    let balancer = ServiceBalancer::new(&peak_ewma(), &anywhere());
    let tally = one_at_a_time(&balancer, |_| None);
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
}

/// `PICKS` picks with the last `window` held in flight; each records `latency` when it
/// is dropped, and the clock moves 100 µs per pick. Returns the tally and the mean, over
/// all picks, of the difference between the most and least loaded endpoint.
fn held_in_flight(lb: &LoadBalancer, window: usize, latency: Duration) -> (Tally, f64) {
    let clock = Arc::new(ManualClock::new());
    let balancer = ServiceBalancer::with_clock(lb, &anywhere(), clock.clone());
    let candidates = endpoints(ENDPOINTS);
    let context = PickContext::new(CallerLocation::unknown());
    let mut tally = Tally::new(ENDPOINTS);
    let mut outstanding = VecDeque::new();
    let mut spread_sum = 0u64;
    for _ in 0..PICKS {
        clock.advance(Duration::from_micros(100));
        if outstanding.len() == window {
            let mut done: causeway_mesh::balance::Pick = outstanding.pop_front().unwrap();
            done.record_success(latency);
        }
        let pick = balancer.pick(&candidates, &context).unwrap();
        tally.add(&pick);
        outstanding.push_back(pick);
        let in_flight: Vec<u64> = candidates
            .iter()
            .map(|c| balancer.endpoint_stats(c.id).unwrap().in_flight)
            .collect();
        let spread = in_flight.iter().max().unwrap() - in_flight.iter().min().unwrap();
        spread_sum += spread;
    }
    let mean_spread = spread_sum as f64 / PICKS as f64;
    eprintln!("{lb:?}: {tally:?}, mean in-flight spread {mean_spread:.2}");
    (tally, mean_spread)
}

#[test]
fn least_request_with_requests_in_flight_is_within_five_percent() {
    let (tally, spread) = held_in_flight(&LoadBalancer::LeastRequest, 50, Duration::ZERO);
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
    // Power of two choices keeps in-flight counts close: with 50 in flight over ten
    // endpoints the most and least loaded differ by about 3.4 on average (measured),
    // where random placement (the control below) differs by about 6.8.
    assert!(spread <= 4.5, "mean in-flight spread {spread}");
}

#[test]
fn peak_ewma_with_equal_latencies_is_within_five_percent() {
    let (tally, spread) = held_in_flight(&peak_ewma(), 50, Duration::from_millis(5));
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
    assert!(spread <= 4.5, "mean in-flight spread {spread}");
}

#[test]
fn consistent_hash_spreads_distinct_keys_within_twenty_percent() {
    let balancer = ServiceBalancer::new(&consistent_hash(1.25), &anywhere());
    let tally = one_at_a_time(&balancer, |i| {
        Some(stable_hash(format!("user-{i}").as_bytes()))
    });
    eprintln!(
        "ConsistentHash: {tally:?}, worst deviation {:.3}",
        tally.worst_deviation()
    );
    assert!(tally.worst_deviation() <= 0.20, "{tally:?}");
}

#[test]
fn consistent_hash_without_a_key_balances_like_least_request() {
    let balancer = ServiceBalancer::new(&consistent_hash(1.25), &anywhere());
    let tally = one_at_a_time(&balancer, |_| None);
    assert!(tally.worst_deviation() <= 0.05, "{tally:?}");
}

#[test]
fn random_placement_spreads_in_flight_counts_wider() {
    // The control for the spread assertions above: the same load placed at random
    // spreads much wider, so those assertions measure the algorithms, not the setup.
    let (_, spread) = held_in_flight(&LoadBalancer::Random, 50, Duration::ZERO);
    assert!(spread > 5.5, "mean in-flight spread {spread}");
}
