//! The approval gate, approval requests and emergency lowering (SPEC §7). Pure rules: callers
//! pass the stored policy, the request and the database clock in.

use std::fmt;

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};
use time::OffsetDateTime;

/// The gated actions of this build; their text is the policy's and the request's `action`.
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
pub enum GatedAction {
    #[serde(rename = "system.federation_peer_propose")]
    #[strum(serialize = "system.federation_peer_propose")]
    FederationPeerPropose,
    #[serde(rename = "system.federation_peer_accept")]
    #[strum(serialize = "system.federation_peer_accept")]
    FederationPeerAccept,
    #[serde(rename = "system.federation_peer_revoke")]
    #[strum(serialize = "system.federation_peer_revoke")]
    FederationPeerRevoke,
}

impl GatedAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

pub const FEDERATION_PEER_PROPOSE: &str = "system.federation_peer_propose";
pub const FEDERATION_PEER_ACCEPT: &str = "system.federation_peer_accept";
pub const FEDERATION_PEER_REVOKE: &str = "system.federation_peer_revoke";

/// `decided_by` of requests the SDWAN Manager decided (timeouts).
pub const SDWAN_MANAGER: &str = "sdwan_manager";
pub const SDWAN_MANAGER_AGENT: &str = "SDWAN Manager";

/// Emergency lowering windows: at least a second, at most a day.
pub const LOWER_MIN_SECS: u32 = 1;
pub const LOWER_MAX_SECS: u32 = 86_400;
/// Request timeouts: at least a second, at most 30 days.
pub const TIMEOUT_MIN_SECS: u32 = 1;
pub const TIMEOUT_MAX_SECS: u32 = 30 * 86_400;
pub const MAX_COMMENTS_LEN: usize = 2000;

/// Intervention policies, from least to most strict.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
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
pub enum Policy {
    AutoApprove,
    NotifyAndProceed,
    RequireApproval,
    Blocked,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

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
pub enum TimeoutAction {
    Reject,
    Approve,
}

impl TimeoutAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

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
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

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
pub enum ExecutionStatus {
    Pending,
    Succeeded,
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A stored policy row, as the gate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    pub action: String,
    pub policy: Policy,
    pub timeout_secs: u32,
    pub timeout_action: TimeoutAction,
    /// Whether `auto_approve` may ever be set (false for the federation actions: the runbook's
    /// "auto-approval is intentionally not allowed").
    pub auto_approve_allowed: bool,
    /// Whether `approve` may be the timeout action (false for the seeded actions).
    pub timeout_approve_allowed: bool,
    pub lowered: Option<Lowering>,
}

/// An emergency lowering in force until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowering {
    pub to: Policy,
    pub until: OffsetDateTime,
}

impl PolicyState {
    /// The lowering, if its window has not ended at `now`.
    pub fn active_lowering(&self, now: OffsetDateTime) -> Option<&Lowering> {
        self.lowered.as_ref().filter(|l| l.until > now)
    }

    /// True when a lowering's window has ended and it must be restored (with an event).
    pub fn lowering_ended(&self, now: OffsetDateTime) -> bool {
        self.lowered.as_ref().is_some_and(|l| l.until <= now)
    }

    /// The policy that applies at `now`.
    pub fn effective(&self, now: OffsetDateTime) -> Policy {
        self.active_lowering(now).map_or(self.policy, |l| l.to)
    }

    /// What the gate does with a call at `now`.
    pub fn gate(&self, now: OffsetDateTime) -> Gate {
        match self.effective(now) {
            Policy::AutoApprove => Gate::Proceed { notify: false },
            Policy::NotifyAndProceed => Gate::Proceed { notify: true },
            Policy::RequireApproval => Gate::Pending,
            Policy::Blocked => Gate::Blocked,
        }
    }

    /// Checks an emergency lowering: strictly below the stored policy, within the window
    /// bounds, and never to a policy this action does not allow.
    pub fn check_lowering(&self, to: Policy, for_secs: u32) -> Result<(), PolicyRefusal> {
        if to >= self.policy {
            return Err(PolicyRefusal::new(
                "to",
                format!(
                    "must be less strict than the current policy {}",
                    self.policy
                ),
            ));
        }
        self.check_policy(to, "to")?;
        if !(LOWER_MIN_SECS..=LOWER_MAX_SECS).contains(&for_secs) {
            return Err(PolicyRefusal::new(
                "for_seconds",
                format!("must be between {LOWER_MIN_SECS} and {LOWER_MAX_SECS}"),
            ));
        }
        Ok(())
    }

