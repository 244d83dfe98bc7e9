//! Load generation and benchmarks for Causeway.
//!
//! - [`echo`]: the sample app the quick start, tests and benchmarks run, with faults on
//!   purpose (delays, 503s, status overrides), streamed bodies, gRPC unary and WebSocket
//!   echo, and the test clients for them.
//! - [`topology`] and [`cluster`]: a whole cluster on loopback from a topology file, the
//!   quick start's engine (`causeway up`); [`tour`], its scripted check (`--tour`);
//!   [`client`], calls the way a user makes them.
//! - [`dns`]: the DNS benchmark — dnsperf against the mesh's DNS server and against
//!   dnsmasq answering the same names, alternating runs, medians and their ratio.
//! - [`proxy_bench`] (`causeway bench proxy`) and [`memory_bench`] (`causeway bench
//!   memory`): the mesh node as a process against a direct connection and HAProxy, and
//!   its resident memory with many Services loaded; [`http_bench`] (`causeway bench
//!   http`): per-request HTTP proxying against direct, HAProxy in HTTP mode and h2load,
//!   with rate-limit accuracy, a slow endpoint and a cross-node path; [`harness`], the
//!   child processes, scratch files and manifests they share.
//!
//! Later issues add the open- and closed-loop load generator, the YAML scenarios under
//! `loadtests/scenarios/`, and the benchmark gates that compare every variant against a
//! baseline measured in the same run (direct connection, HAProxy, dnsmasq).
//!
//! Traffic it generates goes only to loopback or into network namespaces the run created.

pub mod client;
pub mod cluster;
pub mod dns;
pub mod echo;
pub mod harness;
pub mod http_bench;
pub mod memory_bench;
pub mod proxy_bench;
pub mod topology;
pub mod tour;
