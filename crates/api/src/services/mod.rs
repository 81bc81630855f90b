//! Service functions: load, apply the domain rule, persist and record the event in one
//! transaction. Handlers call exactly one of these.

pub mod approvals;
pub mod federation;
pub mod operators;
pub mod peers;
