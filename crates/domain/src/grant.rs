//! Grants (SPEC §6): the decision over a request and its explanation, one pure function.
//! Dimensions are checked in SPEC order; the first failure is the answer, and `explain` reports
//! every check so operators see the whole picture (the runbook's `applies_to?`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::values::InvalidValue;

/// What a grant allows on a resource.
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
pub enum Scope {
    Read,
    Write,
}

/// The dimensions of SPEC §6, in the order they are checked.
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
pub enum Dimension {
    Expired,
    Revoked,
    ResourceKind,
    ResourceId,
    Permission,
    Instance,
    Network,
    SourceIp,
}

/// Grant lifetimes in days (defaults of the `POWERNODE_GRANT_TTL_DAYS_*` settings): the default
/// at issue and renewal, and the most an operator may set.
pub const DEFAULT_TTL_DAYS: u32 = 30;
pub const MAX_TTL_DAYS: u32 = 365;
/// Auto-renewal (SPEC §6): a live `auto_renew` grant of a live peer is renewed once it expires
/// within this many days, to the default lifetime from then (`POWERNODE_GRANT_RENEW_WINDOW_DAYS`).
pub const AUTO_RENEW_WITHIN_DAYS: u32 = 7;

/// The grant lifetime settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub default_days: u32,
    pub max_days: u32,
    pub renew_window_days: u32,
}

impl Lifetimes {
    /// The lifetime a caller asked for, or the default; `Err` names the allowed range.
    pub fn resolve(&self, days: Option<u32>) -> Result<u32, String> {
        let days = days.unwrap_or(self.default_days);
        if (1..=self.max_days).contains(&days) {
            Ok(days)
        } else {
            Err(format!("must be between 1 and {}", self.max_days))
        }
    }
}

/// A grant's allowlists; an empty list leaves that axis unrestricted.
#[derive(Debug, Clone)]
pub struct GrantScope {
    pub resource_kind: String,
    pub resource_id: Option<String>,
    pub permission_scopes: Vec<Scope>,
    pub node_instance_ids: Vec<String>,
    pub sdwan_network_ids: Vec<String>,
    pub source_cidrs: Vec<IpNet>,
    /// The stored allowlist had an entry that could not be read: the source check fails for
    /// every address (an unreadable allowlist never widens to "any source").
    pub source_cidrs_unreadable: bool,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
}

/// The calling context of one request.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub resource_kind: &'a str,
    pub resource_id: &'a str,
    pub scope: Scope,
    /// The caller's instance id (URI SAN of its client certificate).
    pub instance_id: Option<&'a str>,
    /// `X-Sdwan-Network`, if sent.
    pub network: Option<&'a str>,
    pub source_ip: IpAddr,
    /// Database clock.
    pub now: OffsetDateTime,
}

/// One check of `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub dimension: Dimension,
    pub ok: bool,
    pub why: String,
}

/// A refusal: the failing dimension and the operator/peer-facing message, which names the
/// supplied value and never the allowlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grant scope mismatch: {reason}")]
pub struct Denial {
    pub dimension: Dimension,
    pub reason: String,
}

fn listed<'a>(allow: &'a [String], value: Option<&'a str>) -> bool {
    allow.is_empty() || value.is_some_and(|v| allow.iter().any(|a| a == v))
}

