//! Outlier ejection: endpoints that keep failing are left out of picks for a while.
//!
//! One [`OutlierDetector`] per Service port, driven by the plan's `outlierDetection`:
//! `consecutive_errors` failures in a row (connect failures at L4) eject an endpoint for
//! `base_ejection_time × n`, where `n` counts its ejections since it last succeeded, and
//! never more than `max_ejection_percent` of the port's endpoints are out at once. An
//! ejection ends when its time is up (checked when a pick reads the view, so the plan's
//! `interval` needs no timer of its own); the endpoint is then picked again, and
//! `consecutive_errors` new failures in a row eject it again, for longer. A percentage
//! above zero always allows at least one endpoint out, as in Envoy.
//!
//! Picks read an immutable [`Ejections`] view, so the hot path takes no lock; outcomes
//! take a short one.
//!
//! It records outcomes and answers who is ejected; it dials nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use causeway_policies::plan::OutlierDetection;

use crate::balance::{EjectionView, EndpointId};

/// The longest an endpoint is ejected, however often it failed: five minutes, as
/// Envoy's default maximum ejection time.
const MAX_EJECTION: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    consecutive_failures: u32,
    ejections: u32,
}

/// Tracks outcomes and ejections for one Service port under one plan.
#[derive(Debug)]
pub struct OutlierDetector {
    plan: OutlierDetection,
    health: Mutex<HashMap<SocketAddr, Health>>,
    ejected: ArcSwap<HashMap<SocketAddr, Instant>>,
}

/// Who is ejected, as a pick reads it.
#[derive(Debug, Clone)]
pub struct Ejections {
    until: Arc<HashMap<SocketAddr, Instant>>,
    now: Instant,
}

impl EjectionView for Ejections {
    fn is_ejected(&self, id: EndpointId) -> bool {
        self.until.get(&id).is_some_and(|until| *until > self.now)
    }
}

impl Ejections {
    /// How many endpoints are ejected now.
    pub fn len(&self) -> usize {
        self.until.values().filter(|u| **u > self.now).count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OutlierDetector {
    /// A detector for `plan`.
    pub fn new(plan: &OutlierDetection) -> Self {
        Self {
            plan: plan.clone(),
            health: Mutex::new(HashMap::new()),
            ejected: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The plan it runs.
    pub fn plan(&self) -> &OutlierDetection {
        &self.plan
    }

    /// Who is ejected now.
    pub fn view(&self) -> Ejections {
        Ejections {
            until: self.ejected.load_full(),
            now: Instant::now(),
        }
    }

    /// Forgets endpoints that are no longer among `current`.
    pub fn retain(&self, current: &[SocketAddr]) {
        if let Ok(mut health) = self.health.lock() {
            health.retain(|id, _| current.contains(id));
        }
        let now = Instant::now();
        let ejected = self.ejected.load();
        if ejected.keys().any(|id| !current.contains(id)) {
            let kept: HashMap<SocketAddr, Instant> = ejected
                .iter()
                .filter(|(id, until)| current.contains(id) && **until > now)
                .map(|(id, until)| (*id, *until))
                .collect();
            self.ejected.store(Arc::new(kept));
        }
    }

    /// Records a success of `endpoint`: its failures in a row start again from zero.
    pub fn success(&self, endpoint: SocketAddr) {
        let Ok(mut health) = self.health.lock() else {
            return;
        };
        if let Some(h) = health.get_mut(&endpoint) {
            *h = Health::default();
        }
    }

    /// Records a failure of `endpoint`, one of `endpoints` the port has; returns whether
    /// it was ejected by it.
    pub fn failure(&self, endpoint: SocketAddr, endpoints: usize) -> bool {
        if self.plan.consecutive_errors == 0 {
            return false;
        }
        let Ok(mut health) = self.health.lock() else {
            return false;
        };
        let h = health.entry(endpoint).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        if h.consecutive_failures < self.plan.consecutive_errors {
            return false;
        }
        let now = Instant::now();
        let current = self.ejected.load();
        let out_now = current
            .iter()
            .filter(|(id, until)| **until > now && **id != endpoint)
            .count();
        // Envoy's rule: a percentage above zero always allows one ejection, or a small
        // Service (most at the edge) could never eject its one bad endpoint.
        let percent = usize::from(self.plan.max_ejection_percent);
        let allowed = if percent == 0 {
            0
        } else {
            (endpoints * percent / 100).max(1)
        };
        if out_now + 1 > allowed {
            return false;
        }
        h.ejections = h.ejections.saturating_add(1);
        h.consecutive_failures = 0;
        let time = self
            .plan
            .base_ejection_time
            .saturating_mul(h.ejections)
            .min(MAX_EJECTION);
        let mut next: HashMap<SocketAddr, Instant> = current
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(id, until)| (*id, *until))
            .collect();
        next.insert(endpoint, now + time);
        self.ejected.store(Arc::new(next));
        tracing::info!(%endpoint, ejection = ?time, ejections = h.ejections, "ejected an endpoint that keeps failing");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plan(consecutive: u32, percent: u8, base: Duration) -> OutlierDetection {
        OutlierDetection {
            consecutive_errors: consecutive,
            interval: Duration::from_secs(1),
            base_ejection_time: base,
            max_ejection_percent: percent,
        }
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 80))
    }

    #[test]
    fn failures_in_a_row_eject_and_a_success_resets_the_count() {
        let detector = OutlierDetector::new(&plan(3, 100, Duration::from_secs(30)));
        assert!(!detector.failure(addr(1), 4));
        assert!(!detector.failure(addr(1), 4));
        detector.success(addr(1));
        assert!(!detector.failure(addr(1), 4));
        assert!(!detector.failure(addr(1), 4));
        assert!(detector.failure(addr(1), 4), "third in a row");
        let view = detector.view();
        assert!(view.is_ejected(addr(1)));
        assert!(!view.is_ejected(addr(2)));
        assert_eq!(view.len(), 1);
    }

    #[test]
    fn ejections_end_and_grow_with_each_repeat() {
        let detector = OutlierDetector::new(&plan(1, 100, Duration::from_millis(30)));
        assert!(detector.failure(addr(1), 2));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            !detector.view().is_ejected(addr(1)),
            "the first ejection is over"
        );
        assert!(detector.failure(addr(1), 2));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            detector.view().is_ejected(addr(1)),
            "the second lasts twice as long"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(!detector.view().is_ejected(addr(1)));
    }

    #[test]
    fn the_default_plan_ejects_the_bad_endpoint_of_a_small_service() {
        let detector = OutlierDetector::new(&OutlierDetection::default());
        let dead = addr(1);
        let ejected = (0..50).any(|_| detector.failure(dead, 5));
        assert!(ejected, "one of five may always be ejected");
        detector.retain(&[addr(2)]);
        assert!(
            !detector.view().is_ejected(dead),
            "forgotten once it left the Service"
        );
    }

    #[test]
    fn never_more_than_the_allowed_share_is_out() {
        let detector = OutlierDetector::new(&plan(1, 50, Duration::from_secs(30)));
        assert!(detector.failure(addr(1), 4));
        assert!(detector.failure(addr(2), 4));
        assert!(
            !detector.failure(addr(3), 4),
            "half of four are out already"
        );
        assert_eq!(detector.view().len(), 2);
        let off = OutlierDetector::new(&plan(0, 100, Duration::from_secs(30)));
        assert!(
            !off.failure(addr(1), 1),
            "0 consecutive errors turns it off"
        );
    }
}
