//! The consistent-hash key of an HTTP request — a header, a cookie (generated when the
//! plan says so and the request has none) or a query parameter — as the plan names it.
//! The source IP is hashed by `Outbound::choose` itself, for TCP too.
//!
//! Pure: reads request parts, returns a key.

use causeway_policies::ServicePolicy;
use causeway_policies::plan::{HashKey, LoadBalancer};

use crate::balance::stable_hash;

/// The consistent-hash key of a request, when the plan hashes on one of its
/// attributes; and the cookie to set when the plan generates one and the request had
/// none.
pub fn hash_key(
    plan: &ServicePolicy,
    parts: &http::request::Parts,
) -> (Option<u64>, Option<http::HeaderValue>) {
    let LoadBalancer::ConsistentHash { key, .. } = &plan.load_balancer else {
        return (None, None);
    };
    match key {
        HashKey::Header { name } => (
            parts
                .headers
                .get(name.as_str())
                .map(|v| stable_hash(v.as_bytes())),
            None,
        ),
        HashKey::QueryParameter { name } => {
            let value = parts.uri.query().and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == name).then_some(v)
                })
            });
            (value.map(|v| stable_hash(v.as_bytes())), None)
        }
        HashKey::Cookie {
            name,
            generate,
            ttl,
            path,
        } => {
            let found = parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == name).then(|| v.to_string())
                });
            match found {
                Some(value) => (Some(stable_hash(value.as_bytes())), None),
                None if *generate => {
                    let value = format!("{:016x}", rand::random::<u64>());
                    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly");
                    if let Some(ttl) = ttl {
                        cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
                    }
                    (
                        Some(stable_hash(value.as_bytes())),
                        http::HeaderValue::from_str(&cookie).ok(),
                    )
                }
                None => (None, None),
            }
        }
        HashKey::SourceIp => (None, None),
    }
}
