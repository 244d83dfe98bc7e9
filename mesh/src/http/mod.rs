//! Per-request HTTP/1.1, HTTP/2 and gRPC proxying: each request to a Service port gets
//! its own endpoint, and the plan's QPS limit, timeouts, retries, outlier ejection and
//! connection-pool limits are enforced per request.
//!
//! [`proxy`] is the source side (a client's request to a Service), [`destination`] the
//! other node's side of a request carried over a tunnel stream, [`serve`] serves HTTP
//! on a client connection, [`pool`] keeps upstream connections, and [`headers`],
//! [`hash`] and [`body`] hold the small rules they share.
//!
//! It reads the store through `Outbound` and dials only through it.

pub mod body;
pub mod destination;
pub mod hash;
pub mod headers;
pub mod pool;
pub mod prefixed;
pub mod protocol;
pub mod proxy;
pub mod replay;
pub mod retry;
pub mod serve;
