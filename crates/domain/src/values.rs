//! Validated values of a peer row. Each is built only through `parse`; the error text is the
//! `<message>` part of the operator-facing `<field> <message>` (SPEC §10).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};

/// A value that failed validation; `Display` is the message without the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl InvalidValue {
    fn new(msg: impl Into<String>) -> Self {
        InvalidValue(msg.into())
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident),+ $(,)? }, $expected:literal) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
            Display, EnumString, EnumIter, AsRefStr, IntoStaticStr,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                Self::from_str(s).map_err(|_| InvalidValue::new(concat!("must be one of: ", $expected)))
            }
        }
    };
}

text_enum!(
    /// `platform` peers federate fully; `sdwan_only` peers stop at accepted.
    PeerKind { Platform, SdwanOnly },
    "platform, sdwan_only"
);
text_enum!(
    /// Our role relative to the peer.
    SpawnRole { Parent, Child, Symmetric },
    "parent, child, symmetric"
);
text_enum!(
    SpawnMode {
        ManagedChild,
        AutonomousPeer,
        ClusterMember,
        OutOfBand
    },
    "managed_child, autonomous_peer, cluster_member, out_of_band"
);
text_enum!(
    /// Which side created the row.
    PeerOrigin { ProposedHere, AcceptedHere },
    "proposed_here, accepted_here"
);

impl SpawnRole {
    /// B's row mirrors A's role: parent ↔ child, symmetric stays symmetric.
    pub const fn mirrored(self) -> Self {
        match self {
            SpawnRole::Parent => SpawnRole::Child,
            SpawnRole::Child => SpawnRole::Parent,
            SpawnRole::Symmetric => SpawnRole::Symmetric,
        }
    }
}

/// The https base URL of an instance's federation listener, without trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceUrl(String);

impl TryFrom<String> for InstanceUrl {
    type Error = InvalidValue;

    fn try_from(s: String) -> Result<Self, InvalidValue> {
        InstanceUrl::parse(&s)
    }
}

impl From<InstanceUrl> for String {
    fn from(u: InstanceUrl) -> String {
        u.0
    }
}

/// Longest instance URL accepted (it is stored, echoed in every list and carried in tokens).
pub const MAX_INSTANCE_URL_LEN: usize = 2048;
/// DNS limits (RFC 1035): a name of at most 253 characters, labels of at most 63.
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

