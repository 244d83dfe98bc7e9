//! Answers for the cluster domain (and reverse names of Service cluster IPs), read from
//! one snapshot of the node's store.
//!
//! Pure: a question and a [`Snapshot`] in, records out. It never forwards, never waits
//! and never writes to the store; what to do with a name it does not own is the
//! handler's business.

use std::net::IpAddr;

use causeway_edge_core::metamanager::{Protocol, ServiceView, Snapshot};
use hickory_proto::op::Query;
use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

/// What the cluster zone says about one question.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lookup {
    /// Not a cluster name: the handler forwards it.
    NotOurs,
    /// NOERROR with these records. `shuffled`: their order was drawn at random (a
    /// headless Service's addresses), so the next answer to the same question differs.
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
        shuffled: bool,
    },
    /// The name exists but has no records of the type asked (NOERROR, no answers);
    /// `soa` goes in the authority section when the name is inside the cluster domain.
    NoData { soa: Option<Record> },
    /// No such name; the SOA goes in the authority section for negative caching.
    NxDomain { soa: Record },
    /// A question the zone will not answer (zone transfers, classes other than IN).
    Refused,
}

/// The cluster domain and how to answer inside it.
#[derive(Debug, Clone)]
pub(crate) struct ClusterZone {
    /// The domain, lower case, fully qualified.
    domain: Name,
    /// Its labels, lower case, left to right.
    domain_labels: Vec<Vec<u8>>,
    ttl: u32,
    soa_mname: Name,
    soa_rname: Name,
}

/// A Service's names are never longer than this many labels below the domain:
/// `_port._proto.svc.ns.svc`.
const MAX_DEPTH: usize = 5;

