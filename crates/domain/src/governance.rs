//! Governance findings (SPEC §9.1): what each observation means, how severe it is, the one
//! sentence an operator acts on, and the fingerprint that follows a finding across reports.
//! The store observes (set-based queries); this module judges.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};
use uuid::Uuid;

use crate::events::Severity;

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
pub enum FindingKind {
    StaleAcceptedWithoutHandshake,
    PeerHeartbeatStale,
    PeerCapabilityDrift,
    OverlappingPrefixAdvertisement,
    PeerCertExpiring,
    PeerCertExpired,
    GrantExpiring,
    GrantUnrestricted,
    ApprovalExpiring,
    ProposedTokenExpired,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, AsRefStr, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SubjectType {
    Peer,
    PeerPair,
    Certificate,
    Grant,
    ApprovalRequest,
}

impl FindingKind {
    pub const fn subject_type(self) -> SubjectType {
        match self {
            FindingKind::StaleAcceptedWithoutHandshake
            | FindingKind::PeerHeartbeatStale
            | FindingKind::PeerCapabilityDrift
            | FindingKind::ProposedTokenExpired => SubjectType::Peer,
            FindingKind::OverlappingPrefixAdvertisement => SubjectType::PeerPair,
            FindingKind::PeerCertExpiring | FindingKind::PeerCertExpired => {
                SubjectType::Certificate
            }
            FindingKind::GrantExpiring | FindingKind::GrantUnrestricted => SubjectType::Grant,
            FindingKind::ApprovalExpiring => SubjectType::ApprovalRequest,
        }
    }
}

/// SPEC §9.1's thresholds (settings), plus the liveness `stale_after` they are judged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub accepted_without_handshake_secs: u32,
    pub degraded_high_secs: u32,
    pub cert_expiring_days: u32,
    pub grant_expiring_days: u32,
    pub approval_expiring_secs: u32,
    pub stale_after_secs: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            accepted_without_handshake_secs: 3600,
            degraded_high_secs: 86_400,
            cert_expiring_days: 30,
            grant_expiring_days: 7,
            approval_expiring_secs: 1800,
            stale_after_secs: crate::liveness::DEFAULT_STALE_AFTER_SECS,
        }
    }
}

/// What one scan query saw about one subject (the store's row), before it is judged.
/// `facts` holds the numbers and names the sentence needs (seconds are database-clock ages).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub kind: FindingKind,
    pub subject_id: String,
    pub peer_id: Option<Uuid>,
    pub facts: Value,
}

/// One finding as reports carry it (`first_seen_at` is added when the report is assembled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub subject_type: SubjectType,
    pub subject_id: String,
    pub peer_id: Option<Uuid>,
    pub message: String,
    pub payload: Value,
    pub fingerprint: String,
}

/// SHA-256 (hex) of the kind and the subject ids, sorted, so that a pair seen from either side
/// is one finding.
pub fn fingerprint(kind: FindingKind, ids: &[&str]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    crate::token::sha256_hex(format!("{kind}:{}", ids.join(":")).as_bytes())
}

/// "45 s", "12 min", "3 h", "2 d": the unit an operator reads at a glance.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// "45 s", "3 min 12 s", "2 h 5 min", "3 d 4 h": two units, for evidence.
pub fn precise_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect::<String>() + "…"
}

