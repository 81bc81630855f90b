//! `powernodectl governance …`, `powernodectl doctor [PEER]`, `powernodectl peer cert renew`.

use powernode_client::OperatorClient;
use powernode_client::governance::{CheckStatus, CheckView, DiagnosisView, ReportsQuery};
use powernode_domain::PeerId;

use crate::CtlError;
use crate::cli::GovernanceCommand;
use crate::output::{Output, value};

pub async fn run(
    client: &OperatorClient,
    out: &Output,
    c: GovernanceCommand,
) -> Result<(), CtlError> {
    match c {
        GovernanceCommand::Scan => out.report(&value(&client.governance_scan().await?)),
        GovernanceCommand::Report { id: None } => {
            out.report(&value(&client.governance_latest().await?));
        }
        GovernanceCommand::Report { id: Some(id) } => {
            out.report(&value(&client.governance_report(id).await?));
        }
        GovernanceCommand::List { limit } => out.reports(&value(
            &client
                .governance_reports(&ReportsQuery { limit: Some(limit) })
                .await?,
        )),
    }
    Ok(())
}

pub async fn renew_certificate(
    client: &OperatorClient,
    out: &Output,
    id: PeerId,
) -> Result<(), CtlError> {
    let renewed = value(&client.renew_peer_certificate(id).await?);
    out.done(
        &renewed,
        &format!(
            "Renewed our client certificate for peer {id}: serial {}, valid until {}",
            crate::output::text(&renewed["serial"]),
            crate::output::text(&renewed["not_after"]),
        ),
    );
    Ok(())
}

/// The doctor. An API or database that cannot answer is itself a failing check (printed like
/// the others), so the command always says what is wrong; exit 1 when anything fails.
pub async fn doctor(
    client: &OperatorClient,
    out: &Output,
    peer: Option<PeerId>,
) -> Result<(), CtlError> {
    let answer = match peer {
        Some(id) => client.peer_diagnosis(id).await,
        None => client.diagnosis().await,
    };
    let diagnosis = match answer {
        Ok(d) => d,
        Err(e) => {
            let failed = unreachable_check(client.base(), e)?;
            DiagnosisView {
                peer_id: peer.map(PeerId::uuid),
                status: CheckStatus::Fail,
                checks: vec![failed],
                ran_at: time::OffsetDateTime::now_utc(),
            }
        }
    };
    out.diagnosis(&value(&diagnosis));
    if diagnosis.status == CheckStatus::Fail {
        return Err(CtlError::Silent);
    }
    Ok(())
}

/// The API could not run the diagnosis: no answer (`api`), or the database behind it is down
/// (`postgresql`). Anything else (403, 404) is the caller's error, not a check.
fn unreachable_check(base: &str, e: powernode_client::Error) -> Result<CheckView, CtlError> {
    use powernode_client::Error as E;
    match e {
        E::NoAnswer { cause, .. } => Ok(CheckView {
            check: "api".to_owned(),
            status: CheckStatus::Fail,
            evidence: format!("the API at {base} does not answer: {cause}"),
            runbook: "docs/runbook.md#symptom-requests-answer-503-service_unavailable-database-unavailable-or-busy".to_owned(),
            next_step: Some("systemctl status powernode-api; journalctl -u powernode-api -n 50".to_owned()),
        }),
        E::Api { status: 503, body } => Ok(CheckView {
            check: "postgresql".to_owned(),
            status: CheckStatus::Fail,
            evidence: format!("503 {}: {}", body.code, body.error),
            runbook: "docs/runbook.md#symptom-requests-answer-503-service_unavailable-database-unavailable-or-busy".to_owned(),
            next_step: Some("pg_isready -d \"$POWERNODE_DATABASE_URL\"; journalctl -u postgresql".to_owned()),
        }),
        other => Err(other.into()),
    }
}
