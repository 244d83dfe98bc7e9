//! Locality and health: same node first, failover to the site and then anywhere by the
//! plan's thresholds, and only healthy endpoints (ready, not excluded, not ejected).
//!
//! The layout: the caller runs on node `n1` in site `s1`. Endpoints 0–1 run on `n1`,
//! 2–4 on `n2` (site `s1`), 5–9 on `n3` (site `s2`).

#![allow(clippy::unwrap_used)]

#[path = "support/balance.rs"]
mod support;

use std::collections::BTreeSet;

use causeway_mesh::balance::{CallerLocation, Candidate, EndpointId, PickContext, ServiceBalancer};
use causeway_policies::plan::{LoadBalancer, Locality, LocalityTier};
use support::{endpoint_id, every_algorithm};

const PICKS: usize = 2_000;

fn layout() -> Vec<Candidate> {
    (0..10)
        .map(|i| {
            let (node, site) = match i {
                0..=1 => ("n1", "s1"),
                2..=4 => ("n2", "s1"),
                _ => ("n3", "s2"),
            };
            Candidate::new(endpoint_id(i), true)
                .on_node(node)
                .in_site(site)
        })
        .collect()
}

fn caller() -> CallerLocation<'static> {
    CallerLocation::new("n1", "s1")
}

fn locality(prefer: LocalityTier, min_endpoints: u32, min_healthy_percent: u8) -> Locality {
    Locality {
        prefer,
        min_endpoints,
        min_healthy_percent,
    }
}

/// The candidate indices `PICKS` picks reached (each dropped at once), and the tier of
/// the last pick.
fn reached(
    lb: &LoadBalancer,
    locality: &Locality,
    candidates: &[Candidate],
    context: &PickContext<'_>,
) -> (BTreeSet<usize>, Option<LocalityTier>) {
    let balancer = ServiceBalancer::new(lb, locality);
    let mut seen = BTreeSet::new();
    let mut tier = None;
    for i in 0..PICKS {
        let context = context.with_hash(i as u64);
        match balancer.pick(candidates, &context) {
            Some(pick) => {
                assert_eq!(candidates[pick.index()].id, pick.id());
                seen.insert(pick.index());
                tier = Some(pick.tier());
            }
            None => return (seen, None),
        }
    }
    (seen, tier)
}

fn set(indices: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
    indices.into_iter().collect()
}

#[test]
fn the_same_node_is_preferred() {
    for lb in every_algorithm() {
        let (seen, tier) = reached(
            &lb,
            &Locality::default(),
            &layout(),
            &PickContext::new(caller()),
        );
        assert_eq!(seen, set([0, 1]), "{lb:?}");
        assert_eq!(tier, Some(LocalityTier::Node));
    }
}

#[test]
fn half_the_node_ready_still_meets_the_default_fifty_percent() {
    let mut candidates = layout();
    candidates[1].ready = false;
    for lb in every_algorithm() {
        let (seen, tier) = reached(
            &lb,
            &Locality::default(),
            &candidates,
            &PickContext::new(caller()),
        );
        assert_eq!(seen, set([0]), "{lb:?}");
        assert_eq!(tier, Some(LocalityTier::Node));
    }
}

#[test]
fn a_node_with_nothing_ready_fails_over_to_the_site() {
    let mut candidates = layout();
    candidates[0].ready = false;
    candidates[1].ready = false;
    for lb in every_algorithm() {
        let (seen, tier) = reached(
            &lb,
            &Locality::default(),
            &candidates,
            &PickContext::new(caller()),
        );
        // The site tier includes the node's endpoints, but they are not ready.
        assert_eq!(seen, set([2, 3, 4]), "{lb:?}");
        assert_eq!(tier, Some(LocalityTier::Site));
    }
}

#[test]
fn a_node_below_min_endpoints_fails_over_to_the_site() {
    let (seen, tier) = reached(
        &LoadBalancer::RoundRobin,
        &locality(LocalityTier::Node, 3, 50),
        &layout(),
        &PickContext::new(caller()),
    );
    assert_eq!(seen, set([0, 1, 2, 3, 4]));
    assert_eq!(tier, Some(LocalityTier::Site));
}

#[test]
fn a_node_below_min_healthy_percent_fails_over_to_the_site() {
    let mut candidates = layout();
    candidates[1].ready = false;
    let (seen, tier) = reached(
        &LoadBalancer::RoundRobin,
        &locality(LocalityTier::Node, 1, 75),
        &candidates,
        &PickContext::new(caller()),
    );
    // 1 of 2 on the node (50%) is below 75%; the site has 4 of 5 (80%).
    assert_eq!(seen, set([0, 2, 3, 4]));
    assert_eq!(tier, Some(LocalityTier::Site));
}

