//! The quick start's topology file (`kind: Topology`): sites and their nodes, the sample
//! apps and where they run, the policies to apply, and the port plan — decoded with
//! located errors and checked as a whole before anything starts.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use causeway_yaml::Source;
use serde::Deserialize;

/// The topology `causeway up` runs when given no file.
pub const QUICKSTART: &str = include_str!("../../examples/quickstart.yaml");

/// Ports of node number `i`: `basePort + offset + i`.
pub const HTTP_PROXY_OFFSET: u16 = 0;
/// SOCKS5 listeners.
pub const SOCKS_OFFSET: u16 = 100;
/// Admin endpoints.
pub const ADMIN_OFFSET: u16 = 200;
/// Tunnel endpoints (UDP).
pub const TUNNEL_OFFSET: u16 = 300;
/// DNS servers (UDP and TCP).
pub const DNS_OFFSET: u16 = 400;
/// Nodes one topology may have: the port plan gives each role 100 ports.
pub const MAX_NODES: usize = 100;

/// Why a topology was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TopologyError {
    /// The file (or `<built-in quickstart>`).
    pub file: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

/// A topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: serde_json::Value,
    spec: Topology,
}

/// What to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Topology {
    /// First port of the plan; 0 picks free ports (tests).
    #[serde(default)]
    pub base_port: u16,
    /// The cluster domain.
    #[serde(default = "default_domain")]
    pub cluster_domain: String,
    /// The sites, in order.
    pub sites: Vec<Site>,
    /// The sample apps.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Policy objects (TrafficPolicy, DestinationRule), applied to every node.
    #[serde(default)]
    pub policies: Vec<serde_json::Value>,
}

fn default_domain() -> String {
    "cluster.local".into()
}

/// A site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Its name (the `causeway.dev/site` label of its nodes).
    pub name: String,
    /// Whether its nodes relay for others.
    #[serde(default)]
    pub relay: bool,
    /// Its nodes.
    pub nodes: Vec<String>,
}

/// A sample app: one echo pod on each of its nodes, behind one Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct App {
    /// The Service's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The Service port.
    pub port: u16,
    /// The pods' port.
    #[serde(default = "default_target_port")]
    pub target_port: u16,
    /// The nodes that run a pod of it.
    pub nodes: Vec<String>,
}

/// A DNS label as Kubernetes names Services and namespaces (RFC 1123).
fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

fn default_target_port() -> u16 {
    8080
}

/// A node of the topology with its place in the port plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    /// Its name.
    pub name: String,
    /// Its site.
    pub site: String,
    /// Its number, from 0 in file order.
    pub index: usize,
    /// Whether it relays.
    pub relay: bool,
}

impl Topology {
    /// The built-in quick start.
    pub fn quickstart() -> Result<Self, TopologyError> {
        Self::parse(&Source::new("<built-in quickstart>", QUICKSTART))
    }

