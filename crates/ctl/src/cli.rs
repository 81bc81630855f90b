//! The command line: every command group and its arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use powernode_domain::{ApprovalId, GrantId, OperatorId, PeerId};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "powernodectl",
    version,
    about = "Operate a Powernode Federation instance"
)]
pub struct Cli {
    /// Operator API base URL [env: POWERNODE_API_URL; config `url`; default http://127.0.0.1:3000]
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// TOML file with `url` and `token` [default: ~/.config/powernode/powernodectl.toml]
    #[arg(long, global = true, env = "POWERNODECTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Federation peers.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Federation with other instances.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Grants of scoped access to shared resources.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Fleet events, newest first.
    Events(EventsArgs),
    /// Operators and their tokens (needs system.operators.admin).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Who the token belongs to and what it may do.
    Whoami,
    /// Worker schedules as the workers report them.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// The approval queue (propose, accept and revoke wait here under require_approval).
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Agents that act on approvals (the SDWAN Manager).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Intervention policies of gated actions, and emergency lowering.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Governance reports: scan now, or show a report (findings by severity).
    #[command(subcommand)]
    Governance(GovernanceCommand),
    /// Run the runbook's diagnostic steps for the instance, or for one peer; exits 1 when a
    /// check fails.
    Doctor {
        /// A peer id: diagnose that peer instead of the instance.
        peer: Option<PeerId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// Scan now (needs system.federation.manage) and print the report.
    Scan,
    /// The latest report, or the one with this id.
    Report { id: Option<Uuid> },
    /// Recent reports, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approval requests, newest first (pending by default).
    List {
        /// pending, approved, rejected, expired, cancelled or all.
        #[arg(long)]
        status: Option<String>,
    },
    Show {
        id: ApprovalId,
    },
    /// Approve (needs system.infra_tasks.control; not your own request).
    Approve {
        id: ApprovalId,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject (needs system.infra_tasks.control; not your own request).
    Reject {
        id: ApprovalId,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Withdraw your own pending request.
    Cancel {
        id: ApprovalId,
        #[arg(long)]
        comment: Option<String>,
    },
    /// What your executed request produced (an approved propose's acceptance token), once.
    Result {
        id: ApprovalId,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    List,
    /// Pause: approved requests wait (they stay decidable); timeouts still apply.
    Pause {
        /// e.g. "SDWAN Manager".
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Resume {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// One action's policy, or all of them.
    Show { action: Option<String> },
    /// Lower a policy for a bounded window; it restores itself when the window ends.
    Lower {
        /// e.g. system.federation_peer_revoke.
        action: String,
        /// The less strict policy, e.g. notify_and_proceed.
        #[arg(long)]
        to: String,
        /// Window, e.g. 30m, 2h (at most 24h).
        #[arg(long = "for", value_parser = parse_ttl)]
        window: u64,
        #[arg(long)]
        reason: String,
    },
    /// End a lowering now.
    Restore { action: String },
    /// Change a policy permanently.
    Set {
        action: String,
        /// auto_approve, notify_and_proceed, require_approval or blocked.
        #[arg(long)]
        policy: String,
        /// How long a request waits for a decision, e.g. 4h.
        #[arg(long, value_parser = parse_ttl)]
        timeout: u64,
        #[arg(long, default_value = "reject")]
        timeout_action: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Issue a grant to a peer; prints its bearer token once.
    Issue {
        /// The peer (its id on this instance).
        peer: PeerId,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        resource_id: Option<String>,
        /// Repeat: read, write.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long = "instance")]
        instances: Vec<String>,
        #[arg(long = "network")]
        networks: Vec<String>,
        #[arg(long = "cidr")]
        cidrs: Vec<String>,
        #[arg(long)]
        ttl_days: Option<u32>,
        #[arg(long)]
        auto_renew: bool,
    },
    /// List grants (newest first).
    List {
        #[arg(long)]
        peer: Option<PeerId>,
        /// active, expired or revoked.
        #[arg(long)]
        lifecycle: Option<String>,
    },
    Show {
        id: GrantId,
    },
    Revoke {
        id: GrantId,
        #[arg(long)]
        reason: String,
    },
    Renew {
        id: GrantId,
        #[arg(long)]
        ttl_days: Option<u32>,
    },
    /// Every check of a grant against a calling context (the runbook's `applies_to?`).
    Explain {
        id: GrantId,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        resource_id: String,
        #[arg(long, default_value = "read")]
        scope: String,
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        source_ip: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Accept another instance's acceptance token (pins its CA, exchanges certificates).
    Accept { token: String },
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Last success and failure of each schedule (reported by the workers after every tick).
    Status,
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// List peers.
    List {
        #[arg(long)]
        status: Option<String>,
        /// Page size (1-500, default 100).
        #[arg(long)]
        limit: Option<i64>,
        /// The cursor printed after the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Everything about one peer, including heartbeat_stale and degraded_reason.
    Show { id: PeerId },
    /// Propose a peer; prints its acceptance token once.
    Propose(ProposeArgs),
    /// Acceptance tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Our client certificate for the peer.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Suspend a peer (stops reconciliation noise; certificates are kept).
    Suspend {
        id: PeerId,
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended peer (it returns to accepted and re-handshakes).
    Resume {
        id: PeerId,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke a peer (terminal).
    Revoke {
        id: PeerId,
        #[arg(long)]
        reason: String,
    },
    /// Delete a proposed or revoked peer.
    Delete { id: PeerId },
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// https base URL of the other instance's federation listener.
    #[arg(long = "remote-url")]
    pub remote_url: String,
    #[arg(long, default_value = "platform")]
    pub kind: String,
    /// parent, child or symmetric (required for platform peers).
    #[arg(long)]
    pub role: Option<String>,
    #[arg(long)]
    pub mode: Option<String>,
    /// ULA prefix the peer advertises (fd…::/48, /56 or /64).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Token lifetime, e.g. 1h, 30m, 7d.
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// A drill peer without a token (sandbox only).
    #[arg(long)]
    pub drill: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Renew our outbound client certificate for the peer now (the 75 % rotation, forced).
    Renew { id: PeerId },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Replace a proposed peer's acceptance token (the old one stops working); prints it once.
    Regenerate {
        id: PeerId,
        /// Token lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub peer: Option<Uuid>,
    /// ISO 8601 timestamp, e.g. 2026-11-29T00:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
    /// Only events strictly older than this ISO 8601 timestamp (the next page of a window).
    #[arg(long)]
    pub before: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; prints its token once.
    Create {
        #[arg(long)]
        name: String,
        /// Repeat for several: system.federation.read, system.federation.manage,
        /// system.infra_tasks.control, system.operators.admin.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
    },
    List,
    Disable {
        id: OperatorId,
    },
}

fn parse_ttl(raw: &str) -> Result<u64, String> {
    if let Ok(secs) = raw.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(raw)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{e} (use e.g. 3600, 1h, 30m, 7d)"))
}