/// Every check, in order, with why it passed or failed.
pub fn explain(grant: &GrantScope, ctx: &Context<'_>) -> Vec<Check> {
    let at = grant
        .expires_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| grant.expires_at.to_string());
    let shown = |v: Option<&str>| v.unwrap_or("(none)").to_owned();
    let check = |dimension, ok, why: String| Check { dimension, ok, why };
    vec![
        check(
            Dimension::Expired,
            grant.expires_at > ctx.now,
            if grant.expires_at > ctx.now {
                format!("valid until {at}")
            } else {
                format!("expired at {at}")
            },
        ),
        check(
            Dimension::Revoked,
            !grant.revoked,
            if grant.revoked {
                "revoked".to_owned()
            } else {
                "not revoked".to_owned()
            },
        ),
        check(
            Dimension::ResourceKind,
            grant.resource_kind == ctx.resource_kind,
            format!(
                "resource_kind {} {}",
                ctx.resource_kind,
                if grant.resource_kind == ctx.resource_kind {
                    "matches"
                } else {
                    "is not the granted kind"
                }
            ),
        ),
        {
            let ok = grant
                .resource_id
                .as_deref()
                .is_none_or(|id| id == ctx.resource_id);
            check(
                Dimension::ResourceId,
                ok,
                match (&grant.resource_id, ok) {
                    (None, _) => "any resource id of the kind".to_owned(),
                    (Some(_), true) => format!("resource_id {} matches", ctx.resource_id),
                    (Some(_), false) => {
                        format!("resource_id {} is not the granted one", ctx.resource_id)
                    }
                },
            )
        },
        {
            let ok = grant.permission_scopes.contains(&ctx.scope);
            check(
                Dimension::Permission,
                ok,
                format!(
                    "permission {} {}",
                    ctx.scope,
                    if ok { "granted" } else { "not granted" }
                ),
            )
        },
        {
            let ok = listed(&grant.node_instance_ids, ctx.instance_id);
            check(
                Dimension::Instance,
                ok,
                if grant.node_instance_ids.is_empty() {
                    "any instance".to_owned()
                } else {
                    format!(
                        "instance {} {}",
                        shown(ctx.instance_id),
                        if ok {
                            "allowed"
                        } else {
                            "not in the allowlist"
                        }
                    )
                },
            )
        },
        {
            let ok = listed(&grant.sdwan_network_ids, ctx.network);
            check(
                Dimension::Network,
                ok,
                if grant.sdwan_network_ids.is_empty() {
                    "any network".to_owned()
                } else {
                    format!(
                        "network {} {}",
                        shown(ctx.network),
                        if ok {
                            "allowed"
                        } else {
                            "not in the allowlist"
                        }
                    )
                },
            )
        },
        {
            let ok = !grant.source_cidrs_unreadable
                && (grant.source_cidrs.is_empty()
                    || grant
                        .source_cidrs
                        .iter()
                        .any(|n| n.contains(&ctx.source_ip)));
            check(
                Dimension::SourceIp,
                ok,
                if grant.source_cidrs_unreadable {
                    "source_cidrs unreadable; no source address is allowed".to_owned()
                } else if grant.source_cidrs.is_empty() {
                    "any source address".to_owned()
                } else {
                    format!(
                        "source_ip {} {}",
                        ctx.source_ip,
                        if ok {
                            "allowed"
                        } else {
                            "not in the allowlist"
                        }
                    )
                },
            )
        },
    ]
}

/// The decision: the first failing check, in SPEC order.
pub fn decide(grant: &GrantScope, ctx: &Context<'_>) -> Result<(), Denial> {
    let Some(failed) = explain(grant, ctx).into_iter().find(|c| !c.ok) else {
        return Ok(());
    };
    let reason = match failed.dimension {
        Dimension::Expired | Dimension::Revoked => failed.why,
        Dimension::ResourceKind => format!("resource_kind {} not allowed", ctx.resource_kind),
        Dimension::ResourceId => format!("resource_id {} not allowed", ctx.resource_id),
        Dimension::Permission => format!("permission {} not allowed", ctx.scope),
        Dimension::Instance => format!(
            "instance {} not allowed",
            ctx.instance_id.unwrap_or("(none)")
        ),
        Dimension::Network => format!("network {} not allowed", ctx.network.unwrap_or("(none)")),
        Dimension::SourceIp => format!("source_ip {} not allowed", ctx.source_ip),
    };
    Err(Denial {
        dimension: failed.dimension,
        reason,
    })
}

