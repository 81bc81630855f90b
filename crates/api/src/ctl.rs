//! `powernodectl`: the operator CLI. It talks to the operator API over HTTP with a token from
//! `POWERNODE_TOKEN` or a config file, prints tables (or `--json`), and exits non-zero with the
//! API's message when a call fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
        id: String,
    },
    /// Approve (needs system.infra_tasks.control; not your own request).
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject (needs system.infra_tasks.control; not your own request).
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Withdraw your own pending request.
    Cancel {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// What your executed request produced (an approved propose's acceptance token), once.
    Result {
        id: String,
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
        peer: String,
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
        peer: Option<String>,
        /// active, expired or revoked.
        #[arg(long)]
        lifecycle: Option<String>,
    },
    Show {
        id: String,
    },
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Renew {
        id: String,
        #[arg(long)]
        ttl_days: Option<u32>,
    },
    /// Every check of a grant against a calling context (the runbook's `applies_to?`).
    Explain {
        id: String,
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
    },
    /// Everything about one peer, including heartbeat_stale and degraded_reason.
    Show { id: String },
    /// Propose a peer; prints its acceptance token once.
    Propose(ProposeArgs),
    /// Acceptance tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Suspend a peer (stops reconciliation noise; certificates are kept).
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended peer (it returns to accepted and re-handshakes).
    Resume {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke a peer (terminal).
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Delete a proposed or revoked peer.
    Delete { id: String },
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
pub enum TokenCommand {
    /// Replace a proposed peer's acceptance token (the old one stops working); prints it once.
    Regenerate {
        id: String,
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
    pub peer: Option<String>,
    /// ISO 8601 timestamp, e.g. 2026-11-29T00:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
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
        id: String,
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

#[derive(Debug, Serialize, Deserialize)]
struct Config {
    url: String,
    token: Option<String>,
}

/// A failed call, printed as one line.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the API at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{status} {code}: {error}")]
    Api {
        status: u16,
        code: String,
        error: String,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CtlError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let unreachable = |e: reqwest::Error| CtlError::Unreachable {
            url: self.base.clone(),
            cause: e.to_string(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.map_err(unreachable)?;
        if json["success"] == Value::Bool(true) {
            return Ok(json["data"].clone());
        }
        Err(CtlError::Api {
            status,
            code: json["code"].as_str().unwrap_or("UNKNOWN").to_owned(),
            error: json["error"].as_str().unwrap_or("no message").to_owned(),
        })
    }
}

fn load_config(cli: &Cli) -> Result<Config, CtlError> {
    let default_file = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/powernode/powernodectl.toml"));
    let mut figment = Figment::from(Serialized::defaults(Config {
        url: "http://127.0.0.1:3000".to_owned(),
        token: None,
    }));
    match (&cli.config, default_file) {
        (Some(path), _) => figment = figment.merge(Toml::file_exact(path)),
        (None, Some(path)) => figment = figment.merge(Toml::file(path)),
        (None, None) => {}
    }
    figment = figment
        .merge(
            Env::raw()
                .only(&["POWERNODE_API_URL"])
                .map(|_| "url".into()),
        )
        .merge(
            Env::raw()
                .only(&["POWERNODE_TOKEN"])
                .map(|_| "token".into()),
        );
    let mut config: Config = figment
        .extract()
        .map_err(|e| CtlError::Usage(format!("configuration: {e}")))?;
    if let Some(url) = &cli.url {
        config.url.clone_from(url);
    }
    config.url = config.url.trim_end_matches('/').to_owned();
    Ok(config)
}

pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("powernodectl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("powernodectl: {e}");
            match e {
                CtlError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    let config = load_config(&cli)?;
    let token = config.token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        CtlError::Usage(
            "no operator token: set POWERNODE_TOKEN or `token` in ~/.config/powernode/powernodectl.toml"
                .to_owned(),
        )
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CtlError::Usage(e.to_string()))?;
    let client = Client {
        http,
        base: config.url,
        token,
    };
    let out = Output { json: cli.json };
    const PEERS: &str = "/api/v1/system/federation/peers";
    match cli.command {
        Command::Peer(PeerCommand::List { status }) => {
            let path = match status {
                Some(s) => format!("{PEERS}?status={}", urlencode(&s)),
                None => PEERS.to_owned(),
            };
            out.peers(&client.call(Method::GET, &path, None).await?);
        }
        Command::Peer(PeerCommand::Show { id }) => {
            out.peer(
                &client
                    .call(Method::GET, &format!("{PEERS}/{id}"), None)
                    .await?,
            );
        }
        Command::Peer(PeerCommand::Propose(a)) => {
            let body = json!({
                "remote_instance_url": a.remote_url,
                "peer_kind": a.kind,
                "spawn_role": a.role,
                "spawn_mode": a.mode,
                "remote_prefix_advertisement": a.prefix,
                "ttl_seconds": a.ttl,
                "drill": a.drill,
            });
            let data = client.call(Method::POST, PEERS, Some(body)).await?;
            if !out.queued(&data) {
                out.with_token(&data);
            }
        }
        Command::Peer(PeerCommand::Token(TokenCommand::Regenerate { id, ttl })) => {
            let path = format!("{PEERS}/{id}/acceptance_token");
            let body = json!({ "ttl_seconds": ttl });
            out.with_token(&client.call(Method::POST, &path, Some(body)).await?);
        }
        Command::Peer(PeerCommand::Suspend { id, reason }) => {
            let path = format!("{PEERS}/{id}/suspend");
            out.peer(
                &client
                    .call(Method::POST, &path, Some(json!({ "reason": reason })))
                    .await?,
            );
        }
        Command::Peer(PeerCommand::Resume { id, reason }) => {
            let path = format!("{PEERS}/{id}/resume");
            out.peer(
                &client
                    .call(Method::POST, &path, Some(json!({ "reason": reason })))
                    .await?,
            );
        }
        Command::Peer(PeerCommand::Revoke { id, reason }) => {
            let path = format!("{PEERS}/{id}/revoke");
            let data = client
                .call(Method::POST, &path, Some(json!({ "reason": reason })))
                .await?;
            if !out.queued(&data) {
                out.peer(&data);
            }
        }
        Command::Peer(PeerCommand::Delete { id }) => {
            let deleted = client
                .call(Method::DELETE, &format!("{PEERS}/{id}"), None)
                .await?;
            out.done(&deleted, &format!("deleted peer {id}"));
        }
        Command::Events(a) => {
            let mut query = Vec::new();
            for (k, v) in [
                ("source", a.source),
                ("kind", a.kind),
                ("peer_id", a.peer),
                ("since", a.since),
                ("limit", a.limit.map(|l| l.to_string())),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let path = if query.is_empty() {
                "/api/v1/system/fleet/events".to_owned()
            } else {
                format!("/api/v1/system/fleet/events?{}", query.join("&"))
            };
            out.events(&client.call(Method::GET, &path, None).await?);
        }
        Command::Operator(OperatorCommand::Create { name, permissions }) => {
            let body = json!({ "name": name, "permissions": permissions });
            let created = client
                .call(Method::POST, "/api/v1/system/operators", Some(body))
                .await?;
            out.operator_token(&created);
        }
        Command::Operator(OperatorCommand::List) => {
            out.operators(
                &client
                    .call(Method::GET, "/api/v1/system/operators", None)
                    .await?,
            );
        }
        Command::Operator(OperatorCommand::Disable { id }) => {
            let path = format!("/api/v1/system/operators/{id}/disable");
            out.operators(&Value::Array(vec![
                client.call(Method::POST, &path, None).await?,
            ]));
        }
        Command::Federation(FederationCommand::Accept { token }) => {
            let body = json!({ "acceptance_token": token });
            let data = client
                .call(Method::POST, &format!("{PEERS}/accept"), Some(body))
                .await?;
            if !out.queued(&data) {
                out.peer(&data);
            }
        }
        Command::Approvals(a) => run_approvals(&client, &out, a).await?,
        Command::Agent(a) => run_agent(&client, &out, a).await?,
        Command::Policy(p) => run_policy(&client, &out, p).await?,
        Command::Grant(g) => run_grant(&client, &out, g).await?,
        Command::Worker(WorkerCommand::Status) => {
            out.worker_status(
                &client
                    .call(Method::GET, "/api/v1/system/worker/status", None)
                    .await?,
            );
        }
        Command::Whoami => {
            out.operators(&Value::Array(vec![
                client
                    .call(Method::GET, "/api/v1/system/operators/me", None)
                    .await?,
            ]));
        }
    }
    Ok(())
}

async fn run_grant(client: &Client, out: &Output, g: GrantCommand) -> Result<(), CtlError> {
    const GRANTS: &str = "/api/v1/system/federation/grants";
    let data = match g {
        GrantCommand::Issue {
            peer,
            kind,
            resource_id,
            scopes,
            instances,
            networks,
            cidrs,
            ttl_days,
            auto_renew,
        } => {
            let body = json!({
                "resource_kind": kind, "resource_id": resource_id, "permission_scopes": scopes,
                "node_instance_ids": instances, "sdwan_network_ids": networks, "source_cidrs": cidrs,
                "ttl_days": ttl_days, "auto_renew": auto_renew,
            });
            let issued = client
                .call(
                    Method::POST,
                    &format!("/api/v1/system/federation/peers/{peer}/grants"),
                    Some(body),
                )
                .await?;
            if !out.json {
                out.grants(&Value::Array(vec![issued["grant"].clone()]));
                println!("\nBearer token (shown once; hand it to the peer's operator):");
                println!("{}", text(&issued["token"]));
                return Ok(());
            }
            issued
        }
        GrantCommand::List { peer, lifecycle } => {
            let mut q = Vec::new();
            if let Some(p) = peer {
                q.push(format!("peer_id={}", urlencode(&p)));
            }
            if let Some(l) = lifecycle {
                q.push(format!("lifecycle={}", urlencode(&l)));
            }
            let path = if q.is_empty() {
                GRANTS.to_owned()
            } else {
                format!("{GRANTS}?{}", q.join("&"))
            };
            let list = client.call(Method::GET, &path, None).await?;
            out.grants(&list);
            return Ok(());
        }
        GrantCommand::Show { id } => {
            client
                .call(Method::GET, &format!("{GRANTS}/{id}"), None)
                .await?
        }
        GrantCommand::Revoke { id, reason } => {
            client
                .call(
                    Method::POST,
                    &format!("{GRANTS}/{id}/revoke"),
                    Some(json!({ "reason": reason })),
                )
                .await?
        }
        GrantCommand::Renew { id, ttl_days } => {
            client
                .call(
                    Method::POST,
                    &format!("{GRANTS}/{id}/renew"),
                    Some(json!({ "ttl_days": ttl_days })),
                )
                .await?
        }
        GrantCommand::Explain {
            id,
            kind,
            resource_id,
            scope,
            instance,
            network,
            source_ip,
        } => {
            let body = json!({
                "resource_kind": kind, "resource_id": resource_id, "scope": scope,
                "instance_id": instance, "network": network, "source_ip": source_ip,
            });
            let e = client
                .call(Method::POST, &format!("{GRANTS}/{id}/explain"), Some(body))
                .await?;
            if !out.json {
                let mut t = table(&["check", "result", "why"]);
                for c in e["checks"].as_array().into_iter().flatten() {
                    let result = if c["ok"] == Value::Bool(true) {
                        "ok"
                    } else {
                        "FAILED"
                    };
                    t.add_row([text(&c["dimension"]), result.to_owned(), text(&c["why"])]);
                }
                println!("{t}");
                println!(
                    "\n{}",
                    if e["allowed"] == Value::Bool(true) {
                        "allowed".to_owned()
                    } else {
                        text(&e["denial"]["error"])
                    }
                );
                return Ok(());
            }
            e
        }
    };
    if out.json {
        out.print_json(&data);
    } else {
        out.grants(&Value::Array(vec![data]));
    }
    Ok(())
}

const APPROVALS: &str = "/api/v1/ai/autonomy/approvals";
const POLICIES: &str = "/api/v1/ai/autonomy/policies";

async fn run_approvals(client: &Client, out: &Output, a: ApprovalsCommand) -> Result<(), CtlError> {
    let decide = |id: String, verb: &'static str, comment: Option<String>| async move {
        client
            .call(
                Method::POST,
                &format!("{APPROVALS}/{}/{verb}", segment(&id)),
                Some(json!({ "comments": comment })),
            )
            .await
    };
    match a {
        ApprovalsCommand::List { status } => {
            let path = match status {
                Some(s) => format!("{APPROVALS}?status={}", urlencode(&s)),
                None => APPROVALS.to_owned(),
            };
            out.approvals(&client.call(Method::GET, &path, None).await?);
        }
        ApprovalsCommand::Show { id } => {
            let path = format!("{APPROVALS}/{}", segment(&id));
            out.approval(&client.call(Method::GET, &path, None).await?);
        }
        ApprovalsCommand::Approve { id, comment } => {
            out.approval(&decide(id, "approve", comment).await?);
        }
        ApprovalsCommand::Reject { id, comment } => {
            out.approval(&decide(id, "reject", comment).await?);
        }
        ApprovalsCommand::Cancel { id, comment } => {
            out.approval(&decide(id, "cancel", comment).await?);
        }
        ApprovalsCommand::Result { id } => {
            let path = format!("{APPROVALS}/{}/claim_result", segment(&id));
            let data = client.call(Method::POST, &path, None).await?;
            if out.json {
                out.print_json(&data);
                return Ok(());
            }
            out.approval(&data["approval_request"]);
            match data["acceptance_token"].as_str() {
                Some(token) => {
                    println!(
                        "\nAcceptance token (shown once; expires {}). Hand it to the other instance's operator over a synchronous channel:",
                        text(&data["approval_request"]["result"]["acceptance_token_expires_at"])
                    );
                    println!("{token}");
                }
                None => println!("\nNo secret result for this request."),
            }
        }
    }
    Ok(())
}

async fn run_agent(client: &Client, out: &Output, a: AgentCommand) -> Result<(), CtlError> {
    let (name, verb, reason) = match a {
        AgentCommand::List => {
            out.agents(&client.call(Method::GET, "/api/v1/ai/agents", None).await?);
            return Ok(());
        }
        AgentCommand::Pause { name, reason } => (name, "pause", reason),
        AgentCommand::Resume { name, reason } => (name, "resume", reason),
    };
    let path = format!("/api/v1/ai/agents/{}/{verb}", segment(&name));
    let agent = client
        .call(Method::POST, &path, Some(json!({ "reason": reason })))
        .await?;
    out.agents(&Value::Array(vec![agent]));
    Ok(())
}

async fn run_policy(client: &Client, out: &Output, p: PolicyCommand) -> Result<(), CtlError> {
    let data = match p {
        PolicyCommand::Show { action: None } => client.call(Method::GET, POLICIES, None).await?,
        PolicyCommand::Show {
            action: Some(action),
        } => {
            let path = format!("{POLICIES}/{}", segment(&action));
            Value::Array(vec![client.call(Method::GET, &path, None).await?])
        }
        PolicyCommand::Lower {
            action,
            to,
            window,
            reason,
        } => {
            let path = format!("{POLICIES}/{}/lower", segment(&action));
            let body = json!({ "to": to, "for_seconds": window, "reason": reason });
            Value::Array(vec![client.call(Method::POST, &path, Some(body)).await?])
        }
        PolicyCommand::Restore { action } => {
            let path = format!("{POLICIES}/{}/restore", segment(&action));
            Value::Array(vec![client.call(Method::POST, &path, None).await?])
        }
        PolicyCommand::Set {
            action,
            policy,
            timeout,
            timeout_action,
        } => {
            let path = format!("{POLICIES}/{}", segment(&action));
            let body = json!({ "policy": policy, "timeout_seconds": timeout, "timeout_action": timeout_action });
            Value::Array(vec![client.call(Method::PUT, &path, Some(body)).await?])
        }
    };
    out.policies(&data);
    Ok(())
}

/// One path segment, percent-encoded (agent names contain spaces).
fn segment(s: &str) -> String {
    urlencode(s).replace('+', "%20")
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Renders API data as tables or JSON.
struct Output {
    json: bool,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

impl Output {
    fn print_json(&self, v: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        );
    }

    fn peers(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&[
            "id",
            "status",
            "kind",
            "role",
            "remote_instance_url",
            "last_heartbeat_at",
            "stale",
        ]);
        for p in data.as_array().into_iter().flatten() {
            t.add_row(
                [
                    "id",
                    "status",
                    "peer_kind",
                    "spawn_role",
                    "remote_instance_url",
                    "last_heartbeat_at",
                    "heartbeat_stale",
                ]
                .map(|k| text(&p[k])),
            );
        }
        println!("{t}");
    }

    fn peer(&self, p: &Value) {
        if self.json {
            return self.print_json(p);
        }
        let keys = [
            "id",
            "status",
            "allowed_transitions",
            "origin",
            "remote_instance_url",
            "remote_instance_id",
            "peer_kind",
            "spawn_role",
            "spawn_mode",
            "remote_prefix_advertisement",
            "last_heartbeat_at",
            "heartbeat_stale",
            "degraded_reason",
            "acceptance_pending",
            "acceptance_token_expires_at",
            "signed_at",
            "last_handshake_at",
            "last_outbound_heartbeat_at",
            "last_outbound_error",
            "remote_ca_sha256",
            "contract_version_agreed",
            "endpoints",
            "extension_slugs",
            "capabilities",
            "metadata",
            "certificates",
            "created_at",
            "updated_at",
        ];
        let mut t = Table::new();
        t.load_style(NOTHING);
        for k in keys {
            t.add_row([k.to_owned(), text(&p[k])]);
        }
        println!("{t}");
    }

    fn with_token(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        self.peer(&data["peer"]);
        match data["acceptance_token"].as_str() {
            Some(token) => {
                println!();
                println!(
                    "Acceptance token (shown once; expires {}). Hand it to the other instance's operator over a synchronous channel:",
                    text(&data["acceptance_token_expires_at"])
                );
                println!("{token}");
            }
            None => println!("\nDrill peer: no acceptance token."),
        }
    }

    fn events(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&[
            "emitted_at",
            "kind",
            "severity",
            "source",
            "peer_id",
            "payload",
        ]);
        for e in data.as_array().into_iter().flatten() {
            t.add_row(
                [
                    "emitted_at",
                    "kind",
                    "severity",
                    "source",
                    "peer_id",
                    "payload",
                ]
                .map(|k| text(&e[k])),
            );
        }
        println!("{t}");
    }

    fn operators(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&["id", "name", "permissions", "disabled_at", "last_used_at"]);
        for o in data.as_array().into_iter().flatten() {
            let perms = o["permissions"]
                .as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            t.add_row([
                text(&o["id"]),
                text(&o["name"]),
                perms,
                text(&o["disabled_at"]),
                text(&o["last_used_at"]),
            ]);
        }
        println!("{t}");
    }

    fn operator_token(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        self.operators(&Value::Array(vec![data["operator"].clone()]));
        println!("\nToken (shown once):");
        println!("{}", text(&data["token"]));
    }

    fn worker_status(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "schedule",
            "job",
            "last_outcome",
            "last_success_at",
            "last_failure_at",
            "last_error",
            "runs",
            "failures",
            "last_worker",
        ];
        let mut t = table(&keys);
        for s in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&s[k])));
        }
        println!("{t}");
    }

    fn grants(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "id",
            "peer_id",
            "resource_kind",
            "resource_id",
            "permission_scopes",
            "expires_at",
            "auto_renew",
            "revoked_at",
        ];
        let mut t = table(&keys);
        for g in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&g[k])));
        }
        println!("{t}");
    }

    /// A gated call answered 202: print the queued request and return true.
    fn queued(&self, data: &Value) -> bool {
        if data.get("approval_request").is_none() {
            return false;
        }
        if self.json {
            self.print_json(data);
            return true;
        }
        println!("{}", text(&data["message"]));
        self.approval(&data["approval_request"]);
        println!(
            "\nQueued until an operator with system.infra_tasks.control approves it \
             (`powernodectl approvals approve {}`) before {}; the SDWAN Manager runs it on its next tick.",
            text(&data["approval_request"]["id"]),
            text(&data["approval_request"]["expires_at"])
        );
        true
    }

    fn approvals(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "id",
            "action",
            "status",
            "requested_by",
            "expires_at",
            "decided_by",
            "execution_status",
        ];
        let mut t = table(&keys);
        for r in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&r[k])));
        }
        println!("{t}");
    }

    fn approval(&self, r: &Value) {
        if self.json {
            return self.print_json(r);
        }
        let keys = [
            "id",
            "action",
            "params",
            "status",
            "requested_by",
            "created_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "comments",
            "execution_status",
            "execution_error",
            "executed_at",
            "result",
            "result_claimable",
        ];
        let mut t = Table::new();
        t.load_style(NOTHING);
        for k in keys {
            t.add_row([k.to_owned(), text(&r[k])]);
        }
        println!("{t}");
    }

    fn agents(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "name",
            "status",
            "interval_secs",
            "status_reason",
            "updated_at",
        ];
        let mut t = table(&keys);
        for a in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&a[k])));
        }
        println!("{t}");
    }

    fn policies(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "action",
            "policy",
            "effective_policy",
            "timeout_seconds",
            "timeout_action",
            "lowered_until",
            "lowered_reason",
        ];
        let mut t = table(&keys);
        for p in data.as_array().into_iter().flatten() {
            t.add_row([
                text(&p["action"]),
                text(&p["policy"]),
                text(&p["effective_policy"]),
                text(&p["timeout_seconds"]),
                text(&p["timeout_action"]),
                text(&p["lowered"]["until"]),
                text(&p["lowered"]["reason"]),
            ]);
        }
        println!("{t}");
    }

    fn done(&self, data: &Value, message: &str) {
        if self.json {
            return self.print_json(data);
        }
        println!("{message}");
    }
}
