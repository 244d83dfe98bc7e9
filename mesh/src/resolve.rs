//! Resolving what a client asked for — a name, or a service IP — to a Service port of
//! the node's snapshot, the way Kubernetes clients resolve names.
//!
//! Names inside the cluster domain are `svc.ns.svc.<domain>`; shorter names are
//! expanded with the search path a pod in `default_namespace` has
//! (`<ns>.svc.<domain>`, `svc.<domain>`, `<domain>`), so `echo`, `echo.demo` and
//! `echo.demo.svc` all work. Anything that is not a Service of the mesh resolves to
//! nothing: the access listeners carry mesh traffic only.
//!
//! Pure lookups over a snapshot: no I/O, no DNS queries.

use std::net::IpAddr;
use std::sync::Arc;

use causeway_edge_core::metamanager::{Protocol, ServicePort, ServiceView, Snapshot};

/// A Service port a connection is for.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    /// The Service.
    pub service: Arc<ServiceView>,
    /// The port called.
    pub port: ServicePort,
}

impl ServiceTarget {
    /// `namespace/name:port`, for logs, metrics and tunnel headers.
    pub fn label(&self) -> String {
        format!(
            "{}/{}:{}",
            self.service.namespace, self.service.name, self.port.port
        )
    }
}

/// How names are resolved on this node.
#[derive(Debug, Clone)]
pub struct NameRules {
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The namespace of the search path (`default`).
    pub default_namespace: String,
}

impl Default for NameRules {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            default_namespace: "default".into(),
        }
    }
}

impl NameRules {
    /// The Service a host name names, trying the search path.
    pub fn service<'s>(&self, snapshot: &'s Snapshot, host: &str) -> Option<&'s Arc<ServiceView>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let domain = self.cluster_domain.to_ascii_lowercase();
        // Fully qualified: only the cluster domain itself.
        if let Some(service) = self.qualified(snapshot, &host, &domain) {
            return Some(service);
        }
        let search = [
            format!("{}.svc.{domain}", self.default_namespace),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        search
            .iter()
            .find_map(|suffix| self.qualified(snapshot, &format!("{host}.{suffix}"), &domain))
    }

    /// `svc.ns.svc.<domain>` → the Service.
    fn qualified<'s>(
        &self,
        snapshot: &'s Snapshot,
        name: &str,
        domain: &str,
    ) -> Option<&'s Arc<ServiceView>> {
        let rest = name.strip_suffix(domain)?.strip_suffix('.')?;
        let rest = rest.strip_suffix(".svc")?;
        let (service, namespace) = rest.split_once('.')?;
        if namespace.contains('.') {
            return None;
        }
        snapshot.service(namespace, service)
    }

    /// The Service port `host:port` names: a service IP, or a name.
    pub fn target(&self, snapshot: &Snapshot, host: &str, port: u16) -> Option<ServiceTarget> {
        self.resolve(snapshot, host, port).ok()
    }

    /// Like [`NameRules::target`], telling "no such Service" from "no such port".
    pub fn resolve(
        &self,
        snapshot: &Snapshot,
        host: &str,
        port: u16,
    ) -> Result<ServiceTarget, Unresolved> {
        let service = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => snapshot.service_by_ip(ip),
            Err(_) => self.service(snapshot, host),
        }
        .ok_or(Unresolved::NotAService)?;
        let Some(found) = service.port(port, Protocol::Tcp) else {
            let ports: Vec<String> = service
                .ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port.to_string())
                .collect();
            return Err(Unresolved::NoSuchPort {
                service: format!("{}/{}", service.namespace, service.name),
                ports: if ports.is_empty() {
                    "none".into()
                } else {
                    ports.join(", ")
                },
            });
        };
        Ok(ServiceTarget {
            service: Arc::clone(service),
            port: found.clone(),
        })
    }
}

/// Why a host and port name no Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No Service of the mesh has that name or ClusterIP.
    NotAService,
    /// The Service exists without that port.
    NoSuchPort {
        /// `namespace/name`.
        service: String,
        /// Its TCP ports.
        ports: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snapshot() -> Snapshot {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80, name: http}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 8080}]}\n";
        let decoded = causeway_api::manifest::decode(&causeway_yaml::Source::new("t.yaml", text));
        let objects: BTreeMap<_, _> = decoded
            .objects
            .into_iter()
            .map(|(o, _)| (o.key().unwrap(), Arc::new(o)))
            .collect();
        Snapshot::build(1, objects)
    }

    #[test]
    fn names_resolve_like_a_pod_in_the_default_namespace() {
        let s = snapshot();
        let rules = NameRules::default();
        let name = |host: &str| {
            rules
                .service(&s, host)
                .map(|v| format!("{}/{}", v.namespace, v.name))
        };
        assert_eq!(
            name("echo.demo.svc.cluster.local"),
            Some("demo/echo".into())
        );
        assert_eq!(
            name("ECHO.demo.svc.cluster.local."),
            Some("demo/echo".into())
        );
        assert_eq!(name("echo.demo.svc"), Some("demo/echo".into()));
        assert_eq!(name("echo.demo"), Some("demo/echo".into()));
        assert_eq!(name("web"), Some("default/web".into()));
        assert_eq!(name("echo"), None, "echo lives in demo, not default");
        assert_eq!(name("example.com"), None);
        assert_eq!(name("echo.demo.demo.svc.cluster.local"), None);
    }

    #[test]
    fn targets_need_a_service_port() {
        let s = snapshot();
        let rules = NameRules::default();
        assert_eq!(
            rules.target(&s, "echo.demo", 80).unwrap().label(),
            "demo/echo:80"
        );
        assert_eq!(
            rules.target(&s, "10.96.0.10", 80).unwrap().label(),
            "demo/echo:80"
        );
        assert!(rules.target(&s, "echo.demo", 81).is_none());
        assert!(rules.target(&s, "10.0.0.1", 80).is_none());
    }
}
