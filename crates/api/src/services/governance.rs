//! Governance (SPEC §9.1) and event retention (§9.2). A scan is one transaction: serialise
//! scans, read the previous report, observe (set-based), judge (domain), persist the report and
//! its `governance.scan_completed` event.

use std::collections::{HashMap, HashSet};

use powernode_client::governance::{
    FindingView, ReportSummary, ReportView, ReportsQuery, RetentionOutcome, SeverityCounts,
};
use powernode_domain::Permission;
use powernode_domain::events::{EventKind, EventSource};
use powernode_domain::governance::{self, Counts, Finding};
use powernode_store::events::{self as fleet, NewEvent, RETENTION_BATCH};
use powernode_store::governance::{self as store, Report};
use powernode_store::operators::Operator;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::{Ctx, Worker, require};

/// Who asked for a scan (`reports.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Operator,
    Mcp,
}

impl Trigger {
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Operator => "operator",
            Trigger::Mcp => "mcp",
        }
    }
}

/// An operator's scan now (`system.federation.manage`); `trigger` is the surface it came from.
pub async fn scan_for(
    ctx: &Ctx,
    operator: &Operator,
    trigger: Trigger,
) -> Result<ReportView, ApiError> {
    require(operator, Permission::FederationManage)?;
    scan(ctx, trigger, Some(operator.id)).await
}

/// The `federation_governance` schedule's scan; the worker gets the summary (the report is
/// stored, and `governance latest` shows it).
pub async fn scheduled_scan(ctx: &Ctx, _worker: &Worker) -> Result<ReportSummary, ApiError> {
    scan(ctx, Trigger::Schedule, None).await.map(summary_of)
}

fn summary_of(v: ReportView) -> ReportSummary {
    ReportSummary {
        id: v.id,
        trigger: v.trigger,
        requested_by: v.requested_by,
        started_at: v.started_at,
        finished_at: v.finished_at,
        counts: v.counts,
        new: v.new.len(),
        resolved: v.resolved.len(),
    }
}

fn view_of(f: Finding, first_seen_at: OffsetDateTime) -> FindingView {
    FindingView {
        kind: f.kind.to_string(),
        severity: f.severity.to_string(),
        subject_type: f.subject_type.to_string(),
        subject_id: f.subject_id,
        peer_id: f.peer_id,
        message: f.message,
        payload: f.payload,
        fingerprint: f.fingerprint,
        first_seen_at,
    }
}

fn counts_view(c: Counts) -> SeverityCounts {
    SeverityCounts {
        low: c.low,
        medium: c.medium,
        high: c.high,
        critical: c.critical,
    }
}

/// A stored report as the wire has it; a row that does not read back is an internal error.
fn report_view(r: Report) -> Result<ReportView, ApiError> {
    let findings: Vec<FindingView> = serde_json::from_value(r.findings)
        .map_err(|e| internal("governance report findings", e))?;
    let resolved_findings: Vec<FindingView> = serde_json::from_value(r.resolved_findings)
        .map_err(|e| internal("governance report resolved findings", e))?;
    let counts: SeverityCounts =
        serde_json::from_value(r.counts).map_err(|e| internal("governance report counts", e))?;
    Ok(ReportView {
        id: r.id,
        trigger: r.trigger,
        requested_by: r.requested_by,
        started_at: r.started_at,
        finished_at: r.finished_at,
        counts,
        findings,
        new: r.new_fingerprints.into_iter().flatten().collect(),
        resolved: resolved_findings
            .iter()
            .map(|f| f.fingerprint.clone())
            .collect(),
        resolved_findings,
    })
}

