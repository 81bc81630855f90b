//! The peer state machine of SPEC §2: one table, one pure function.

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};

use crate::events::{EventKind, EventSource, Severity};

/// The instance-to-instance contract version both sides must speak (SPEC §3 accept).
pub const CONTRACT_VERSION: i32 = 1;

/// Lifecycle status of a federation peer row.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    AsRefStr,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PeerStatus {
    Proposed,
    Accepted,
    Enrolled,
    Active,
    Degraded,
    Suspended,
    Revoked,
}

impl PeerStatus {
    /// The transition table of SPEC §2: the statuses this one may move to.
    pub const fn allowed_transitions(self) -> &'static [PeerStatus] {
        use PeerStatus::*;
        match self {
            Proposed => &[Accepted, Revoked],
            Accepted => &[Enrolled, Suspended, Revoked],
            Enrolled => &[Active, Suspended, Revoked],
            Active => &[Degraded, Suspended, Revoked],
            Degraded => &[Active, Suspended, Revoked],
            Suspended => &[Accepted, Revoked],
            Revoked => &[],
        }
    }

    pub fn can_transition_to(self, to: PeerStatus) -> bool {
        self.allowed_transitions().contains(&to)
    }

    /// Revoked is terminal.
    pub const fn is_terminal(self) -> bool {
        matches!(self, PeerStatus::Revoked)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What happened to a peer; each event names its target status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, Display)]
#[strum(serialize_all = "snake_case")]
pub enum PeerEvent {
    /// Acceptance token verified (or drill accept).
    Accept,
    /// First mTLS handshake completed by the worker.
    Handshake,
    /// Authenticated inbound heartbeat.
    Heartbeat,
    /// The sweep found the last heartbeat older than `stale_after`, or missing.
    HeartbeatStale,
    /// Operator suspension, with a reason.
    Suspend,
    /// Operator resume: suspended → accepted, the peer then re-handshakes.
    Resume,
    /// Operator revocation, with a reason. Terminal.
    Revoke,
}

impl PeerEvent {
    pub const fn target(self) -> PeerStatus {
        match self {
            PeerEvent::Accept | PeerEvent::Resume => PeerStatus::Accepted,
            PeerEvent::Handshake => PeerStatus::Enrolled,
            PeerEvent::Heartbeat => PeerStatus::Active,
            PeerEvent::HeartbeatStale => PeerStatus::Degraded,
            PeerEvent::Suspend => PeerStatus::Suspended,
            PeerEvent::Revoke => PeerStatus::Revoked,
        }
    }

    /// Where the event row recording this transition comes from (SPEC §8).
    pub const fn source(self) -> EventSource {
        match self {
            PeerEvent::Accept => EventSource::AcceptController,
            PeerEvent::Handshake => EventSource::FederationHandshake,
            PeerEvent::Heartbeat => EventSource::FederationHeartbeat,
            PeerEvent::HeartbeatStale => EventSource::FederationHeartbeatSweep,
            PeerEvent::Suspend | PeerEvent::Resume | PeerEvent::Revoke => {
                EventSource::FederationPeer
            }
        }
    }
}

/// A refused transition. Its `Display` is the exact operator-facing message of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Transition {from} → {to} is not permitted")]
pub struct IllegalTransition {
    pub from: PeerStatus,
    pub to: PeerStatus,
}

/// Metadata keys holding the reason for the current status.
pub const DEGRADED_REASON: &str = "degraded_reason";
pub const SUSPENSION_REASON: &str = "suspension_reason";
pub const REVOCATION_REASON: &str = "revocation_reason";

/// What persisting a transition must do besides setting the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Event row to write in the same transaction.
    pub event_kind: EventKind,
    pub event_source: EventSource,
    pub severity: Severity,
    /// Metadata key that receives the caller's reason, if this status records one.
    pub reason_key: Option<&'static str>,
    /// Metadata keys to remove (e.g. `degraded_reason` when leaving degraded).
    pub clear_keys: &'static [&'static str],
    /// The acceptance token digest and expiry are cleared: single use on accept; a revoked
    /// peer keeps no token material.
    pub clear_acceptance_token: bool,
    /// `signed_at` is stamped (the acceptance token was verified).
    pub set_signed_at: bool,
    /// Every live certificate of the peer is revoked in the same transaction (SPEC §4: a
    /// revoked peer's certificates stop authenticating on the next request).
    pub revoke_certificates: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The status changes; persist with a conditional update on `from`.
    Move {
        from: PeerStatus,
        to: PeerStatus,
        effects: Effects,
    },
    /// Nothing to change (a routine heartbeat from an active peer): no write, no event.
    Stay(PeerStatus),
}