impl ClusterZone {
    /// A zone for `domain` (`cluster.local`, with or without the final dot).
    pub(crate) fn new(domain: &str, ttl: u32) -> Result<Self, String> {
        let trimmed = domain.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err("the cluster domain is empty".to_string());
        }
        let mut name = Name::from_ascii(trimmed).map_err(|e| e.to_string())?;
        name.set_fqdn(true);
        let domain = name.to_lowercase();
        let domain_labels = domain.iter().map(<[u8]>::to_vec).collect();
        let soa_mname = Name::from_ascii("ns.dns")
            .and_then(|n| n.append_domain(&domain))
            .map_err(|e| e.to_string())?;
        let soa_rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&domain))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            domain,
            domain_labels,
            ttl,
            soa_mname,
            soa_rname,
        })
    }

    /// The zone's SOA; its serial follows the snapshot's version.
    pub(crate) fn soa(&self, snapshot: &Snapshot) -> Record {
        // The serial wraps as RFC 1982 serials do; only its changing matters here.
        let serial = (snapshot.version & u64::from(u32::MAX)) as u32;
        Record::from_rdata(
            self.domain.clone(),
            self.ttl,
            RData::SOA(SOA::new(
                self.soa_mname.clone(),
                self.soa_rname.clone(),
                serial,
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }

    /// The labels of `name` left of the domain, lower case; `None` when `name` is not
    /// inside the domain.
    fn below(&self, name: &Name) -> Option<Vec<Vec<u8>>> {
        let labels: Vec<&[u8]> = name.iter().collect();
        let depth = labels.len().checked_sub(self.domain_labels.len())?;
        let suffix_matches = labels[depth..]
            .iter()
            .zip(&self.domain_labels)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
        suffix_matches.then(|| {
            labels[..depth]
                .iter()
                .map(|l| l.to_ascii_lowercase())
                .collect()
        })
    }

    /// Answers `query` from `snapshot`.
    pub(crate) fn lookup(&self, snapshot: &Snapshot, query: &Query) -> Lookup {
        let name = query.name();
        if let Some(rest) = self.below(name) {
            if query.query_class() != DNSClass::IN
                || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
            {
                return Lookup::Refused;
            }
            return self.lookup_inside(snapshot, query, &rest);
        }
        self.lookup_reverse(snapshot, query)
    }

    fn nxdomain(&self, snapshot: &Snapshot) -> Lookup {
        Lookup::NxDomain {
            soa: self.soa(snapshot),
        }
    }

    fn nodata(&self, snapshot: &Snapshot) -> Lookup {
        Lookup::NoData {
            soa: Some(self.soa(snapshot)),
        }
    }

    fn lookup_inside(&self, snapshot: &Snapshot, query: &Query, rest: &[Vec<u8>]) -> Lookup {
        if rest.len() > MAX_DEPTH {
            return self.nxdomain(snapshot);
        }
        let text: Option<Vec<&str>> = rest.iter().map(|l| std::str::from_utf8(l).ok()).collect();
        let Some(text) = text else {
            return self.nxdomain(snapshot);
        };
        match text.as_slice() {
            [] => {
                if query.query_type() == RecordType::SOA {
                    Lookup::Answer {
                        answers: vec![self.soa(snapshot)],
                        additionals: Vec::new(),
                        shuffled: false,
                    }
                } else {
                    self.nodata(snapshot)
                }
            }
            ["svc"] => self.nodata(snapshot),
            [namespace, "svc"] => {
                if snapshot.services().any(|s| s.namespace == *namespace) {
                    self.nodata(snapshot)
                } else {
                    self.nxdomain(snapshot)
                }
            }
            [service, namespace, "svc"] => match snapshot.service(namespace, service) {
                Some(view) => self.service_addresses(snapshot, query, view),
                None => self.nxdomain(snapshot),
            },
            [first, service, namespace, "svc"] => {
                let Some(view) = snapshot.service(namespace, service) else {
                    return self.nxdomain(snapshot);
                };
                if let Some(protocol) = first.strip_prefix('_') {
                    // `_tcp.svc.ns.svc…`: an empty non-terminal above the SRV names.
                    let exists = parse_protocol(protocol).is_some_and(|p| {
                        view.ports
                            .iter()
                            .any(|port| port.protocol == p && port.name.is_some())
                    });
                    return if exists {
                        self.nodata(snapshot)
                    } else {
                        self.nxdomain(snapshot)
                    };
                }
                self.endpoint_addresses(snapshot, query, view, first)
            }
            [port, protocol, service, namespace, "svc"] => {
                let (Some(port), Some(protocol)) = (
                    port.strip_prefix('_'),
                    protocol.strip_prefix('_').and_then(parse_protocol),
                ) else {
                    return self.nxdomain(snapshot);
                };
                let Some(view) = snapshot.service(namespace, service) else {
                    return self.nxdomain(snapshot);
                };
                self.srv(snapshot, query, view, port, protocol)
            }
            _ => self.nxdomain(snapshot),
        }
    }

    /// The name a Service has: `svc.ns.svc.<domain>.`.
    fn service_name(&self, view: &ServiceView) -> Option<Name> {
        Name::from_labels([view.name.as_bytes(), view.namespace.as_bytes(), b"svc"])
            .and_then(|n| n.append_domain(&self.domain))
            .ok()
    }

    /// The name a headless Service's endpoint has: `<ip-with-dashes>.svc.ns.svc.<domain>.`.
    fn endpoint_name(&self, service: &Name, ip: IpAddr) -> Option<Name> {
        service.prepend_label(dashed(ip)).ok()
    }

    /// A or AAAA (or both, for ANY) records for `ips` owned by `owner`.
    fn address_records(&self, owner: &Name, qtype: RecordType, ips: &[IpAddr]) -> Vec<Record> {
        ips.iter()
            .filter_map(|ip| {
                let data = match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
                    _ => return None,
                };
                Some(Record::from_rdata(owner.clone(), self.ttl, data))
            })
            .collect()
    }

    fn addresses(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        ips: &[IpAddr],
        shuffled: bool,
    ) -> Lookup {
        let answers = self.address_records(query.name(), query.query_type(), ips);
        if answers.is_empty() {
            self.nodata(snapshot)
        } else {
            Lookup::Answer {
                shuffled: shuffled && answers.len() > 1,
                answers,
                additionals: Vec::new(),
            }
        }
    }

    fn service_addresses(&self, snapshot: &Snapshot, query: &Query, view: &ServiceView) -> Lookup {
        if view.headless {
            let mut ips = ready_ips(view);
            // Spread clients over the endpoints, as kube-dns does.
            ips.shuffle(&mut rand::rng());
            self.addresses(snapshot, query, &ips, true)
        } else {
            self.addresses(snapshot, query, &view.cluster_ips, false)
        }
    }

    fn endpoint_addresses(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        view: &ServiceView,
        label: &str,
    ) -> Lookup {
        if !view.headless {
            return self.nxdomain(snapshot);
        }
        let ips: Vec<IpAddr> = ready_ips(view)
            .into_iter()
            .filter(|ip| dashed(*ip) == label)
            .collect();
        if ips.is_empty() {
            return self.nxdomain(snapshot);
        }
        self.addresses(snapshot, query, &ips, false)
    }

    fn srv(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        view: &ServiceView,
        port_name: &str,
        protocol: Protocol,
    ) -> Lookup {
        let Some(port) = view
            .ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(port_name))
        else {
            return self.nxdomain(snapshot);
        };
        if !matches!(query.query_type(), RecordType::SRV | RecordType::ANY) {
            return self.nodata(snapshot);
        }
        let Some(service) = self.service_name(view) else {
            return self.nxdomain(snapshot);
        };
        let owner = query.name();
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        if view.headless {
            let ready: Vec<_> = view.endpoints.iter().filter(|e| e.ready).collect();
            let weight = u16::try_from(100 / ready.len().max(1)).unwrap_or(1).max(1);
            let mut seen = Vec::new();
            for endpoint in ready {
                if seen.contains(&endpoint.ip) {
                    continue;
                }
                seen.push(endpoint.ip);
                let Some(target) = self.endpoint_name(&service, endpoint.ip) else {
                    continue;
                };
                let number = endpoint.port_for(port).unwrap_or(port.port);
                answers.push(Record::from_rdata(
                    owner.clone(),
                    self.ttl,
                    RData::SRV(SRV::new(0, weight, number, target.clone())),
                ));
                additionals.extend(self.address_records(&target, RecordType::ANY, &[endpoint.ip]));
            }
        } else {
            answers.push(Record::from_rdata(
                owner.clone(),
                self.ttl,
                RData::SRV(SRV::new(0, 100, port.port, service.clone())),
            ));
            additionals = self.address_records(&service, RecordType::ANY, &view.cluster_ips);
        }
        if answers.is_empty() {
            return self.nodata(snapshot);
        }
        Lookup::Answer {
            answers,
            additionals,
            shuffled: false,
        }
    }

    /// PTR for a Service's cluster IP; anything else under `.arpa` is not ours.
    fn lookup_reverse(&self, snapshot: &Snapshot, query: &Query) -> Lookup {
        let Ok(net) = query.name().parse_arpa_name() else {
            return Lookup::NotOurs;
        };
        if net.prefix_len() != net.max_prefix_len() {
            return Lookup::NotOurs;
        }
        let Some(view) = snapshot.service_by_ip(net.addr()) else {
            return Lookup::NotOurs;
        };
        if query.query_class() != DNSClass::IN {
            return Lookup::NotOurs;
        }
        if !matches!(query.query_type(), RecordType::PTR | RecordType::ANY) {
            // We answer for this name but hold no zone for it: no SOA to give.
            return Lookup::NoData { soa: None };
        }
        match self.service_name(view) {
            Some(target) => Lookup::Answer {
                answers: vec![Record::from_rdata(
                    query.name().clone(),
                    self.ttl,
                    RData::PTR(PTR(target)),
                )],
                additionals: Vec::new(),
                shuffled: false,
            },
            None => Lookup::NotOurs,
        }
    }
}

