//! Shared fixtures of the `balance*` tests: endpoint sets, plans and counting. Included
//! by each of them with `#[path]`; built alone it holds no tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use causeway_mesh::balance::{Candidate, EndpointId, Pick};
use causeway_policies::plan::{HashKey, LoadBalancer, Locality, LocalityTier};

/// The `i`th test endpoint: 10.0.x.y:8080, distinct for every `i` below 62,500.
pub fn endpoint_id(i: usize) -> EndpointId {
    let i = u32::try_from(i).unwrap();
    let ip = Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8);
    SocketAddr::new(IpAddr::V4(ip), 8080)
}

/// `n` ready endpoints with no node or site.
pub fn endpoints(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate::new(endpoint_id(i), true))
        .collect()
}

/// No locality preference.
pub fn anywhere() -> Locality {
    Locality {
        prefer: LocalityTier::Any,
        min_endpoints: 1,
        min_healthy_percent: 0,
    }
}

/// Peak-EWMA with the default parameters.
pub fn peak_ewma() -> LoadBalancer {
    LoadBalancer::PeakEwma {
        decay: Duration::from_secs(10),
        default_rtt: Duration::from_millis(30),
    }
}

/// Consistent hashing on a header with `bounded_load`.
pub fn consistent_hash(bounded_load: f64) -> LoadBalancer {
    LoadBalancer::ConsistentHash {
        key: HashKey::Header {
            name: "x-user".to_string(),
        },
        bounded_load,
    }
}

/// Every algorithm, with default parameters.
pub fn every_algorithm() -> Vec<LoadBalancer> {
    vec![
        LoadBalancer::RoundRobin,
        LoadBalancer::Random,
        LoadBalancer::LeastRequest,
        peak_ewma(),
        consistent_hash(1.25),
    ]
}

/// Picks per candidate index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally(pub Vec<usize>);

impl Tally {
    pub fn new(n: usize) -> Self {
        Self(vec![0; n])
    }

    pub fn add(&mut self, pick: &Pick) {
        self.0[pick.index()] += 1;
    }

    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// The largest relative deviation from an even share, as a fraction of it.
    pub fn worst_deviation(&self) -> f64 {
        let fair = self.total() as f64 / self.0.len() as f64;
        self.0
            .iter()
            .map(|&c| (c as f64 - fair).abs() / fair)
            .fold(0.0, f64::max)
    }
}
