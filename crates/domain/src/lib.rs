//! Pure federation rules shared by the API, the store and the worker.
//!
//! Nothing here performs I/O or reads a clock: callers pass `now` and configuration in.

pub mod approval;
pub mod auth;
pub mod certificate;
pub mod chain;
pub mod config;
pub mod events;
pub mod governance;
pub mod grant;
pub mod ids;
pub mod liveness;
pub mod peer;
pub mod schedule;
pub mod token;
pub mod values;

pub use auth::Permission;
pub use ids::{ApprovalId, GrantId, OperatorId, PeerId};
pub use peer::{Effects, IllegalTransition, PeerEvent, PeerStatus, Transition};
pub use values::{
    InstanceUrl, InvalidValue, PeerKind, PeerOrigin, SpawnMode, SpawnRole, UlaPrefix,
};
