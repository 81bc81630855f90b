//! Liveness thresholds (SPEC §5).

use time::OffsetDateTime;

use crate::{PeerKind, PeerOrigin, PeerStatus};

/// Default `stale_after`: an active peer silent for longer is degraded by the sweep.
pub const DEFAULT_STALE_AFTER_SECS: u32 = 300;

/// The `metadata.degraded_reason` the sweep records, rendered from the threshold:
/// `heartbeat stale (>5 minutes)`, `(>1 minute)`, or `(>N seconds)`.
pub fn degraded_reason(stale_after_secs: u32) -> String {
    let span = match stale_after_secs {
        60 => "1 minute".to_owned(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    };
    format!("heartbeat stale (>{span})")
}

/// Longest a failing peer is skipped by the PeerClient, unless it asked for longer.
pub const MAX_OUTBOUND_BACKOFF_SECS: u32 = 300;

/// Seconds the PeerClient skips a peer after `failures` consecutive failed calls: none after
/// the first (one failure may be a blip), then 30 s doubling up to
/// [`MAX_OUTBOUND_BACKOFF_SECS`]; a `Retry-After` the peer sent (429, 503 `busy`) wins when
/// longer. Dead peers then cost a tick nothing most of the time, and a returning peer is
/// retried within five minutes at worst (at once when it heartbeats us first).
pub fn outbound_backoff_secs(failures: u32, retry_after: Option<u32>) -> u32 {
    let grown = match failures {
        0 | 1 => 0,
        n => 30u32
            .saturating_mul(1 << (n - 2).min(16))
            .min(MAX_OUTBOUND_BACKOFF_SECS),
    };
    grown.max(retry_after.unwrap_or(0))
}

/// How many peers one PeerClient pass contacts at once: half of them, at least 16, at most
/// `max` — so a tick's length is bounded by a few connect timeouts however many peers are dead.
pub fn fan_out(targets: usize, max: usize) -> usize {
    (targets / 2).clamp(16, max.max(16))
}

/// What our PeerClient does for a peer on each tick (SPEC §5), if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundCall {
    /// We accepted its token and still owe it the handshake.
    Handshake,
    /// A live peer: heartbeat it (renewing our client certificate when due).
    Heartbeat,
}

/// The statuses a peer may have for [`outbound_call`] to name a call.
pub const CONTACTED_STATUSES: [PeerStatus; 4] = [
    PeerStatus::Accepted,
    PeerStatus::Enrolled,
    PeerStatus::Active,
    PeerStatus::Degraded,
];

/// Which peers we contact: platform peers only (an `sdwan_only` peer has no control plane to
/// call); the handshake only for peers we accepted (the proposer waits for it).
pub fn outbound_call(
    status: PeerStatus,
    origin: PeerOrigin,
    kind: PeerKind,
) -> Option<OutboundCall> {
    if kind != PeerKind::Platform {
        return None;
    }
    match status {
        PeerStatus::Accepted if origin == PeerOrigin::AcceptedHere => Some(OutboundCall::Handshake),
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded => {
            Some(OutboundCall::Heartbeat)
        }
        _ => None,
    }
}

/// What a peer's row says at read time, by the database clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derived {
    /// Expected to heartbeat (enrolled, active, degraded) and silent for longer than
    /// `stale_after` (or never heard from).
    pub heartbeat_stale: bool,
    /// Proposed, with a token that has not expired yet.
    pub acceptance_pending: bool,
}

/// The facts of a peer row `derive` reads.
#[derive(Debug, Clone, Copy)]
pub struct PeerFacts {
    pub status: PeerStatus,
    pub last_heartbeat_at: Option<OffsetDateTime>,
    pub token_held: bool,
    pub token_expires_at: Option<OffsetDateTime>,
}

