//! Locality tiers and failover: which of the nested sets "same node ⊂ same site ⊂ any"
//! a pick draws from.
//!
//! Pure functions over candidates and counts; no state, no allocation. The tier of a
//! candidate is the nearest one it belongs to: same node (node names equal), else same
//! site (site names equal), else any. Tier `t` contains every candidate whose own tier is
//! `t` or nearer, so a same-node endpoint counts in the site tier even if its site field
//! were missing.

use causeway_policies::plan::{Locality, LocalityTier};

use super::candidate::{CallerLocation, Candidate};

/// The tiers from nearest to widest.
const TIERS: [LocalityTier; 3] = [LocalityTier::Node, LocalityTier::Site, LocalityTier::Any];

/// The position of `tier` in [`TIERS`]: 0 nearest.
pub(crate) fn rank(tier: LocalityTier) -> usize {
    match tier {
        LocalityTier::Node => 0,
        LocalityTier::Site => 1,
        LocalityTier::Any => 2,
    }
}

/// The nearest tier `candidate` belongs to, seen from `caller`.
pub(crate) fn tier_of(candidate: &Candidate, caller: &CallerLocation<'_>) -> LocalityTier {
    let same = |mine: Option<&str>, theirs: Option<&str>| matches!((mine, theirs), (Some(a), Some(b)) if a == b);
    if same(caller.node, candidate.node.as_deref()) {
        LocalityTier::Node
    } else if same(caller.site, candidate.site.as_deref()) {
        LocalityTier::Site
    } else {
        LocalityTier::Any
    }
}

/// Whether a candidate whose own tier is `own` is part of tier `chosen`.
pub(crate) fn within(own: LocalityTier, chosen: LocalityTier) -> bool {
    rank(own) <= rank(chosen)
}

/// Counts of candidates by their own (nearest) tier, gathered in one pass of a pick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TierCensus {
    members: [usize; 3],
    healthy: [usize; 3],
    healthy_in_flight: [u64; 3],
}

/// What a tier holds, counting every nearer tier with it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TierTotals {
    /// Candidates in the tier, healthy or not.
    pub(crate) members: usize,
    /// Healthy candidates in the tier.
    pub(crate) healthy: usize,
    /// Requests in flight to the healthy candidates of the tier.
    pub(crate) healthy_in_flight: u64,
}

impl TierCensus {
    /// Counts one candidate of tier `own`; `in_flight` is added only for healthy ones.
    pub(crate) fn add(&mut self, own: LocalityTier, healthy: bool, in_flight: u64) {
        let at = rank(own);
        if let Some(members) = self.members.get_mut(at) {
            *members += 1;
        }
        if healthy {
            if let Some(count) = self.healthy.get_mut(at) {
                *count += 1;
            }
            if let Some(sum) = self.healthy_in_flight.get_mut(at) {
                *sum = sum.saturating_add(in_flight);
            }
        }
    }

    /// The totals of tier `tier`, nearer tiers included.
    pub(crate) fn totals(&self, tier: LocalityTier) -> TierTotals {
        let upto = rank(tier);
        let mut totals = TierTotals::default();
        for at in 0..=upto {
            totals.members += self.members.get(at).copied().unwrap_or(0);
            totals.healthy += self.healthy.get(at).copied().unwrap_or(0);
            totals.healthy_in_flight = totals
                .healthy_in_flight
                .saturating_add(self.healthy_in_flight.get(at).copied().unwrap_or(0));
        }
        totals
    }