fn parse_protocol(label: &str) -> Option<Protocol> {
    match label {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// The ready endpoints' IPs, each once, in the snapshot's order.
fn ready_ips(view: &ServiceView) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for endpoint in view.endpoints.iter().filter(|e| e.ready) {
        if !ips.contains(&endpoint.ip) {
            ips.push(endpoint.ip);
        }
    }
    ips
}

/// An IP as one DNS label: `10-1-2-3`, `fd00--1`.
fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_addresses() {
        assert_eq!(dashed("10.1.2.3".parse().unwrap()), "10-1-2-3");
        assert_eq!(dashed("fd00::1".parse().unwrap()), "fd00--1");
    }

    #[test]
    fn the_domain_is_matched_by_labels_whatever_the_case() {
        let zone = ClusterZone::new("Cluster.Local.", 5).unwrap();
        assert_eq!(zone.domain.to_ascii(), "cluster.local.");
        let name = Name::from_ascii("Web.Demo.SVC.cluster.LOCAL.").unwrap();
        assert_eq!(
            zone.below(&name).unwrap(),
            vec![b"web".to_vec(), b"demo".to_vec(), b"svc".to_vec()]
        );
        let inside = |n: &str| zone.below(&Name::from_ascii(n).unwrap()).is_some();
        assert!(inside("cluster.local."));
        assert!(!inside("notcluster.local."));
        assert!(!inside("local."));
        assert!(ClusterZone::new(" . ", 5).is_err());
    }
}