#[test]
fn a_weak_site_fails_over_to_anywhere() {
    let mut candidates = layout();
    for c in &mut candidates[..4] {
        c.ready = false;
    }
    // Node: 0 of 2. Site: 1 of 5 (20%) is below 50%. Anywhere: 6 of 10.
    let (seen, tier) = reached(
        &LoadBalancer::RoundRobin,
        &Locality::default(),
        &candidates,
        &PickContext::new(caller()),
    );
    assert_eq!(seen, set([4, 5, 6, 7, 8, 9]));
    assert_eq!(tier, Some(LocalityTier::Any));
}

#[test]
fn anywhere_is_the_last_resort_even_below_the_thresholds() {
    let mut candidates = layout();
    for c in &mut candidates[..9] {
        c.ready = false;
    }
    let (seen, tier) = reached(
        &LoadBalancer::LeastRequest,
        &locality(LocalityTier::Node, 5, 100),
        &candidates,
        &PickContext::new(caller()),
    );
    assert_eq!(seen, set([9]));
    assert_eq!(tier, Some(LocalityTier::Any));
}

#[test]
fn prefer_site_uses_the_whole_site() {
    let (seen, tier) = reached(
        &LoadBalancer::RoundRobin,
        &locality(LocalityTier::Site, 1, 50),
        &layout(),
        &PickContext::new(caller()),
    );
    assert_eq!(seen, set(0..5));
    assert_eq!(tier, Some(LocalityTier::Site));
}

#[test]
fn prefer_any_spreads_everywhere() {
    for lb in every_algorithm() {
        let (seen, tier) = reached(
            &lb,
            &locality(LocalityTier::Any, 1, 50),
            &layout(),
            &PickContext::new(caller()),
        );
        assert_eq!(seen, set(0..10), "{lb:?}");
        assert_eq!(tier, Some(LocalityTier::Any));
    }
}

#[test]
fn a_caller_of_unknown_location_uses_anywhere() {
    let (seen, _) = reached(
        &LoadBalancer::RoundRobin,
        &Locality::default(),
        &layout(),
        &PickContext::new(CallerLocation::unknown()),
    );
    assert_eq!(seen, set(0..10));
}

#[test]
fn excluded_endpoints_are_skipped_and_count_against_the_tier() {
    let excluded: Vec<EndpointId> = vec![endpoint_id(0)];
    for lb in every_algorithm() {
        let context = PickContext::new(caller()).excluding(&excluded);
        let (seen, tier) = reached(&lb, &Locality::default(), &layout(), &context);
        // 1 of 2 on the node is still 50%.
        assert_eq!(seen, set([1]), "{lb:?}");
        assert_eq!(tier, Some(LocalityTier::Node));
    }
    let both: Vec<EndpointId> = vec![endpoint_id(0), endpoint_id(1)];
    let context = PickContext::new(caller()).excluding(&both);
    let (seen, _) = reached(
        &LoadBalancer::Random,
        &Locality::default(),
        &layout(),
        &context,
    );
    assert_eq!(seen, set([2, 3, 4]));
}

#[test]
fn ejected_endpoints_are_skipped() {
    let ejected = |id: EndpointId| id == endpoint_id(1) || id == endpoint_id(7);
    for lb in every_algorithm() {
        let context = PickContext::new(caller()).with_ejections(&ejected);
        let (seen, _) = reached(&lb, &locality(LocalityTier::Any, 1, 0), &layout(), &context);
        assert_eq!(seen, set([0, 2, 3, 4, 5, 6, 8, 9]), "{lb:?}");
    }
}

#[test]
fn no_healthy_candidate_means_no_pick() {
    let all_excluded: Vec<EndpointId> = (0..10).map(endpoint_id).collect();
    let mut none_ready = layout();
    for c in &mut none_ready {
        c.ready = false;
    }
    let everyone_ejected = |_: EndpointId| true;
    for lb in every_algorithm() {
        let balancer = ServiceBalancer::new(&lb, &Locality::default());
        let plain = PickContext::new(caller()).with_hash(1);
        assert!(balancer.pick(&[], &plain).is_none(), "{lb:?}");
        assert!(balancer.pick(&none_ready, &plain).is_none(), "{lb:?}");
        let excluded = plain.excluding(&all_excluded);
        assert!(balancer.pick(&layout(), &excluded).is_none(), "{lb:?}");
        let ejected = plain.with_ejections(&everyone_ejected);
        assert!(balancer.pick(&layout(), &ejected).is_none(), "{lb:?}");
    }
}