/// Applies `event` to a peer in status `from`.
pub fn apply(from: PeerStatus, event: PeerEvent) -> Result<Transition, IllegalTransition> {
    let to = event.target();
    if event == PeerEvent::Heartbeat && from == PeerStatus::Active {
        return Ok(Transition::Stay(from));
    }
    if !from.can_transition_to(to) {
        return Err(IllegalTransition { from, to });
    }
    let severity = match to {
        PeerStatus::Revoked => Severity::High,
        PeerStatus::Suspended | PeerStatus::Degraded => Severity::Medium,
        _ => Severity::Low,
    };
    let reason_key = match to {
        PeerStatus::Degraded => Some(DEGRADED_REASON),
        PeerStatus::Suspended => Some(SUSPENSION_REASON),
        PeerStatus::Revoked => Some(REVOCATION_REASON),
        _ => None,
    };
    let clear_keys: &'static [&'static str] = match (from, to) {
        (PeerStatus::Degraded, _) => &[DEGRADED_REASON],
        (PeerStatus::Suspended, PeerStatus::Accepted) => &[SUSPENSION_REASON],
        _ => &[],
    };
    let event_kind = if event == PeerEvent::HeartbeatStale {
        EventKind::PeerHeartbeatStale
    } else {
        EventKind::PeerStatus(to)
    };
    Ok(Transition::Move {
        from,
        to,
        effects: Effects {
            event_kind,
            event_source: event.source(),
            severity,
            reason_key,
            clear_keys,
            clear_acceptance_token: matches!(event, PeerEvent::Accept | PeerEvent::Revoke),
            set_signed_at: event == PeerEvent::Accept,
            revoke_certificates: to == PeerStatus::Revoked,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strum::IntoEnumIterator;

    /// SPEC §2's table, written out independently of `allowed_transitions`.
    const TABLE: &[(&str, &[&str])] = &[
        ("proposed", &["accepted", "revoked"]),
        ("accepted", &["enrolled", "suspended", "revoked"]),
        ("enrolled", &["active", "suspended", "revoked"]),
        ("active", &["degraded", "suspended", "revoked"]),
        ("degraded", &["active", "suspended", "revoked"]),
        ("suspended", &["accepted", "revoked"]),
        ("revoked", &[]),
    ];

    #[test]
    fn every_from_to_pair_matches_the_spec_table() {
        assert_eq!(TABLE.len(), PeerStatus::iter().count());
        for from in PeerStatus::iter() {
            let (_, allowed) = TABLE
                .iter()
                .find(|(f, _)| *f == from.as_str())
                .unwrap_or_else(|| panic!("{from} missing from table"));
            for to in PeerStatus::iter() {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&to.as_str()),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn illegal_transition_message_is_the_spec_text() {
        let err = apply(PeerStatus::Revoked, PeerEvent::Resume).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Transition revoked → accepted is not permitted"
        );
    }

    #[test]
    fn every_status_event_pair_follows_the_table() {
        for from in PeerStatus::iter() {
            for event in PeerEvent::iter() {
                let result = apply(from, event);
                let to = event.target();
                match result {
                    Ok(Transition::Stay(s)) => {
                        assert_eq!((s, event), (PeerStatus::Active, PeerEvent::Heartbeat))
                    }
                    Ok(Transition::Move { from: f, to: t, .. }) => {
                        assert_eq!((f, t), (from, to));
                        assert!(from.can_transition_to(to));
                    }
                    Err(e) => {
                        assert_eq!(e, IllegalTransition { from, to });
                        assert!(!from.can_transition_to(to));
                    }
                }
            }
        }
    }

    #[test]
    fn stale_sweep_degrades_only_active_peers_with_a_medium_event() {
        let Ok(Transition::Move { effects, .. }) =
            apply(PeerStatus::Active, PeerEvent::HeartbeatStale)
        else {
            panic!("active must degrade");
        };
        assert_eq!(
            effects.event_kind.to_string(),
            "federation.peer.heartbeat_stale"
        );
        assert_eq!(effects.event_source.as_ref(), "federation_heartbeat_sweep");
        assert_eq!(effects.severity, Severity::Medium);
        assert_eq!(effects.reason_key, Some(DEGRADED_REASON));
        for from in PeerStatus::iter().filter(|s| *s != PeerStatus::Active) {
            assert!(apply(from, PeerEvent::HeartbeatStale).is_err(), "{from}");
        }
    }

    #[test]
    fn leaving_degraded_clears_the_reason_and_accept_clears_the_token() {
        let Ok(Transition::Move { effects, .. }) =
            apply(PeerStatus::Degraded, PeerEvent::Heartbeat)
        else {
            panic!("degraded must recover");
        };
        assert_eq!(effects.clear_keys, &[DEGRADED_REASON]);
        assert_eq!(effects.event_kind.to_string(), "federation.peer.active");
        let Ok(Transition::Move { effects, .. }) = apply(PeerStatus::Proposed, PeerEvent::Accept)
        else {
            panic!("proposed must accept");
        };
        assert!(effects.clear_acceptance_token && effects.set_signed_at);
        assert_eq!(effects.event_source.as_ref(), "accept_controller");
        let Ok(Transition::Move { effects, .. }) = apply(PeerStatus::Proposed, PeerEvent::Revoke)
        else {
            panic!("proposed must revoke");
        };
        assert!(effects.clear_acceptance_token && !effects.set_signed_at);
    }

    fn any_event() -> impl Strategy<Value = PeerEvent> {
        prop::sample::select(PeerEvent::iter().collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn random_event_sequences_never_leave_revoked_nor_skip_enrolled(
            events in prop::collection::vec(any_event(), 0..64)
        ) {
            let mut status = PeerStatus::Proposed;
            let mut enrolled_seen = false;
            for event in events {
                let before = status;
                if let Ok(Transition::Move { to, .. }) = apply(status, event) {
                    status = to;
                }
                if before == PeerStatus::Revoked {
                    prop_assert_eq!(status, PeerStatus::Revoked);
                }
                if status == PeerStatus::Enrolled {
                    enrolled_seen = true;
                }
                if status == PeerStatus::Active {
                    prop_assert!(enrolled_seen, "active reached without enrolled");
                }
            }
        }
    }
}