    /// Reads a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError {
            file: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&Source::new(path.display().to_string(), text))
    }

    /// Decodes and checks a topology.
    pub fn parse(source: &Source) -> Result<Self, TopologyError> {
        let fail = |message: String| TopologyError {
            file: source.name().to_string(),
            message,
        };
        let file: TopologyFile =
            crate::located::decode_one(source, "a `kind: Topology` document").map_err(fail)?;
        crate::located::check_kind(&file.api_version, &file.kind, "Topology").map_err(fail)?;
        let _ = file.metadata;
        file.spec.check().map_err(fail)?;
        Ok(file.spec)
    }

    fn check(&self) -> Result<(), String> {
        let nodes = self.nodes();
        if nodes.is_empty() {
            return Err("spec.sites: no nodes; add a site with at least one node".into());
        }
        if nodes.len() > MAX_NODES {
            return Err(format!(
                "spec.sites: {} nodes; the port plan has room for {MAX_NODES}",
                nodes.len()
            ));
        }
        if self.base_port != 0
            && u32::from(self.base_port) + u32::from(DNS_OFFSET) + nodes.len() as u32 > 65_535
        {
            return Err(format!(
                "spec.basePort: {} leaves no room for {} nodes' ports (up to basePort + {})",
                self.base_port,
                nodes.len(),
                DNS_OFFSET as usize + nodes.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for node in &nodes {
            causeway_tunnels::NodeName::new(&node.name)
                .map_err(|e| format!("spec.sites: node `{}`: {e}", node.name))?;
            if !seen.insert(node.name.as_str()) {
                return Err(format!("spec.sites: node `{}` is listed twice", node.name));
            }
        }
        let mut sites = BTreeSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            if !sites.insert(site.name.as_str()) {
                return Err(format!(
                    "spec.sites[{i}]: site `{}` is listed twice",
                    site.name
                ));
            }
        }
        let mut apps = BTreeSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if !apps.insert((app.namespace.as_str(), app.name.as_str())) {
                return Err(format!(
                    "spec.apps[{i}]: app {}/{} is listed twice",
                    app.namespace, app.name
                ));
            }
            for (what, value) in [("name", &app.name), ("namespace", &app.namespace)] {
                if !is_dns_label(value) {
                    return Err(format!(
                        "spec.apps[{i}].{what}: `{value}` is not a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
                    ));
                }
            }
            for node in &app.nodes {
                if !seen.contains(node.as_str()) {
                    return Err(format!(
                        "spec.apps[{i}].nodes: `{node}` is not a node of any site"
                    ));
                }
            }
            if app.port == 0 || app.target_port == 0 {
                return Err(format!("spec.apps[{i}]: ports must be 1-65535"));
            }
        }
        if self.apps.len() > 200 {
            return Err("spec.apps: more than 200 apps".into());
        }
        Ok(())
    }

    /// Every node, in file order.
    pub fn nodes(&self) -> Vec<PlannedNode> {
        self.sites
            .iter()
            .flat_map(|site| site.nodes.iter().map(move |node| (site, node.clone())))
            .enumerate()
            .map(|(index, (site, name))| PlannedNode {
                name,
                site: site.name.clone(),
                index,
                relay: site.relay,
            })
            .collect()
    }

    /// The IP of the pod of app number `app` on node number `node` in pod network
    /// `network`: `127.<network>.<app+1>.<node+1>` (all of 127/8 is loopback on Linux,
    /// so every pod gets its own address).
    pub fn pod_ip(network: u8, app: usize, node: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, network, (app + 1) as u8, (node + 1) as u8)
    }

    /// The pod network of a cluster: `1` with a fixed port plan; with free ports (tests,
    /// several clusters at once), one that no other cluster of this process uses and
    /// that differs between processes.
    pub fn pod_network(&self) -> u8 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if self.base_port != 0 {
            return 1;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let spread = std::process::id().wrapping_mul(7).wrapping_add(n) % 240;
        2 + spread as u8
    }

    /// The ClusterIP of app number `app`.
    pub fn cluster_ip(app: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, 0, (app + 10) as u8)
    }

    /// The address of `offset`'s listener of node number `index`, or port 0 when the
    /// plan picks free ports.
    pub fn port(&self, offset: u16, index: usize) -> SocketAddr {
        let port = if self.base_port == 0 {
            0
        } else {
            self.base_port + offset + index as u16
        };
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quickstart_is_valid() {
        let topology = Topology::quickstart().unwrap();
        let nodes = topology.nodes();
        assert_eq!(nodes.len(), 5);
        assert_eq!(nodes[0].name, "cloud-1");
        assert!(nodes[0].relay);
        assert_eq!(nodes[4].site, "factory-b");
        assert_eq!(topology.port(HTTP_PROXY_OFFSET, 0).port(), 15080);
    }

    fn refused(text: &str) -> String {
        Topology::parse(&Source::new("t.yaml", text))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_topologies_are_refused_with_the_place() {
        let head = "apiVersion: causeway.dev/v1alpha1\nkind: Topology\nspec:\n";
        let e = refused(&format!(
            "{head}  sites:\n  - name: a\n    nodes: [n1]\n  apps:\n  - name: x\n    namespace: d\n    port: 80\n    nodes: [n9]\n"
        ));
        assert!(e.contains("spec.apps[0].nodes") && e.contains("n9"), "{e}");
        let e = refused(&format!(
            "{head}  sites:\n  - name: a\n    nodes: [n1, n1]\n"
        ));
        assert!(e.contains("listed twice"), "{e}");
        let e = refused(&format!("{head}  sites:\n  - name: a\n    nodez: [n1]\n"));
        assert!(e.starts_with("t.yaml: 6:") && e.contains("nodez"), "{e}");
        let e = refused(&format!(
            "{head}  basePort: 65300\n  sites:\n  - name: a\n    nodes: [n1]\n"
        ));
        assert!(e.contains("basePort"), "{e}");
        let e = refused("apiVersion: v1\nkind: Pod\nspec: {sites: []}\n");
        assert!(e.contains("kind Topology"), "{e}");
        let e = refused(&format!(
            "{head}  sites:\n  - name: a\n    nodes: [Bad_Name]\n"
        ));
        assert!(e.contains("Bad_Name"), "{e}");
        let e = refused(&format!(
            "{head}  sites:\n  - name: a\n    nodes: [n1]\n  apps:\n  - {{name: Echo_1, namespace: d, port: 80, nodes: [n1]}}\n"
        ));
        assert!(
            e.contains("spec.apps[0].name") && e.contains("DNS label"),
            "{e}"
        );
        let e = refused("sites: [\n");
        assert!(e.starts_with("t.yaml: "), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_is_refused_or_accepted_never_a_panic(text in ".{0,400}") {
            let _ = Topology::parse(&Source::new("fuzz.yaml", text));
        }

        #[test]
        fn mutated_quickstarts_never_panic(cut in 0usize..2000, insert in "[ -~\n]{0,8}") {
            let mut text = QUICKSTART.to_string();
            let at = text.char_indices().map(|(i, _)| i).nth(cut % QUICKSTART.len().max(1)).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = Topology::parse(&Source::new("fuzz.yaml", text));
        }
    }
}