    /// Checks a permanent policy edit.
    pub fn check_update(
        &self,
        policy: Policy,
        timeout_secs: u32,
        timeout_action: TimeoutAction,
    ) -> Result<(), PolicyRefusal> {
        self.check_policy(policy, "policy")?;
        if !(TIMEOUT_MIN_SECS..=TIMEOUT_MAX_SECS).contains(&timeout_secs) {
            return Err(PolicyRefusal::new(
                "timeout_seconds",
                format!("must be between {TIMEOUT_MIN_SECS} and {TIMEOUT_MAX_SECS}"),
            ));
        }
        if timeout_action == TimeoutAction::Approve && !self.timeout_approve_allowed {
            return Err(PolicyRefusal::new(
                "timeout_action",
                format!("approve is not allowed for {}", self.action),
            ));
        }
        Ok(())
    }

    fn check_policy(&self, policy: Policy, field: &'static str) -> Result<(), PolicyRefusal> {
        if policy == Policy::AutoApprove && !self.auto_approve_allowed {
            return Err(PolicyRefusal::new(
                field,
                format!("auto_approve is not allowed for {}", self.action),
            ));
        }
        Ok(())
    }
}

/// A refused policy change: `<field> <message>` (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct PolicyRefusal {
    pub field: &'static str,
    pub message: String,
}

impl PolicyRefusal {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        PolicyRefusal {
            field,
            message: message.into(),
        }
    }
}

/// The gate's answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Run now; `notify` writes `approval.notified`.
    Proceed { notify: bool },
    /// Queue an approval request (202).
    Pending,
    /// Refuse (422 `Action blocked by policy`).
    Blocked,
}

/// Why a decision or cancel is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionRefusal {
    /// 403.
    #[error("You cannot decide your own approval request")]
    OwnRequest,
    /// 403.
    #[error("Only the requester can cancel an approval request")]
    NotRequester,
    /// 409.
    #[error("Approval request has expired")]
    Expired,
    /// 409.
    #[error("Approval request already {0}")]
    AlreadyDecided(ApprovalStatus),
}

/// The facts of a stored request a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestState {
    pub status: ApprovalStatus,
    pub requested_by: String,
    pub expires_at: OffsetDateTime,
}

impl RequestState {
    /// Whether `decider` may approve or reject now (SPEC §7 order: own request, expiry, decided).
    pub fn check_decision(
        &self,
        decider: &str,
        now: OffsetDateTime,
    ) -> Result<(), DecisionRefusal> {
        if self.requested_by == decider {
            return Err(DecisionRefusal::OwnRequest);
        }
        self.check_open(now)
    }

    /// Whether `requester` may cancel now.
    pub fn check_cancel(
        &self,
        requester: &str,
        now: OffsetDateTime,
    ) -> Result<(), DecisionRefusal> {
        if self.requested_by != requester {
            return Err(DecisionRefusal::NotRequester);
        }
        self.check_open(now)
    }

    fn check_open(&self, now: OffsetDateTime) -> Result<(), DecisionRefusal> {
        match self.status {
            ApprovalStatus::Pending if self.expires_at <= now => Err(DecisionRefusal::Expired),
            ApprovalStatus::Pending => Ok(()),
            ApprovalStatus::Expired => Err(DecisionRefusal::Expired),
            other => Err(DecisionRefusal::AlreadyDecided(other)),
        }
    }
}

/// What a re-claimed execution does, given how many attempts were already started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionPlan {
    /// First run.
    Run,
    /// The previous run was interrupted (crash between claim and record): run once more and
    /// record whatever the remote answers.
    Rerun,
    /// Interrupted twice: record a failure without running again.
    GiveUp,
}

pub fn execution_plan(started_attempts: u32) -> ExecutionPlan {
    match started_attempts {
        0 => ExecutionPlan::Run,
        1 => ExecutionPlan::Rerun,
        _ => ExecutionPlan::GiveUp,
    }
}

/// The comment recorded on a request the SDWAN Manager let time out.
pub fn timeout_comment(timeout_secs: u32, action: TimeoutAction) -> String {
    let verb = match action {
        TimeoutAction::Reject => "rejected",
        TimeoutAction::Approve => "approved",
    };
    format!(
        "No decision within {}; {verb} by the SDWAN Manager (timeout action: {action})",
        HumanDuration(timeout_secs)
    )
}

