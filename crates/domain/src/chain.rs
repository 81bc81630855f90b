//! The mTLS authentication chain of SPEC §4 as one decision over what the lookup found, in
//! order, each refusal with its exact 401 message.

use crate::PeerStatus;

/// What the chain needs to know about a presented certificate found by its fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct ChainFacts {
    pub revoked: bool,
    /// Issued by us to a peer (not one of our own outbound certificates).
    pub inbound: bool,
    /// The status of the certificate's peer, if the row exists.
    pub peer_status: Option<PeerStatus>,
}

/// Why the chain refused; `Display` is the SPEC's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainRefusal {
    #[error("Certificate not found for mTLS subject")]
    NotFound,
    #[error("Certificate is revoked")]
    Revoked,
    #[error("No FederationPeer bound to this certificate")]
    Unbound,
    /// The peer exists but is not in a status that may call (`details.peer_status`).
    #[error("FederationPeer is not in a reachable status ({0})")]
    NotReachable(PeerStatus),
}

/// SPEC §4's chain: `None` is no certificate with that fingerprint. Enrolled, active and
/// degraded peers may call; `accepted` too when `allow_accepted` (the handshake). Only
/// certificates we issued to a peer authenticate it, never our own outbound ones.
pub fn check(cert: Option<ChainFacts>, allow_accepted: bool) -> Result<PeerStatus, ChainRefusal> {
    let cert = cert.ok_or(ChainRefusal::NotFound)?;
    if cert.revoked {
        return Err(ChainRefusal::Revoked);
    }
    let status = cert
        .peer_status
        .filter(|_| cert.inbound)
        .ok_or(ChainRefusal::Unbound)?;
    let reachable = matches!(
        status,
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded
    ) || (allow_accepted && status == PeerStatus::Accepted);
    if reachable {
        Ok(status)
    } else {
        Err(ChainRefusal::NotReachable(status))
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    fn facts(revoked: bool, inbound: bool, peer_status: Option<PeerStatus>) -> Option<ChainFacts> {
        Some(ChainFacts {
            revoked,
            inbound,
            peer_status,
        })
    }

    #[test]
    fn refusals_in_spec_order() {
        assert_eq!(check(None, false), Err(ChainRefusal::NotFound));
        // Revoked wins over everything after it.
        assert_eq!(
            check(facts(true, false, None), false),
            Err(ChainRefusal::Revoked)
        );
        assert_eq!(
            check(facts(false, false, Some(PeerStatus::Active)), false),
            Err(ChainRefusal::Unbound)
        );
        assert_eq!(
            check(facts(false, true, None), false),
            Err(ChainRefusal::Unbound)
        );
        assert_eq!(
            check(facts(false, true, Some(PeerStatus::Suspended)), false)
                .map_err(|e| e.to_string()),
            Err("FederationPeer is not in a reachable status (suspended)".to_owned())
        );
    }

    #[test]
    fn reachable_statuses() {
        for status in PeerStatus::iter() {
            let plain = check(facts(false, true, Some(status)), false).is_ok();
            let handshake = check(facts(false, true, Some(status)), true).is_ok();
            let live = matches!(
                status,
                PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded
            );
            assert_eq!(plain, live, "{status}");
            assert_eq!(
                handshake,
                live || status == PeerStatus::Accepted,
                "{status}"
            );
        }
    }
}
