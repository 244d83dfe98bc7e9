//! The load generator: open-loop (a constant rate, each call at its scheduled time, so
//! queueing shows in the latency) and closed-loop (as fast as each connection can go)
//! over HTTP/1.1, HTTP/2, gRPC unary, raw TCP echo and UDP echo; latencies in an
//! HdrHistogram; results as [`RunResult`], serializable to JSON.
//!
//! - [`clients`]: one connection per protocol, and what a call came to.
//! - [`load`]: the open and closed loops, their bounds and deadlines.
//! - `recorder`: outcomes into histograms and time windows.
//! - `progress`: a progress bar on a terminal, nothing otherwise.
//!
//! It calls the target it is given and nothing else; the benchmarks give it loopback
//! addresses only.

pub mod clients;
pub mod load;
mod progress;
mod recorder;
mod result;

pub use clients::{CallSpec, Connection, Outcome};
pub use load::{LoadError, LoadSpec, Mode, run};
pub use result::{Latency, Protocol, RunResult, Window};
