//! Operator permissions (SPEC §10). None implies another.

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};

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
pub enum Permission {
    /// Reads: peers, events.
    #[serde(rename = "system.federation.read")]
    #[strum(serialize = "system.federation.read")]
    FederationRead,
    /// Propose, regenerate, accept, lifecycle, grants, resources.
    #[serde(rename = "system.federation.manage")]
    #[strum(serialize = "system.federation.manage")]
    FederationManage,
    /// Approval decisions, agent pause/resume, policy lower/restore.
    #[serde(rename = "system.infra_tasks.control")]
    #[strum(serialize = "system.infra_tasks.control")]
    InfraTasksControl,
    /// Operators.
    #[serde(rename = "system.operators.admin")]
    #[strum(serialize = "system.operators.admin")]
    OperatorsAdmin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn permissions_round_trip_through_their_spec_names() {
        let names: Vec<_> = Permission::iter().map(Permission::as_str).collect();
        assert_eq!(
            names,
            [
                "system.federation.read",
                "system.federation.manage",
                "system.infra_tasks.control",
                "system.operators.admin"
            ]
        );
        for p in Permission::iter() {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
    }
}
