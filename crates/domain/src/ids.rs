//! Typed identifiers: a peer's id cannot be passed where a grant's is expected. On the wire and
//! in the database they are plain UUIDs (`serde(transparent)`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_v4() -> Self {
                $name(Uuid::new_v4())
            }

            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

typed_id!(
    /// A federation peer (`peers.id`).
    PeerId
);
typed_id!(
    /// A grant (`grants.id`).
    GrantId
);
typed_id!(
    /// An approval request (`approval_requests.id`).
    ApprovalId
);
typed_id!(
    /// An operator (`operators.id`).
    OperatorId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_uuids_on_the_wire() {
        let raw = Uuid::new_v4();
        let id = PeerId::from(raw);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(raw.to_string())
        );
        assert_eq!(raw.to_string().parse::<PeerId>().unwrap(), id);
        assert_eq!(id.to_string(), raw.to_string());
        assert!("not-a-uuid".parse::<GrantId>().is_err());
    }
}
