//! Liveness thresholds (SPEC §5).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_rendered_from_the_setting() {
        assert_eq!(degraded_reason(300), "heartbeat stale (>5 minutes)");
        assert_eq!(degraded_reason(60), "heartbeat stale (>1 minute)");
        assert_eq!(degraded_reason(90), "heartbeat stale (>90 seconds)");
        assert_eq!(degraded_reason(3600), "heartbeat stale (>60 minutes)");
    }
}