    /// The tier a pick draws from: the preferred tier if it has at least
    /// `min_endpoints` healthy endpoints (at least one, whatever the plan says) and at
    /// least `min_healthy_percent` of its endpoints healthy; else the next wider tier
    /// that does; else "any" if it has a healthy endpoint at all; else none.
    pub(crate) fn choose(&self, locality: &Locality) -> Option<LocalityTier> {
        let min_endpoints = usize::try_from(locality.min_endpoints.max(1)).unwrap_or(usize::MAX);
        let min_percent = u128::from(locality.min_healthy_percent);
        let start = rank(locality.prefer);
        for tier in TIERS.iter().skip(start).copied() {
            let totals = self.totals(tier);
            if tier == LocalityTier::Any {
                return (totals.healthy > 0).then_some(tier);
            }
            let enough = totals.healthy >= min_endpoints;
            let healthy_enough =
                (totals.healthy as u128) * 100 >= min_percent * (totals.members as u128);
            if enough && healthy_enough {
                return Some(tier);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locality(prefer: LocalityTier, min_endpoints: u32, min_healthy_percent: u8) -> Locality {
        Locality {
            prefer,
            min_endpoints,
            min_healthy_percent,
        }
    }

    fn census(node: (usize, usize), site: (usize, usize), any: (usize, usize)) -> TierCensus {
        let mut census = TierCensus::default();
        for (tier, (members, healthy)) in [
            (LocalityTier::Node, node),
            (LocalityTier::Site, site),
            (LocalityTier::Any, any),
        ] {
            for i in 0..members {
                census.add(tier, i < healthy, 1);
            }
        }
        census
    }

    #[test]
    fn tiers_nest() {
        let caller = CallerLocation::new("n1", "s1");
        let id = "10.0.0.1:80".parse().unwrap();
        let local = Candidate::new(id, true).on_node("n1");
        let same_site = Candidate::new(id, true).on_node("n2").in_site("s1");
        let far = Candidate::new(id, true).on_node("n3").in_site("s2");
        let unknown = Candidate::new(id, true);
        assert_eq!(tier_of(&local, &caller), LocalityTier::Node);
        assert_eq!(tier_of(&same_site, &caller), LocalityTier::Site);
        assert_eq!(tier_of(&far, &caller), LocalityTier::Any);
        assert_eq!(tier_of(&unknown, &caller), LocalityTier::Any);
        assert_eq!(
            tier_of(&local, &CallerLocation::unknown()),
            LocalityTier::Any
        );
        assert!(within(LocalityTier::Node, LocalityTier::Site));
        assert!(!within(LocalityTier::Any, LocalityTier::Site));
    }

    #[test]
    fn the_preferred_tier_wins_when_healthy_enough() {
        let c = census((2, 2), (3, 3), (5, 5));
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 1, 50)),
            Some(LocalityTier::Node)
        );
        assert_eq!(
            c.choose(&locality(LocalityTier::Site, 1, 50)),
            Some(LocalityTier::Site)
        );
        assert_eq!(
            c.choose(&locality(LocalityTier::Any, 1, 50)),
            Some(LocalityTier::Any)
        );
        assert_eq!(c.totals(LocalityTier::Site).members, 5);
        assert_eq!(c.totals(LocalityTier::Any).healthy_in_flight, 10);
    }

    #[test]
    fn thresholds_fail_over_outwards() {
        // Node: 1 of 2 healthy (50%); site with it: 3 of 5 (60%); any: 8 of 10.
        let c = census((2, 1), (3, 2), (5, 5));
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 1, 50)),
            Some(LocalityTier::Node)
        );
        // Too few healthy on the node…
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 2, 50)),
            Some(LocalityTier::Site)
        );
        // …too small a healthy share on the node…
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 1, 51)),
            Some(LocalityTier::Site)
        );
        // …and on the site too, so "any" takes it.
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 1, 61)),
            Some(LocalityTier::Any)
        );
        assert_eq!(
            c.choose(&locality(LocalityTier::Site, 4, 0)),
            Some(LocalityTier::Any)
        );
        // "Any" is the last resort even below the thresholds.
        let weak = census((0, 0), (0, 0), (10, 1));
        assert_eq!(
            weak.choose(&locality(LocalityTier::Node, 3, 90)),
            Some(LocalityTier::Any)
        );
    }

    #[test]
    fn nothing_healthy_chooses_nothing() {
        assert_eq!(TierCensus::default().choose(&Locality::default()), None);
        let c = census((1, 0), (1, 0), (1, 0));
        assert_eq!(c.choose(&locality(LocalityTier::Node, 1, 0)), None);
    }

    #[test]
    fn zero_min_endpoints_still_needs_one_healthy() {
        let c = census((1, 0), (0, 0), (1, 1));
        assert_eq!(
            c.choose(&locality(LocalityTier::Node, 0, 0)),
            Some(LocalityTier::Any)
        );
    }
}