impl InstanceUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.trim().chars().count() > MAX_INSTANCE_URL_LEN {
            return Err(InvalidValue(format!(
                "must be at most {MAX_INSTANCE_URL_LEN} characters"
            )));
        }
        let url = url::Url::parse(raw.trim())
            .map_err(|_| InvalidValue::new("must be an absolute https URL"))?;
        if url.scheme() != "https" {
            return Err(InvalidValue::new("must be an absolute https URL"));
        }
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(InvalidValue::new("must name a host"));
        }
        if matches!(url.host(), Some(url::Host::Domain(_)))
            && host.split('.').any(|label| label.len() > MAX_LABEL_LEN)
        {
            return Err(InvalidValue(format!(
                "host labels must be at most {MAX_LABEL_LEN} characters"
            )));
        }
        if host.len() > MAX_HOST_LEN {
            return Err(InvalidValue(format!(
                "host must be at most {MAX_HOST_LEN} characters"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue::new("must not contain credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidValue::new("must not contain a query or fragment"));
        }
        let normalised = url.as_str().trim_end_matches('/').to_owned();
        Ok(InstanceUrl(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv6 ULA prefix (`fd…::/48`, `/56` or `/64`) a peer advertises, in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UlaPrefix {
    network: Ipv6Addr,
    len: u8,
}

const ULA_MESSAGE: &str = "must be a /48, /56, or /64 ULA prefix";

impl UlaPrefix {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new(ULA_MESSAGE);
        let (addr, len) = raw.trim().split_once('/').ok_or_else(invalid)?;
        let network: Ipv6Addr = addr.parse().map_err(|_| invalid())?;
        let len: u8 = len.parse().map_err(|_| invalid())?;
        if !matches!(len, 48 | 56 | 64) || network.octets()[0] != 0xfd {
            return Err(invalid());
        }
        // Host bits must be zero: `fd00::1/48` is an address, not a prefix.
        let host_mask = u128::MAX >> len;
        if u128::from(network) & host_mask != 0 {
            return Err(invalid());
        }
        Ok(UlaPrefix { network, len })
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// True when the two prefixes share any address.
    pub fn overlaps(self, other: UlaPrefix) -> bool {
        let shorter = self.len.min(other.len);
        let mask = u128::MAX << (128 - u32::from(shorter));
        u128::from(self.network) & mask == u128::from(other.network) & mask
    }
}

impl fmt::Display for UlaPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_are_bounded_like_dns_names() {
        let label = "a".repeat(63);
        assert!(InstanceUrl::parse(&format!("https://{label}.example.com")).is_ok());
        assert_eq!(
            InstanceUrl::parse(&format!("https://{label}b.example.com"))
                .unwrap_err()
                .to_string(),
            "host labels must be at most 63 characters"
        );
        let long_host = vec!["a".repeat(60); 5].join(".");
        assert_eq!(
            InstanceUrl::parse(&format!("https://{long_host}"))
                .unwrap_err()
                .to_string(),
            "host must be at most 253 characters"
        );
        let long_path = "p".repeat(60_000);
        assert_eq!(
            InstanceUrl::parse(&format!("https://b.example.com/{long_path}"))
                .unwrap_err()
                .to_string(),
            "must be at most 2048 characters"
        );
        assert!(InstanceUrl::parse("https://[fd00::1]:8443").is_ok());
    }

    #[test]
    fn instance_urls_are_https_and_lose_their_trailing_slash() {
        let url = InstanceUrl::parse("https://platform-b.example.com/").unwrap();
        assert_eq!(url.as_str(), "https://platform-b.example.com");
        let url = InstanceUrl::parse("https://127.0.0.1:8443//").unwrap();
        assert_eq!(url.as_str(), "https://127.0.0.1:8443");
        assert_eq!(
            InstanceUrl::parse("http://b.example.com")
                .unwrap_err()
                .to_string(),
            "must be an absolute https URL"
        );
        assert_eq!(
            InstanceUrl::parse("b.example.com").unwrap_err().to_string(),
            "must be an absolute https URL"
        );
        assert_eq!(
            InstanceUrl::parse("https://u:p@b.example.com")
                .unwrap_err()
                .to_string(),
            "must not contain credentials"
        );
        assert_eq!(
            InstanceUrl::parse("https://b.example.com/?x=1")
                .unwrap_err()
                .to_string(),
            "must not contain a query or fragment"
        );
    }

    #[test]
    fn ula_prefixes_accept_only_48_56_64_under_fd() {
        for ok in [
            "fd12:3456:789a::/48",
            "fd00:1:2:3::/64",
            "fdff:ffff:ffff:ff00::/56",
        ] {
            assert!(UlaPrefix::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "fc00::/48",
            "2001:db8::/48",
            "fd12::/32",
            "fd12::/65",
            "fd12::1/64",
            "fd12::",
            "nonsense",
            "fd12::/x",
        ] {
            assert_eq!(
                UlaPrefix::parse(bad).unwrap_err().to_string(),
                "must be a /48, /56, or /64 ULA prefix",
                "{bad}"
            );
        }
        assert_eq!(
            UlaPrefix::parse("fd12:3456:789a:0000::/48")
                .unwrap()
                .to_string(),
            "fd12:3456:789a::/48"
        );
    }

    #[test]
    fn overlapping_prefixes_are_detected() {
        let a = UlaPrefix::parse("fd12:3456:789a::/48").unwrap();
        let b = UlaPrefix::parse("fd12:3456:789a:1::/64").unwrap();
        let c = UlaPrefix::parse("fd12:3456:789b::/48").unwrap();
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c));
    }

    #[test]
    fn enums_parse_their_snake_case_names_with_a_clear_message() {
        assert_eq!(PeerKind::parse("sdwan_only"), Ok(PeerKind::SdwanOnly));
        assert_eq!(
            SpawnRole::parse("boss").unwrap_err().to_string(),
            "must be one of: parent, child, symmetric"
        );
        assert_eq!(SpawnRole::Parent.mirrored(), SpawnRole::Child);
        assert_eq!(SpawnRole::Symmetric.mirrored(), SpawnRole::Symmetric);
        assert_eq!(SpawnMode::OutOfBand.as_str(), "out_of_band");
    }
}