async fn scan(
    ctx: &Ctx,
    trigger: Trigger,
    requested_by: Option<Uuid>,
) -> Result<ReportView, ApiError> {
    let thresholds = ctx.settings.governance;
    let own_prefix = ctx.settings.federation_prefix.map(|p| p.to_string());
    // Memory: the report is held once, as the wire types; its JSON columns are written as text
    // serialized straight from them, the previous report is read the same way, and nothing is
    // read back.
    let view = db::transaction(&ctx.db, move |conn| {
        store::lock_scans(conn)?;
        let started_at = powernode_store::clock_now(conn)?;
        let previous: Vec<FindingView> = match store::latest_findings(conn)? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| internal("previous governance report", e))?,
            None => Vec::new(),
        };
        let first_seen: HashMap<&str, OffsetDateTime> = previous
            .iter()
            .map(|f| (f.fingerprint.as_str(), f.first_seen_at))
            .collect();
        let mut seen = HashSet::new();
        let mut judged: Vec<Finding> = store::observe(conn, &thresholds, own_prefix.as_deref())?
            .into_iter()
            .map(|o| governance::judge(o, &thresholds))
            .filter(|f| seen.insert(f.fingerprint.clone()))
            .collect();
        // Worst first, then by kind and subject: a stable order for people and diffs.
        judged.sort_by(|a, b| {
            (
                std::cmp::Reverse(a.severity),
                a.kind.as_ref(),
                &a.subject_id,
            )
                .cmp(&(
                    std::cmp::Reverse(b.severity),
                    b.kind.as_ref(),
                    &b.subject_id,
                ))
        });
        let counts = Counts::of(&judged);
        let new: Vec<String> = judged
            .iter()
            .filter(|f| !first_seen.contains_key(f.fingerprint.as_str()))
            .map(|f| f.fingerprint.clone())
            .collect();
        let findings: Vec<FindingView> = judged
            .into_iter()
            .map(|f| {
                let at = first_seen
                    .get(f.fingerprint.as_str())
                    .copied()
                    .unwrap_or(started_at);
                view_of(f, at)
            })
            .collect();
        drop(first_seen);
        let resolved_findings: Vec<FindingView> = previous
            .into_iter()
            .filter(|f| !seen.contains(&f.fingerprint))
            .collect();
        let finished_at = powernode_store::clock_now(conn)?;
        let id = Uuid::now_v7();
        let counts_json =
            serde_json::to_string(&counts_view(counts)).map_err(|e| internal("counts", e))?;
        let findings_json =
            serde_json::to_string(&findings).map_err(|e| internal("findings", e))?;
        let resolved_json =
            serde_json::to_string(&resolved_findings).map_err(|e| internal("resolved", e))?;
        store::insert(
            conn,
            &store::NewReport {
                id,
                trigger: trigger.as_str(),
                requested_by,
                started_at,
                finished_at,
                counts: &counts_json,
                findings: &findings_json,
                new_fingerprints: &new,
                resolved_findings: &resolved_json,
            },
        )?;
        drop((counts_json, findings_json, resolved_json));
        let payload = json!({
            "report_id": id,
            "trigger": trigger.as_str(),
            "counts": counts_view(counts),
            "findings": counts.total(),
            "new": new.len(),
            "resolved": resolved_findings.len(),
        });
        fleet::insert(
            conn,
            &NewEvent {
                kind: EventKind::GovernanceScanCompleted,
                severity: counts.worst(),
                source: EventSource::Governance,
                peer_id: None,
                payload: &payload,
                correlation_id: None,
            },
        )?;
        Ok(ReportView {
            id,
            trigger: trigger.as_str().to_owned(),
            requested_by,
            started_at,
            finished_at,
            counts: counts_view(counts),
            findings,
            new,
            resolved: resolved_findings
                .iter()
                .map(|f| f.fingerprint.clone())
                .collect(),
            resolved_findings,
        })
    })
    .await
    .context("governance scan failed")?;
    tracing::info!(
        report_id = %view.id,
        trigger = %view.trigger,
        findings = view.findings.len(),
        high = view.counts.high + view.counts.critical,
        new = view.new.len(),
        resolved = view.resolved.len(),
        "governance scan complete"
    );
    Ok(view)
}

/// The newest report (404 before the first scan).
pub async fn latest(ctx: &Ctx, operator: &Operator) -> Result<ReportView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let report = db::run(&ctx.db, store::latest)
        .await
        .context("governance report lookup failed")?
        .ok_or_else(|| {
            ApiError::NotFound(
                "no governance report yet: run `powernodectl governance scan` (the federation_governance schedule runs one hourly)".to_owned(),
            )
        })?;
    report_view(report)
}

pub async fn report(ctx: &Ctx, operator: &Operator, id: Uuid) -> Result<ReportView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let report = db::run(&ctx.db, move |conn| store::find(conn, id))
        .await
        .context("governance report lookup failed")?
        .ok_or_else(|| ApiError::NotFound(format!("governance report {id} not found")))?;
    report_view(report)
}

/// Reports newest first, without their findings.
pub async fn reports(
    ctx: &Ctx,
    operator: &Operator,
    q: ReportsQuery,
) -> Result<Vec<ReportSummary>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1-100"));
    }
    let rows = db::run(&ctx.db, move |conn| store::list(conn, limit))
        .await
        .context("governance report list failed")?;
    rows.into_iter()
        .map(|r| report_view(r).map(summary_of))
        .collect()
}

/// SPEC §9.2: expired events in batches of at most 10,000 rows (each its own short
/// statement, so no long locks), governance reports past their retention, idempotency keys
/// past 24 h.
pub async fn retention(ctx: &Ctx, _worker: &Worker) -> Result<RetentionOutcome, ApiError> {
    let r = ctx.settings.retention;
    let mut deleted = 0;
    let mut batches = 0;
    loop {
        let n = db::run(&ctx.db, move |conn| {
            fleet::delete_expired_batch(conn, r.event_days, r.event_high_days, RETENTION_BATCH)
        })
        .await
        .context("event retention failed")?;
        if n > 0 {
            batches += 1;
            deleted += n;
        }
        if n < RETENTION_BATCH as usize {
            break;
        }
    }
    let (reports, keys, ticks, ran_at) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            let reports = store::delete_older_than(conn, r.report_days)?;
            // Both tables go in batches of at most RETENTION_BATCH rows per statement.
            let mut drain = |delete: fn(
                &mut diesel::PgConnection,
                u32,
                u32,
            )
                -> Result<usize, powernode_store::StoreError>|
             -> Result<usize, powernode_store::StoreError> {
                let mut total = 0;
                loop {
                    let n = delete(
                        conn,
                        powernode_store::idempotency::TTL_HOURS,
                        RETENTION_BATCH,
                    )?;
                    total += n;
                    if n < RETENTION_BATCH as usize {
                        return Ok(total);
                    }
                }
            };
            let keys = drain(powernode_store::idempotency::delete_older_than)?;
            let ticks = drain(powernode_store::worker_ticks::delete_older_than)?;
            Ok((reports, keys, ticks, powernode_store::database_now(conn)?))
        },
    )
    .await
    .context("retention failed")?;
    tracing::info!(
        deleted,
        batches,
        governance_reports_deleted = reports,
        idempotency_keys_deleted = keys,
        worker_ticks_deleted = ticks,
        "fleet event retention complete"
    );
    Ok(RetentionOutcome {
        deleted,
        batches,
        governance_reports_deleted: reports,
        idempotency_keys_deleted: keys,
        worker_ticks_deleted: ticks,
        ran_at,
    })
}
