//! Property tests: for arbitrary candidate sets (duplicates, unknown nodes and sites,
//! nothing ready), arbitrary plans (including parameters the validator would refuse:
//! `min_endpoints` 0, percentages over 100, bounded load below 1, NaN or infinite, zero
//! decay) and arbitrary exclusions, ejections and keys, over several rounds in which
//! the set changes while picks are outstanding:
//!
//! - a pick never panics;
//! - it returns only a ready, non-excluded, non-ejected candidate, at the index it names;
//! - it comes from exactly the tier an independent model of the locality rules
//!   chooses, and returns `None` exactly when that model finds nothing healthy;
//! - once every pick is dropped, no endpoint has anything in flight.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use causeway_mesh::balance::{
    CallerLocation, Candidate, EndpointId, Pick, PickContext, ServiceBalancer,
};
use causeway_policies::plan::{HashKey, LoadBalancer, Locality, LocalityTier};
use proptest::prelude::*;

const NODES: [&str; 3] = ["n0", "n1", "n2"];
const SITES: [&str; 2] = ["s0", "s1"];

fn id(host: u8, port_offset: u16) -> EndpointId {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
        8080 + port_offset,
    )
}

#[derive(Debug, Clone)]
struct Round {
    candidates: Vec<Candidate>,
    excluded: Vec<EndpointId>,
    ejected: Vec<EndpointId>,
    hash: Option<u64>,
    /// Per pick: whether to keep it past the round, and the outcome to record
    /// (0 nothing, 1 success, 2 failure).
    picks: Vec<(bool, u8)>,
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        0u8..8,
        0u16..2,
        any::<bool>(),
        prop::option::of(0usize..NODES.len()),
        prop::option::of(0usize..SITES.len()),
    )
        .prop_map(|(host, port, ready, node, site)| {
            let mut c = Candidate::new(id(host, port), ready);
            if let Some(n) = node {
                c = c.on_node(NODES[n]);
            }
            if let Some(s) = site {
                c = c.in_site(SITES[s]);
            }
            c
        })
}

fn some_ids() -> impl Strategy<Value = Vec<EndpointId>> {
    prop::collection::vec((0u8..8, 0u16..2).prop_map(|(h, p)| id(h, p)), 0..4)
}

fn round() -> impl Strategy<Value = Round> {
    (
        prop::collection::vec(candidate(), 0..14),
        some_ids(),
        some_ids(),
        prop::option::of(any::<u64>()),
        prop::collection::vec((any::<bool>(), 0u8..3), 1..8),
    )
        .prop_map(|(candidates, excluded, ejected, hash, picks)| Round {
            candidates,
            excluded,
            ejected,
            hash,
            picks,
        })
}

fn load_balancer() -> impl Strategy<Value = LoadBalancer> {
    let factor = prop_oneof![
        Just(0.0),
        Just(0.5),
        Just(1.0),
        Just(1.25),
        Just(f64::NAN),
        Just(f64::INFINITY),
        1.0f64..8.0,
    ];
    prop_oneof![
        Just(LoadBalancer::RoundRobin),
        Just(LoadBalancer::Random),
        Just(LoadBalancer::LeastRequest),
        (0u64..50, 0u64..50).prop_map(|(decay, rtt)| LoadBalancer::PeakEwma {
            decay: Duration::from_millis(decay),
            default_rtt: Duration::from_millis(rtt),
        }),
        factor.prop_map(|bounded_load| LoadBalancer::ConsistentHash {
            key: HashKey::SourceIp,
            bounded_load,
        }),
    ]
}

fn locality() -> impl Strategy<Value = Locality> {
    (
        prop_oneof![
            Just(LocalityTier::Node),
            Just(LocalityTier::Site),
            Just(LocalityTier::Any)
        ],
        0u32..5,
        any::<u8>(),
    )
        .prop_map(|(prefer, min_endpoints, min_healthy_percent)| Locality {
            prefer,
            min_endpoints,
            min_healthy_percent,
        })
}

/// The model: 0 same node, 1 same site, 2 elsewhere.
fn own_tier(c: &Candidate, node: Option<&str>, site: Option<&str>) -> usize {
    if node.is_some() && c.node.as_deref() == node {
        0
    } else if site.is_some() && c.site.as_deref() == site {
        1
    } else {
        2
    }
}

fn tier_rank(tier: LocalityTier) -> usize {
    match tier {
        LocalityTier::Node => 0,
        LocalityTier::Site => 1,
        LocalityTier::Any => 2,
    }
}

/// The model of the locality rules, written separately from the implementation.
fn expected_tier(
    candidates: &[Candidate],
    healthy: &dyn Fn(&Candidate) -> bool,
    node: Option<&str>,
    site: Option<&str>,
    locality: &Locality,
) -> Option<usize> {
    for tier in tier_rank(locality.prefer)..=2 {
        let members: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| own_tier(c, node, site) <= tier)
            .collect();
        let well = members.iter().filter(|c| healthy(c)).count();
        if tier == 2 {
            return (well > 0).then_some(2);
        }
        let enough = well >= locality.min_endpoints.max(1) as usize;
        let share = well * 100 >= usize::from(locality.min_healthy_percent) * members.len();
        if enough && share {
            return Some(tier);
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn picks_are_always_healthy_and_from_the_right_tier(
        lb in load_balancer(),
        locality in locality(),
        caller_node in prop::option::of(0usize..NODES.len()),
        caller_site in prop::option::of(0usize..SITES.len()),
        rounds in prop::collection::vec(round(), 1..5),
    ) {
        let balancer = ServiceBalancer::new(&lb, &locality);
        let node = caller_node.map(|n| NODES[n]);
        let site = caller_site.map(|s| SITES[s]);
        let caller = CallerLocation { node, site };
        let mut kept: Vec<Pick> = Vec::new();
        for round in &rounds {
            let ejected = |id: EndpointId| round.ejected.contains(&id);
            let healthy = |c: &Candidate| {
                c.ready && !round.excluded.contains(&c.id) && !round.ejected.contains(&c.id)
            };
            let expected = expected_tier(&round.candidates, &healthy, node, site, &locality);
            let mut context = PickContext::new(caller)
                .excluding(&round.excluded)
                .with_ejections(&ejected);
            if let Some(key) = round.hash {
                context = context.with_hash(key);
            }
            for &(keep, outcome) in &round.picks {
                let pick = balancer.pick(&round.candidates, &context);
                match (pick, expected) {
                    (None, None) => {}
                    (None, Some(tier)) => {
                        prop_assert!(false, "no pick, but tier {tier} has a healthy endpoint");
                    }
                    (Some(pick), None) => {
                        prop_assert!(false, "picked {} with nothing healthy", pick.id());
                    }
                    (Some(mut pick), Some(tier)) => {
                        let chosen = &round.candidates[pick.index()];
                        prop_assert_eq!(chosen.id, pick.id());
                        prop_assert!(healthy(chosen), "unhealthy {:?}", chosen);
                        prop_assert_eq!(tier_rank(pick.tier()), tier);
                        prop_assert!(own_tier(chosen, node, site) <= tier);
                        match outcome {
                            1 => pick.record_success(Duration::from_micros(700)),
                            2 => pick.record_failure(),
                            _ => {}
                        }
                        if keep {
                            kept.push(pick);
                        }
                    }
                }
            }
        }
        drop(kept);
        if let Some(last) = rounds.last() {
            for c in &last.candidates {
                if let Some(stats) = balancer.endpoint_stats(c.id) {
                    prop_assert_eq!(stats.in_flight, 0, "{} still has requests in flight", c.id);
                }
            }
        }
    }
}
