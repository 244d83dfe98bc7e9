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
//! - [`generator`]: the load generator — open and closed loops over HTTP/1.1, HTTP/2,
//!   gRPC unary, TCP and UDP echo, HdrHistogram latencies, results as JSON.
//! - [`scenario`]: the declared scenarios of `loadtests/scenarios/` and their runner;
//!   [`suite`] runs a profile of them (`causeway bench --profile ci|full`) and
//!   [`report`] writes the markdown summary and SVG plots; [`located`] decodes operator
//!   YAML with line and column.
//!
//! Traffic it generates goes only to loopback or into network namespaces the run created.

pub mod client;
pub mod cluster;
pub mod dns;
pub mod echo;
pub mod generator;
pub mod harness;
pub mod http_bench;
pub mod located;
pub mod memory_bench;
pub mod proxy_bench;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod topology;
pub mod tour;