/// The caller's address for `source_ip`: the TCP peer, unless it is a trusted proxy; then
/// `X-Forwarded-For` (`forwarded`, left to right as sent) is read from the right, skipping
/// trusted proxies, and the first address that is not one is the client. The left-most
/// entries are whatever the client wrote, so they are believed only when every proxy after
/// them is trusted.
pub fn client_address(tcp: IpAddr, forwarded: &[IpAddr], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&tcp) {
        return tcp;
    }
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(tcp)
}

/// Parses an allowlist CIDR (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
pub fn parse_cidr(raw: &str) -> Result<IpNet, InvalidValue> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| InvalidValue(format!("{raw:?} is not a CIDR")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn grant() -> GrantScope {
        GrantScope {
            resource_kind: "sdwan_config".to_owned(),
            resource_id: Some("net-1".to_owned()),
            permission_scopes: vec![Scope::Read],
            node_instance_ids: vec!["b-instance".to_owned()],
            sdwan_network_ids: vec!["overlay-1".to_owned()],
            source_cidrs: vec![parse_cidr("10.0.0.0/8").unwrap()],
            source_cidrs_unreadable: false,
            expires_at: datetime!(2026-12-29 12:00 UTC),
            revoked: false,
        }
    }

    fn ctx() -> Context<'static> {
        Context {
            resource_kind: "sdwan_config",
            resource_id: "net-1",
            scope: Scope::Read,
            instance_id: Some("b-instance"),
            network: Some("overlay-1"),
            source_ip: "10.1.2.3".parse().unwrap(),
            now: NOW,
        }
    }

    #[test]
    fn a_matching_request_is_allowed() {
        assert_eq!(decide(&grant(), &ctx()), Ok(()));
        assert!(explain(&grant(), &ctx()).iter().all(|c| c.ok));
    }

    #[test]
    fn each_dimension_refuses_with_the_supplied_value_never_the_allowlist() {
        type Change = Box<dyn Fn(&mut GrantScope, &mut Context<'static>)>;
        let cases: Vec<(Change, Dimension, &str)> = vec![
            (
                Box::new(|g, _| g.expires_at = datetime!(2026-11-01 00:00 UTC)),
                Dimension::Expired,
                "grant scope mismatch: expired at 2026-11-01T00:00:00Z",
            ),
            (
                Box::new(|g, _| g.revoked = true),
                Dimension::Revoked,
                "grant scope mismatch: revoked",
            ),
            (
                Box::new(|_, c| c.resource_kind = "other"),
                Dimension::ResourceKind,
                "grant scope mismatch: resource_kind other not allowed",
            ),
            (
                Box::new(|_, c| c.resource_id = "net-2"),
                Dimension::ResourceId,
                "grant scope mismatch: resource_id net-2 not allowed",
            ),
            (
                Box::new(|_, c| c.scope = Scope::Write),
                Dimension::Permission,
                "grant scope mismatch: permission write not allowed",
            ),
            (
                Box::new(|_, c| c.instance_id = Some("c-instance")),
                Dimension::Instance,
                "grant scope mismatch: instance c-instance not allowed",
            ),
            (
                Box::new(|_, c| c.network = None),
                Dimension::Network,
                "grant scope mismatch: network (none) not allowed",
            ),
            (
                Box::new(|_, c| c.source_ip = "192.168.1.1".parse().unwrap()),
                Dimension::SourceIp,
                "grant scope mismatch: source_ip 192.168.1.1 not allowed",
            ),
        ];
        for (change, dimension, message) in cases {
            let (mut g, mut c) = (grant(), ctx());
            change(&mut g, &mut c);
            let denial = decide(&g, &c).unwrap_err();
            assert_eq!(
                (denial.dimension, denial.to_string().as_str()),
                (dimension, message)
            );
            for allowlisted in ["10.0.0.0/8", "b-instance", "overlay-1"] {
                assert!(!denial.to_string().contains(allowlisted), "{denial}");
            }
        }
    }

    #[test]
    fn empty_allowlists_are_unrestricted_and_ids_optional() {
        let mut g = grant();
        g.resource_id = None;
        g.node_instance_ids.clear();
        g.sdwan_network_ids.clear();
        g.source_cidrs.clear();
        let mut c = ctx();
        c.resource_id = "anything";
        c.instance_id = None;
        c.network = None;
        c.source_ip = "203.0.113.9".parse().unwrap();
        assert_eq!(decide(&g, &c), Ok(()));
    }

    #[test]
    fn cidrs_parse_with_bare_addresses() {
        assert!(
            parse_cidr("192.0.2.1")
                .unwrap()
                .contains(&"192.0.2.1".parse::<IpAddr>().unwrap())
        );
        assert!(parse_cidr("fd00::/8").is_ok());
        assert_eq!(
            parse_cidr("nope").unwrap_err().to_string(),
            "\"nope\" is not a CIDR"
        );
    }

    proptest! {
        #[test]
        fn the_decision_is_the_first_failed_check_of_explain(
            expired in any::<bool>(), revoked in any::<bool>(), kind_ok in any::<bool>(),
            id in prop::option::of(any::<bool>()), write in any::<bool>(), read_granted in any::<bool>(),
            inst in prop::option::of(any::<bool>()), net in prop::option::of(any::<bool>()),
            cidr in prop::option::of(any::<bool>()),
        ) {
            let mut g = grant();
            if expired { g.expires_at = datetime!(2026-01-01 00:00 UTC); }
            g.revoked = revoked;
            g.resource_id = id.map(|m| if m { "net-1".to_owned() } else { "net-9".to_owned() });
            g.permission_scopes = if read_granted { vec![Scope::Read] } else { vec![Scope::Write] };
            g.node_instance_ids = inst.map_or(vec![], |m| vec![if m { "b-instance" } else { "x" }.to_owned()]);
            g.sdwan_network_ids = net.map_or(vec![], |m| vec![if m { "overlay-1" } else { "y" }.to_owned()]);
            g.source_cidrs = cidr.map_or(vec![], |m| vec![parse_cidr(if m { "10.0.0.0/8" } else { "172.16.0.0/12" }).unwrap()]);
            let mut c = ctx();
            if !kind_ok { c.resource_kind = "other"; }
            if write { c.scope = Scope::Write; }
            let checks = explain(&g, &c);
            let first_failed = checks.iter().find(|ch| !ch.ok).map(|ch| ch.dimension);
            prop_assert_eq!(decide(&g, &c).err().map(|d| d.dimension), first_failed);
            prop_assert_eq!(checks.len(), 8);
        }
    }

    #[test]
    fn an_unreadable_allowlist_denies_every_source_even_when_empty() {
        let mut g = grant();
        g.source_cidrs.clear();
        g.source_cidrs_unreadable = true;
        let denial = decide(&g, &ctx()).unwrap_err();
        assert_eq!(denial.dimension, Dimension::SourceIp);
        let check = explain(&g, &ctx()).pop().unwrap();
        assert_eq!(
            check.why,
            "source_cidrs unreadable; no source address is allowed"
        );
    }

    #[test]
    fn the_client_address_is_the_right_most_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = [parse_cidr("10.0.0.0/8").unwrap()];
        // Not from a proxy: the TCP peer, whatever the header says.
        assert_eq!(
            client_address(ip("203.0.113.5"), &[ip("1.1.1.1")], &trusted),
            ip("203.0.113.5")
        );
        // From a proxy: the right-most hop that is not a proxy, not the spoofable left-most.
        let chain = [ip("6.6.6.6"), ip("198.51.100.7"), ip("10.0.0.9")];
        assert_eq!(
            client_address(ip("10.0.0.1"), &chain, &trusted),
            ip("198.51.100.7")
        );
        // Every hop a proxy: the left-most; no header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.1"), &[ip("10.0.0.3"), ip("10.0.0.2")], &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &[], &trusted),
            ip("10.0.0.1")
        );
    }
}
