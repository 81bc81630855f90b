//! Fail points for the tests and `scripts/dev chaos` (cargo feature `failpoints`, the `fail`
//! crate): places where a process must die or stall at an exact moment that timing cannot hit
//! (mid-transaction, between a claim and its record). Without the feature they compile to
//! nothing; with it they do nothing unless configured (`FAILPOINTS=<name>=pause` in a process's
//! environment, or `fail::cfg` in an in-process test).

/// Reads `FAILPOINTS` for this process (kept for its lifetime).
#[cfg(feature = "failpoints")]
pub fn setup() -> Option<fail::FailScenario<'static>> {
    std::env::var_os("FAILPOINTS").map(|_| fail::FailScenario::setup())
}

#[cfg(not(feature = "failpoints"))]
pub fn setup() -> Option<()> {
    None
}

/// A named point: logs `failpoint <name> reached` when it is configured (the chaos harness waits
/// for that line before it kills the process), then applies its action.
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        if fail::list().iter().any(|(n, _)| n == name) {
            tracing::warn!("failpoint {name} reached");
        }
        fail::fail_point!(name);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
