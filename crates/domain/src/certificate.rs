//! Certificate rules shared by the listener's own certificate, peer client certificates and
//! what operators are shown.

use time::OffsetDateTime;

/// Which way a stored peer certificate points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Issued by our CA to the peer: it authenticates the peer's calls to us.
    Inbound,
    /// Issued to us by the peer's CA: our client identity when we call it.
    Outbound,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default rotation point (SPEC §4): 75 % of the lifetime.
pub const DEFAULT_ROTATION_PERCENT: u8 = 75;

/// Renewal is due once `percent` % of the lifetime has passed (SPEC §4; the setting
/// `POWERNODE_CERT_ROTATION_PERCENT`), by the clock the caller passes (the database's).
pub fn due_for_rotation(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    percent: u8,
) -> bool {
    now >= not_before + (not_after - not_before) * (f64::from(percent) / 100.0)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn rotation_is_due_from_three_quarters_of_the_lifetime() {
        let from = datetime!(2026-01-01 0:00 UTC);
        let to = datetime!(2026-01-05 0:00 UTC);
        let due = |now| due_for_rotation(from, to, now, DEFAULT_ROTATION_PERCENT);
        assert!(!due(datetime!(2026-01-03 23:59 UTC)));
        assert!(due(datetime!(2026-01-04 0:00 UTC)));
        assert!(due(datetime!(2026-01-06 0:00 UTC)));
        assert!(!due(datetime!(2025-12-31 0:00 UTC)));
        // Another rotation point moves it: half of four days.
        assert!(!due_for_rotation(
            from,
            to,
            datetime!(2026-01-02 23:59 UTC),
            50
        ));
        assert!(due_for_rotation(
            from,
            to,
            datetime!(2026-01-03 0:00 UTC),
            50
        ));
    }

    #[test]
    fn directions_round_trip() {
        for d in [Direction::Inbound, Direction::Outbound] {
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
        assert_eq!(Direction::parse("sideways"), None);
    }
}