pub fn derive(peer: PeerFacts, now: OffsetDateTime, stale_after_secs: u32) -> Derived {
    let expects_heartbeats = matches!(
        peer.status,
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded
    );
    let stale_after = time::Duration::seconds(i64::from(stale_after_secs));
    Derived {
        heartbeat_stale: expects_heartbeats
            && peer
                .last_heartbeat_at
                .is_none_or(|at| now - at > stale_after),
        acceptance_pending: peer.status == PeerStatus::Proposed
            && peer.token_held
            && peer.token_expires_at.is_some_and(|at| at > now),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn only_platform_peers_are_contacted_and_only_the_acceptor_handshakes() {
        use strum::IntoEnumIterator;
        for status in PeerStatus::iter() {
            for origin in [PeerOrigin::ProposedHere, PeerOrigin::AcceptedHere] {
                assert_eq!(outbound_call(status, origin, PeerKind::SdwanOnly), None);
                let call = outbound_call(status, origin, PeerKind::Platform);
                let expected = match status {
                    PeerStatus::Accepted if origin == PeerOrigin::AcceptedHere => {
                        Some(OutboundCall::Handshake)
                    }
                    PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded => {
                        Some(OutboundCall::Heartbeat)
                    }
                    _ => None,
                };
                assert_eq!(call, expected, "{status} {origin:?}");
                assert!(call.is_none() || CONTACTED_STATUSES.contains(&status));
            }
        }
    }

    #[test]
    fn staleness_and_pending_tokens_by_the_given_clock() {
        let now = datetime!(2026-11-29 12:00 UTC);
        let facts = |status, beat, held, exp| PeerFacts {
            status,
            last_heartbeat_at: beat,
            token_held: held,
            token_expires_at: exp,
        };
        let five_min = Some(datetime!(2026-11-29 11:55 UTC));
        let six_min = Some(datetime!(2026-11-29 11:54 UTC));
        assert!(
            !derive(facts(PeerStatus::Active, five_min, false, None), now, 300).heartbeat_stale
        );
        assert!(derive(facts(PeerStatus::Active, six_min, false, None), now, 300).heartbeat_stale);
        assert!(derive(facts(PeerStatus::Enrolled, None, false, None), now, 300).heartbeat_stale);
        assert!(!derive(facts(PeerStatus::Suspended, None, false, None), now, 300).heartbeat_stale);
        let later = Some(datetime!(2026-11-29 13:00 UTC));
        assert!(
            derive(facts(PeerStatus::Proposed, None, true, later), now, 300).acceptance_pending
        );
        assert!(
            !derive(facts(PeerStatus::Proposed, None, false, later), now, 300).acceptance_pending
        );
        assert!(
            !derive(facts(PeerStatus::Proposed, None, true, six_min), now, 300).acceptance_pending
        );
        assert!(
            !derive(facts(PeerStatus::Accepted, None, true, later), now, 300).acceptance_pending
        );
    }

    #[test]
    fn reason_is_rendered_from_the_setting() {
        assert_eq!(degraded_reason(300), "heartbeat stale (>5 minutes)");
        assert_eq!(degraded_reason(60), "heartbeat stale (>1 minute)");
        assert_eq!(degraded_reason(90), "heartbeat stale (>90 seconds)");
        assert_eq!(degraded_reason(3600), "heartbeat stale (>60 minutes)");
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_second_failure_doubles_and_is_capped() {
        let secs: Vec<u32> = (0..9).map(|n| outbound_backoff_secs(n, None)).collect();
        assert_eq!(secs, [0, 0, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(outbound_backoff_secs(u32::MAX, None), 300);
        assert_eq!(outbound_backoff_secs(1, Some(7)), 7);
        assert_eq!(outbound_backoff_secs(3, Some(7)), 60);
        assert_eq!(outbound_backoff_secs(3, Some(900)), 900);
    }

    #[test]
    fn fan_out_scales_with_the_peer_count_within_its_bounds() {
        assert_eq!(fan_out(0, 256), 16);
        assert_eq!(fan_out(10, 256), 16);
        assert_eq!(fan_out(100, 256), 50);
        assert_eq!(fan_out(1000, 256), 256);
        assert_eq!(fan_out(1000, 4), 16);
    }
}