/// `4h`, `30m`, `90s`, `1h30m`: how comments and logs show a duration.
pub struct HumanDuration(pub u32);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 % 3600 / 60, self.0 % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 || out.is_empty() {
            out.push_str(&format!("{s}s"));
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn seeded(action: &str) -> PolicyState {
        PolicyState {
            action: action.to_owned(),
            policy: Policy::RequireApproval,
            timeout_secs: 4 * 3600,
            timeout_action: TimeoutAction::Reject,
            auto_approve_allowed: false,
            timeout_approve_allowed: false,
            lowered: None,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    #[test]
    fn the_gate_follows_the_effective_policy() {
        let mut p = seeded(FEDERATION_PEER_REVOKE);
        assert_eq!(p.gate(NOW), Gate::Pending);
        p.lowered = Some(Lowering {
            to: Policy::NotifyAndProceed,
            until: NOW + time::Duration::minutes(30),
        });
        assert_eq!(p.gate(NOW), Gate::Proceed { notify: true });
        assert!(!p.lowering_ended(NOW));
        let later = NOW + time::Duration::minutes(30);
        assert_eq!(p.gate(later), Gate::Pending);
        assert!(p.lowering_ended(later));
        p.policy = Policy::Blocked;
        assert_eq!(p.gate(later), Gate::Blocked);
        p.policy = Policy::AutoApprove;
        assert_eq!(p.gate(later), Gate::Proceed { notify: false });
    }

    #[test]
    fn lowering_must_lower_and_never_to_auto_approve_for_federation_actions() {
        let p = seeded(FEDERATION_PEER_REVOKE);
        assert!(p.check_lowering(Policy::NotifyAndProceed, 1800).is_ok());
        assert_eq!(
            p.check_lowering(Policy::AutoApprove, 1800)
                .unwrap_err()
                .to_string(),
            "to auto_approve is not allowed for system.federation_peer_revoke"
        );
        assert_eq!(
            p.check_lowering(Policy::Blocked, 1800)
                .unwrap_err()
                .to_string(),
            "to must be less strict than the current policy require_approval"
        );
        assert_eq!(
            p.check_lowering(Policy::NotifyAndProceed, 0)
                .unwrap_err()
                .field,
            "for_seconds"
        );
        assert_eq!(
            p.check_update(Policy::RequireApproval, 60, TimeoutAction::Approve)
                .unwrap_err()
                .to_string(),
            "timeout_action approve is not allowed for system.federation_peer_revoke"
        );
    }

    #[test]
    fn decisions_refuse_own_expired_and_decided_requests() {
        let r = RequestState {
            status: ApprovalStatus::Pending,
            requested_by: "alice".to_owned(),
            expires_at: NOW + time::Duration::hours(1),
        };
        assert_eq!(r.check_decision("bob", NOW), Ok(()));
        assert_eq!(
            r.check_decision("alice", NOW),
            Err(DecisionRefusal::OwnRequest)
        );
        assert_eq!(
            r.check_decision("bob", NOW + time::Duration::hours(1)),
            Err(DecisionRefusal::Expired)
        );
        let decided = RequestState {
            status: ApprovalStatus::Rejected,
            ..r.clone()
        };
        assert_eq!(
            decided.check_decision("bob", NOW).unwrap_err().to_string(),
            "Approval request already rejected"
        );
        assert_eq!(
            r.check_cancel("bob", NOW),
            Err(DecisionRefusal::NotRequester)
        );
        assert_eq!(r.check_cancel("alice", NOW), Ok(()));
    }

    #[test]
    fn durations_render_compactly() {
        assert_eq!(HumanDuration(14_400).to_string(), "4h");
        assert_eq!(HumanDuration(5430).to_string(), "1h30m30s");
        assert_eq!(HumanDuration(0).to_string(), "0s");
        assert_eq!(
            timeout_comment(14_400, TimeoutAction::Reject),
            "No decision within 4h; rejected by the SDWAN Manager (timeout action: reject)"
        );
    }

    #[test]
    fn an_interrupted_execution_is_rerun_once() {
        assert_eq!(execution_plan(0), ExecutionPlan::Run);
        assert_eq!(execution_plan(1), ExecutionPlan::Rerun);
        assert_eq!(execution_plan(2), ExecutionPlan::GiveUp);
    }

    proptest! {
        #[test]
        fn only_pending_unexpired_requests_are_decidable(
            status in prop::sample::select(vec![
                ApprovalStatus::Pending, ApprovalStatus::Approved, ApprovalStatus::Rejected,
                ApprovalStatus::Expired, ApprovalStatus::Cancelled,
            ]),
            offset in -7200i64..7200,
        ) {
            let r = RequestState {
                status,
                requested_by: "alice".to_owned(),
                expires_at: NOW + time::Duration::seconds(offset),
            };
            let ok = r.check_decision("bob", NOW).is_ok();
            prop_assert_eq!(ok, status == ApprovalStatus::Pending && offset > 0);
        }
    }

    #[test]
    fn gated_actions_are_their_policy_names() {
        use strum::IntoEnumIterator;
        let names: Vec<&str> = GatedAction::iter().map(GatedAction::as_str).collect();
        assert_eq!(
            names,
            [
                FEDERATION_PEER_PROPOSE,
                FEDERATION_PEER_ACCEPT,
                FEDERATION_PEER_REVOKE
            ]
        );
        for a in GatedAction::iter() {
            assert_eq!(a.as_str().parse::<GatedAction>(), Ok(a));
        }
        assert!("system.reboot".parse::<GatedAction>().is_err());
    }
}
