//! Versions of objects and of node views.
//!
//! Two different things, kept apart by type:
//! - [`ResourceVersion`] is the API server's `metadata.resourceVersion`: an opaque string a
//!   client may only compare for equality and send back (Kubernetes' own rule);
//! - [`Revision`] is Causeway's own counter: the control plane numbers every change to a
//!   node's view, and a node says which revision it applied last, so a reconnect resumes
//!   from there instead of downloading the world again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The API server's opaque `metadata.resourceVersion` of one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceVersion(String);

impl ResourceVersion {
    /// Wraps the value read from an object's metadata.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value as the API server wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A position in the ordered history of one node's view, starting at [`Revision::ZERO`]
/// (nothing applied yet). Revisions only grow.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    /// Nothing applied yet: a node with this revision needs a full snapshot.
    pub const ZERO: Revision = Revision(0);

    /// A revision from its stored number.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The stored number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one, or `None` once the counter is exhausted (after 2^64-1
    /// changes; the caller must then start a new history, which forces full snapshots).
    pub const fn next(self) -> Option<Revision> {
        match self.0.checked_add(1) {
            Some(v) => Some(Revision(v)),
            None => None,
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_order_and_advance() {
        let r = Revision::ZERO;
        assert_eq!(r.next(), Some(Revision::new(1)));
        assert!(Revision::new(2) > Revision::new(1));
        assert_eq!(Revision::new(u64::MAX).next(), None);
        assert_eq!(Revision::new(7).to_string(), "r7");
    }

    #[test]
    fn versions_serialize_as_their_bare_values() {
        assert_eq!(serde_json::to_string(&Revision::new(42)).unwrap(), "42");
        assert_eq!(
            serde_json::to_string(&ResourceVersion::new("12345")).unwrap(),
            "\"12345\""
        );
    }
}
