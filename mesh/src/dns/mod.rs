//! The mesh's embedded DNS server.