fn int(facts: &Value, key: &str) -> i64 {
    facts.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(facts: &'a Value, key: &str) -> &'a str {
    facts.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Judges one observation: severity, message and payload by SPEC §9.1's table.
pub fn judge(o: Observation, t: &Thresholds) -> Finding {
    let f = &o.facts;
    let peer = o.peer_id.map(|p| p.to_string()).unwrap_or_default();
    let subject = o.subject_id.clone();
    let mut ids = vec![subject.clone()];
    let (severity, message, payload) = match o.kind {
        FindingKind::StaleAcceptedWithoutHandshake => {
            let age = int(f, "age_secs");
            // Whoever accepted the token sends the handshake (SPEC §4).
            let who = if text(f, "origin") == "accepted_here" {
                "is our worker running FederationPeerHeartbeatJob, and does the peer's listener answer?"
            } else {
                "is the other instance's worker running?"
            };
            (
                Severity::High,
                format!(
                    "peer {} accepted {} ago without a handshake: {who} (runbook: peer stuck in accepted)",
                    short(&peer),
                    human_duration(age)
                ),
                json!({"age_secs": age, "origin": text(f, "origin"), "status_changed_at": f.get("status_changed_at")}),
            )
        }
        FindingKind::PeerHeartbeatStale => {
            let silent = int(f, "silent_secs");
            let since = int(f, "since_secs");
            let status = text(f, "status");
            let (severity, message) = if status == "degraded" {
                let severity = if since >= i64::from(t.degraded_high_secs) {
                    Severity::High
                } else {
                    Severity::Medium
                };
                (
                    severity,
                    format!(
                        "peer {} degraded for {} (last heartbeat {} ago): run `powernodectl doctor {peer}` (runbook: peer flipped to degraded)",
                        short(&peer),
                        human_duration(since),
                        human_duration(silent)
                    ),
                )
            } else {
                (
                    Severity::Medium,
                    format!(
                        "peer {} is {status} but silent for {} (stale after {}): the next sweep degrades it; run `powernodectl doctor {peer}`",
                        short(&peer),
                        human_duration(silent),
                        human_duration(i64::from(t.stale_after_secs))
                    ),
                )
            };
            (
                severity,
                message,
                json!({"status": status, "silent_secs": silent, "status_secs": since, "last_heartbeat_at": f.get("last_heartbeat_at")}),
            )
        }
        FindingKind::PeerCapabilityDrift => {
            let missing: Vec<String> = f
                .get("missing")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (
                Severity::Low,
                format!(
                    "peer {} advertises extensions without the matching capability: {} (ask its operator to enable them or drop the slugs)",
                    short(&peer),
                    missing.join(", ")
                ),
                json!({"missing_slugs": missing}),
            )
        }
        FindingKind::OverlappingPrefixAdvertisement => {
            let prefix = text(f, "prefix");
            if let Some(other) = f.get("other_peer_id").and_then(Value::as_str) {
                ids.push(other.to_owned());
                (
                    Severity::High,
                    format!(
                        "peers {} and {} advertise overlapping prefixes {prefix} and {}: their routes collide; one of them must re-number",
                        short(&subject),
                        short(other),
                        text(f, "other_prefix")
                    ),
                    json!({"other_peer_id": other, "prefix": prefix, "other_prefix": text(f, "other_prefix")}),
                )
            } else {
                ids.push("self".to_owned());
                (
                    Severity::High,
                    format!(
                        "peer {} advertises {prefix}, which overlaps our own prefix {}: its routes collide with ours; it must re-number",
                        short(&subject),
                        text(f, "own_prefix")
                    ),
                    json!({"self": true, "prefix": prefix, "own_prefix": text(f, "own_prefix")}),
                )
            }
        }
        FindingKind::PeerCertExpiring | FindingKind::PeerCertExpired => {
            let remaining = int(f, "remaining_secs");
            let direction = text(f, "direction");
            let which = if direction == "outbound" {
                format!("our client certificate for peer {}", short(&peer))
            } else {
                format!("the certificate we issued to peer {}", short(&peer))
            };
            let fix = if direction == "outbound" {
                format!("powernodectl peer cert renew {peer}")
            } else {
                "the peer renews it over mTLS at 75 % of its lifetime: is its worker running?"
                    .to_owned()
            };
            let (severity, when) = if o.kind == FindingKind::PeerCertExpired {
                (
                    Severity::High,
                    format!("expired {} ago", human_duration(remaining)),
                )
            } else {
                (
                    Severity::Medium,
                    format!("expires in {}", human_duration(remaining)),
                )
            };
            (
                severity,
                format!("{which} (serial {}) {when}: {fix}", text(f, "serial")),
                json!({"direction": direction, "serial": text(f, "serial"), "not_after": f.get("not_after"), "remaining_secs": remaining}),
            )
        }
        FindingKind::GrantExpiring => {
            let remaining = int(f, "remaining_secs");
            (
                Severity::Low,
                format!(
                    "grant {} of peer {} expires in {} and will not auto-renew: powernodectl grant renew {subject}",
                    short(&subject),
                    short(&peer),
                    human_duration(remaining)
                ),
                json!({"expires_at": f.get("expires_at"), "remaining_secs": remaining, "auto_renew": f.get("auto_renew"), "peer_status": f.get("peer_status")}),
            )
        }
        FindingKind::GrantUnrestricted => (
            Severity::Medium,
            format!(
                "grant {} of peer {} has no instance, network or source allowlist: any caller holding its token reaches every {}; revoke it and issue a narrower one",
                short(&subject),
                short(&peer),
                text(f, "resource_kind")
            ),
            json!({"resource_kind": text(f, "resource_kind")}),
        ),
        FindingKind::ApprovalExpiring => {
            let remaining = int(f, "remaining_secs");
            (
                Severity::Medium,
                format!(
                    "approval request {} ({}) expires in {}, then {}: powernodectl approvals approve {subject} (or reject)",
                    short(&subject),
                    text(f, "action"),
                    human_duration(remaining),
                    match text(f, "timeout_action") {
                        "approve" => "it is approved",
                        _ => "it is rejected",
                    }
                ),
                json!({"action": text(f, "action"), "expires_at": f.get("expires_at"), "remaining_secs": remaining, "timeout_action": text(f, "timeout_action")}),
            )
        }
        FindingKind::ProposedTokenExpired => {
            let ago = int(f, "expired_secs");
            (
                Severity::Low,
                format!(
                    "peer {}'s acceptance token expired {} ago: powernodectl peer token regenerate {peer}, or powernodectl peer delete {peer}",
                    short(&peer),
                    human_duration(ago)
                ),
                json!({"expired_secs": ago, "acceptance_token_expires_at": f.get("acceptance_token_expires_at")}),
            )
        }
    };
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    Finding {
        kind: o.kind,
        severity,
        subject_type: o.kind.subject_type(),
        fingerprint: fingerprint(o.kind, &id_refs),
        subject_id: o.subject_id,
        peer_id: o.peer_id,
        message,
        payload,
    }
}

/// Counts by severity, as reports carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

impl Counts {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Counts {
        let mut c = Counts::default();
        for f in findings {
            match f.severity {
                Severity::Low => c.low += 1,
                Severity::Medium => c.medium += 1,
                Severity::High => c.high += 1,
                Severity::Critical => c.critical += 1,
            }
        }
        c
    }

    pub fn total(self) -> u64 {
        self.low + self.medium + self.high + self.critical
    }

    /// The report's event severity: its worst finding, `low` when there is none.
    pub fn worst(self) -> Severity {
        if self.critical > 0 {
            Severity::Critical
        } else if self.high > 0 {
            Severity::High
        } else if self.medium > 0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(kind: FindingKind, facts: Value) -> Observation {
        Observation {
            kind,
            subject_id: "7c1a2b3c-0000-0000-0000-000000000000".to_owned(),
            peer_id: Some(Uuid::parse_str("7c1a2b3c-0000-0000-0000-000000000000").unwrap()),
            facts,
        }
    }

    #[test]
    fn a_pair_has_one_fingerprint_whichever_side_is_first() {
        let a = "11111111-0000-0000-0000-000000000000";
        let b = "22222222-0000-0000-0000-000000000000";
        assert_eq!(
            fingerprint(FindingKind::OverlappingPrefixAdvertisement, &[a, b]),
            fingerprint(FindingKind::OverlappingPrefixAdvertisement, &[b, a])
        );
        assert_ne!(
            fingerprint(FindingKind::GrantExpiring, &[a]),
            fingerprint(FindingKind::GrantUnrestricted, &[a])
        );
    }

    #[test]
    fn degraded_turns_high_after_the_threshold() {
        let t = Thresholds::default();
        let medium = judge(
            obs(
                FindingKind::PeerHeartbeatStale,
                json!({"status": "degraded", "since_secs": 3600, "silent_secs": 3900}),
            ),
            &t,
        );
        assert_eq!(medium.severity, Severity::Medium);
        let high = judge(
            obs(
                FindingKind::PeerHeartbeatStale,
                json!({"status": "degraded", "since_secs": 90_000, "silent_secs": 90_300}),
            ),
            &t,
        );
        assert_eq!(high.severity, Severity::High);
        assert!(high.message.starts_with("peer 7c1a2b3c… degraded for 25 h"));
    }

    #[test]
    fn the_stale_accepted_sentence_names_the_runbook_section() {
        let f = judge(
            obs(
                FindingKind::StaleAcceptedWithoutHandshake,
                json!({"age_secs": 3 * 3600 + 5, "origin": "proposed_here"}),
            ),
            &Thresholds::default(),
        );
        assert_eq!(
            f.message,
            "peer 7c1a2b3c… accepted 3 h ago without a handshake: is the other instance's worker running? (runbook: peer stuck in accepted)"
        );
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.subject_type, SubjectType::Peer);
    }

    #[test]
    fn counts_and_worst() {
        let t = Thresholds::default();
        let fs = [
            judge(obs(FindingKind::GrantUnrestricted, json!({})), &t),
            judge(obs(FindingKind::ProposedTokenExpired, json!({})), &t),
        ];
        let c = Counts::of(&fs);
        assert_eq!((c.low, c.medium, c.total()), (1, 1, 2));
        assert_eq!(c.worst(), Severity::Medium);
        assert_eq!(Counts::default().worst(), Severity::Low);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(12 * 60), "12 min");
        assert_eq!(human_duration(3 * 3600), "3 h");
        assert_eq!(human_duration(-3 * 86_400), "3 d");
        assert_eq!(precise_duration(192), "3 min 12 s");
        assert_eq!(precise_duration(7500), "2 h 5 min");
        assert_eq!(precise_duration(42), "42 s");
    }
}
