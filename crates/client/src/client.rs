//! Typed async clients, one per API. Each method is one route: the path, the request type and
//! the answer type come from this crate, so a client and the server cannot drift apart.

use powernode_domain::{ApprovalId, GrantId, OperatorId, PeerId};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::approvals::{
    AgentStatusRequest, AgentView, ApprovalView, ClaimedResultView, DecisionRequest, LowerRequest,
    PolicyUpdate, PolicyView,
};
use crate::events::{EventView, EventsQuery};
use crate::federation::{
    AcceptAnswer, HandshakeAnswer, HandshakeRequest, HeartbeatAnswer, HeartbeatRequest,
    RenewAnswer, RenewRequest as CertificateRenewRequest,
};
use crate::governance::{
    DiagnosisView, RenewedCertificateView, ReportSummary, ReportView, ReportsQuery,
    RetentionOutcome,
};
use crate::grants::{
    ExplainRequest, Explanation, GrantView, IssueRequest, IssuedGrant, ListQuery as GrantQuery,
    RenewRequest, ResourceDeleted, ResourceView, RevokeRequest,
};
use crate::operators::{CreateOperatorRequest, OperatorView, OperatorWithToken};
use crate::peers::{
    AcceptRequest, ListQuery as PeerQuery, PeerView, PeerWithToken, ProposeRequest, ReasonRequest,
    RegenerateRequest, ResumeRequest,
};
use crate::worker::{
    GrantMaintenance, JobReportRequest, PeerRun, ScheduleStatusView, SweepResponse, TickOutcome,
};
use crate::{ApprovalRequired, Error, ErrorBody, Gated};

const PEERS: &str = "/api/v1/system/federation/peers";
const FEDERATION: &str = "/api/v1/system/federation";
const APPROVALS: &str = "/api/v1/ai/autonomy";
const WORKER_API: &str = "/api/v1/system/worker_api";
const FEDERATION_API: &str = "/api/v1/system/federation_api";

/// One path segment, percent-encoded (agent names contain spaces).
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `?k=v&…` from a query struct's non-null fields.
fn query<Q: Serialize>(q: &Q) -> String {
    let Ok(Value::Object(map)) = serde_json::to_value(q) else {
        return String::new();
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in map {
        match v {
            Value::Null => {}
            Value::String(s) => {
                out.append_pair(&k, &s);
            }
            other => {
                out.append_pair(&k, &other.to_string());
            }
        }
    }
    let q = out.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// reqwest's Display hides the cause ("error sending request"); the chain says what happened.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Clone)]
enum Auth {
    None,
    Bearer(SecretString),
    Worker(SecretString),
}

/// What sends a built request and hands back the response. reqwest's client for the operator
/// and worker clients (and the CLI); the API's PeerClient brings its own (each peer's pinned CA
/// and our identity for it on one shared OpenSSL context, never the system CA bundle — see
/// `powernode-api`'s `peer_clients`). Errors are one line: what happened, with its causes.
pub trait Transport: Send + Sync {
    fn execute(&self, req: reqwest::Request) -> Sending<'_>;
}

/// A transport's answer in flight.
pub type Sending<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<reqwest::Response, String>> + Send + 'a>,
>;

impl Transport for reqwest::Client {
    fn execute(&self, req: reqwest::Request) -> Sending<'_> {
        Box::pin(async move {
            reqwest::Client::execute(self, req)
                .await
                .map_err(|e| describe(&e))
        })
    }
}

/// One request being built: a plain `reqwest::Request` (no client attached, so whichever
/// transport the client was made with sends it). A header or body that cannot be built fails
/// the call when it is sent.
struct Call {
    req: Result<reqwest::Request, String>,
}

impl Call {
    fn header(self, name: &str, value: &str) -> Self {
        self.insert(name, value, false)
    }

    fn bearer_auth(self, token: &str) -> Self {
        self.insert("authorization", &format!("Bearer {token}"), true)
    }

    fn insert(mut self, name: &str, value: &str, sensitive: bool) -> Self {
        use reqwest::header::{HeaderName, HeaderValue};
        self.req = self.req.and_then(|mut r| {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
            let mut v = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
            v.set_sensitive(sensitive);
            r.headers_mut().insert(n, v);
            Ok(r)
        });
        self
    }

    fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        use reqwest::header::{CONTENT_TYPE, HeaderValue};
        self.req = self.req.and_then(|mut r| {
            let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *r.body_mut() = Some(bytes.into());
            Ok(r)
        });
        self
    }
}

/// Sends a call and reads the envelope; shared by the three clients.
#[derive(Clone)]
struct Http {
    transport: std::sync::Arc<dyn Transport>,
    base: String,
    auth: Auth,
    /// `Idempotency-Key` prefix for POSTs (see `OperatorClient::with_idempotency_keys`); each
    /// POST gets `<prefix>-<n>`, so two different calls of one client never share a key.
    idempotency: Option<(String, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    /// `X-Powernode-Tick` of a worker tick's calls (see `WorkerClient::for_tick`).
    tick: Option<String>,
}

/// A response as it came: status, headers, the body read whole.
type Exchanged = (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    bytes::Bytes,
);

/// What came back: 2xx data (with its status: 202 means queued), or an error.
struct Answer {
    status: u16,
    data: Value,
    /// `X-Next-Cursor` of a paged list.
    next_cursor: Option<String>,
}

impl Http {
    fn new(transport: std::sync::Arc<dyn Transport>, base: &str, auth: Auth) -> Self {
        Http {
            transport,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            idempotency: None,
            tick: None,
        }
    }

    fn request(&self, method: Method, path: &str) -> Call {
        let url = format!("{}{path}", self.base);
        let mut req = Call {
            req: reqwest::Url::parse(&url)
                .map(|u| reqwest::Request::new(method.clone(), u))
                .map_err(|e| format!("{url}: {e}")),
        };
        if method == Method::POST
            && let Some((prefix, counter)) = &self.idempotency
        {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            req = req.header("Idempotency-Key", &format!("{prefix}-{n}"));
        }
        if let Some(tick) = &self.tick {
            req = req.header("X-Powernode-Tick", tick);
        }
        match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t.expose_secret()),
            Auth::Worker(t) => req.insert("X-Worker-Token", t.expose_secret(), true),
        }
    }

    /// Sends a call; the response as it came (status, headers, body read whole).
    async fn exchange(&self, call: Call) -> Result<Exchanged, Error> {
        let no_answer = |cause: String| Error::NoAnswer {
            url: self.base.clone(),
            cause,
        };
        let resp = self
            .transport
            .execute(call.req.map_err(no_answer)?)
            .await
            .map_err(no_answer)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| no_answer(describe(&e)))?;
        Ok((status, headers, bytes))
    }

    async fn send(&self, call: Call) -> Result<Answer, Error> {
        let (status, headers, bytes) = self.exchange(call).await?;
        let status = status.as_u16();
        let next_cursor = headers
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let json: Value = serde_json::from_slice(&bytes).map_err(|_| Error::NotJson { status })?;
        if json.get("success") == Some(&Value::Bool(true)) {
            return Ok(Answer {
                status,
                data: json.get("data").cloned().unwrap_or(Value::Null),
                next_cursor,
            });
        }
        let body: ErrorBody = serde_json::from_value(json).map_err(|e| Error::Unexpected {
            status,
            cause: e.to_string(),
        })?;
        Err(Error::Api {
            status,
            body: Box::new(body),
        })
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let answer = self.raw(method, path, body).await?;
        decode(answer)
    }

    /// A body that cannot be serialised fails the call when it is sent.
    async fn raw<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, Error> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    async fn gated<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Gated<T>, Error> {
        let answer = self.raw(method, path, body).await?;
        if answer.status == 202 {
            return Ok(Gated::Queued(Box::new(decode::<ApprovalRequired>(answer)?)));
        }
        Ok(Gated::Done(decode(answer)?))
    }
}

fn decode<T: DeserializeOwned>(answer: Answer) -> Result<T, Error> {
    serde_json::from_value(answer.data).map_err(|e| Error::Unexpected {
        status: answer.status,
        cause: e.to_string(),
    })
}

/// No request body.
const NO_BODY: Option<&()> = None;

/// The operator API with an operator token (`pnop_…`).
#[derive(Clone)]
pub struct OperatorClient {
    http: Http,
}

impl OperatorClient {
    pub fn new(client: reqwest::Client, base: &str, token: SecretString) -> Self {
        OperatorClient {
            http: Http::new(std::sync::Arc::new(client), base, Auth::Bearer(token)),
        }
    }

    /// Sends an `Idempotency-Key` on every POST, `<prefix>-<n>` (the prefix a fresh random
    /// value per process, e.g. one `powernodectl` invocation): the API runs each such request at
    /// most once, even when a proxy or the transport repeats it.
    pub fn with_idempotency_keys(mut self, prefix: &str) -> Self {
        self.http.idempotency = Some((prefix.to_owned(), std::sync::Arc::default()));
        self
    }

    pub fn base(&self) -> &str {
        &self.http.base
    }

    // Operators.
    pub async fn me(&self) -> Result<OperatorView, Error> {
        self.http
            .call(Method::GET, "/api/v1/system/operators/me", NO_BODY)
            .await
    }
    pub async fn operators(&self) -> Result<Vec<OperatorView>, Error> {
        self.http
            .call(Method::GET, "/api/v1/system/operators", NO_BODY)
            .await
    }
    pub async fn create_operator(
        &self,
        req: &CreateOperatorRequest,
    ) -> Result<OperatorWithToken, Error> {
        self.http
            .call(Method::POST, "/api/v1/system/operators", Some(req))
            .await
    }
    pub async fn disable_operator(&self, id: OperatorId) -> Result<OperatorView, Error> {
        let path = format!("/api/v1/system/operators/{id}/disable");
        self.http.call(Method::POST, &path, NO_BODY).await
    }

    // Peers.
    pub async fn propose(&self, req: &ProposeRequest) -> Result<Gated<PeerWithToken>, Error> {
        self.http.gated(Method::POST, PEERS, Some(req)).await
    }
    /// One page of peers (the first `limit`, default 100).
    pub async fn peers(&self, q: &PeerQuery) -> Result<Vec<PeerView>, Error> {
        Ok(self.peer_page(q).await?.peers)
    }
    /// One page of peers with the cursor of the next (`X-Next-Cursor`).
    pub async fn peer_page(&self, q: &PeerQuery) -> Result<crate::mcp::PeerPage, Error> {
        let path = format!("{PEERS}{}", query(q));
        let answer = self.http.raw(Method::GET, &path, NO_BODY).await?;
        let next_cursor = answer.next_cursor.clone();
        Ok(crate::mcp::PeerPage {
            peers: decode(answer)?,
            next_cursor,
        })
    }
    pub async fn peer(&self, id: PeerId) -> Result<PeerView, Error> {
        self.http
            .call(Method::GET, &format!("{PEERS}/{id}"), NO_BODY)
            .await
    }
    pub async fn regenerate_token(
        &self,
        id: PeerId,
        req: &RegenerateRequest,
    ) -> Result<PeerWithToken, Error> {
        let path = format!("{PEERS}/{id}/acceptance_token");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn suspend(&self, id: PeerId, req: &ReasonRequest) -> Result<PeerView, Error> {
        let path = format!("{PEERS}/{id}/suspend");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn resume(&self, id: PeerId, req: &ResumeRequest) -> Result<PeerView, Error> {
        let path = format!("{PEERS}/{id}/resume");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn revoke(&self, id: PeerId, req: &ReasonRequest) -> Result<Gated<PeerView>, Error> {
        let path = format!("{PEERS}/{id}/revoke");
        self.http.gated(Method::POST, &path, Some(req)).await
    }
    pub async fn delete_peer(&self, id: PeerId) -> Result<PeerView, Error> {
        self.http
            .call(Method::DELETE, &format!("{PEERS}/{id}"), NO_BODY)
            .await
    }
    pub async fn accept(&self, req: &AcceptRequest) -> Result<Gated<PeerView>, Error> {
        let path = format!("{PEERS}/accept");
        self.http.gated(Method::POST, &path, Some(req)).await
    }

    // Grants and resources.
    pub async fn issue_grant(
        &self,
        peer: PeerId,
        req: &IssueRequest,
    ) -> Result<IssuedGrant, Error> {
        let path = format!("{PEERS}/{peer}/grants");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn grants(&self, q: &GrantQuery) -> Result<Vec<GrantView>, Error> {
        let path = format!("{FEDERATION}/grants{}", query(q));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn grant(&self, id: GrantId) -> Result<GrantView, Error> {
        let path = format!("{FEDERATION}/grants/{id}");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn revoke_grant(&self, id: GrantId, req: &RevokeRequest) -> Result<GrantView, Error> {
        let path = format!("{FEDERATION}/grants/{id}/revoke");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn renew_grant(&self, id: GrantId, req: &RenewRequest) -> Result<GrantView, Error> {
        let path = format!("{FEDERATION}/grants/{id}/renew");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn explain_grant(
        &self,
        id: GrantId,
        req: &ExplainRequest,
    ) -> Result<Explanation, Error> {
        let path = format!("{FEDERATION}/grants/{id}/explain");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn resource(&self, kind: &str, id: &str) -> Result<ResourceView, Error> {
        let path = format!("{FEDERATION}/resources/{}/{}", seg(kind), seg(id));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn put_resource(
        &self,
        kind: &str,
        id: &str,
        document: &Value,
    ) -> Result<ResourceView, Error> {
        let path = format!("{FEDERATION}/resources/{}/{}", seg(kind), seg(id));
        self.http.call(Method::PUT, &path, Some(document)).await
    }
    pub async fn delete_resource(&self, kind: &str, id: &str) -> Result<ResourceDeleted, Error> {
        let path = format!("{FEDERATION}/resources/{}/{}", seg(kind), seg(id));
        self.http.call(Method::DELETE, &path, NO_BODY).await
    }

    // Events and worker status.
    pub async fn events(&self, q: &EventsQuery) -> Result<Vec<EventView>, Error> {
        let path = format!("/api/v1/system/fleet/events{}", query(q));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn worker_status(&self) -> Result<Vec<ScheduleStatusView>, Error> {
        self.http
            .call(Method::GET, "/api/v1/system/worker/status", NO_BODY)
            .await
    }

    // Governance, the doctor, forced re-mint.
    pub async fn governance_scan(&self) -> Result<ReportView, Error> {
        let path = format!("{FEDERATION}/governance/scan");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn governance_latest(&self) -> Result<ReportView, Error> {
        let path = format!("{FEDERATION}/governance/reports/latest");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn governance_report(&self, id: uuid::Uuid) -> Result<ReportView, Error> {
        let path = format!("{FEDERATION}/governance/reports/{id}");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn governance_reports(&self, q: &ReportsQuery) -> Result<Vec<ReportSummary>, Error> {
        let path = format!("{FEDERATION}/governance/reports{}", query(q));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn diagnosis(&self) -> Result<DiagnosisView, Error> {
        let path = format!("{FEDERATION}/diagnosis");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn peer_diagnosis(&self, id: PeerId) -> Result<DiagnosisView, Error> {
        let path = format!("{PEERS}/{id}/diagnosis");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn renew_peer_certificate(
        &self,
        id: PeerId,
    ) -> Result<RenewedCertificateView, Error> {
        let path = format!("{PEERS}/{id}/certificates/renew");
        self.http.call(Method::POST, &path, NO_BODY).await
    }

    // Approvals, policies, agents.
    pub async fn approvals(
        &self,
        q: &crate::approvals::ListQuery,
    ) -> Result<Vec<ApprovalView>, Error> {
        let path = format!("{APPROVALS}/approvals{}", query(q));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn approval(&self, id: ApprovalId) -> Result<ApprovalView, Error> {
        let path = format!("{APPROVALS}/approvals/{id}");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    /// `verb`: `approve`, `reject` or `cancel`.
    pub async fn decide(
        &self,
        id: ApprovalId,
        verb: Decision,
        req: &DecisionRequest,
    ) -> Result<ApprovalView, Error> {
        let path = format!("{APPROVALS}/approvals/{id}/{}", verb.as_str());
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn claim_result(&self, id: ApprovalId) -> Result<ClaimedResultView, Error> {
        let path = format!("{APPROVALS}/approvals/{id}/claim_result");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn policies(&self) -> Result<Vec<PolicyView>, Error> {
        let path = format!("{APPROVALS}/policies");
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn policy(&self, action: &str) -> Result<PolicyView, Error> {
        let path = format!("{APPROVALS}/policies/{}", seg(action));
        self.http.call(Method::GET, &path, NO_BODY).await
    }
    pub async fn update_policy(
        &self,
        action: &str,
        req: &PolicyUpdate,
    ) -> Result<PolicyView, Error> {
        let path = format!("{APPROVALS}/policies/{}", seg(action));
        self.http.call(Method::PUT, &path, Some(req)).await
    }
    pub async fn lower_policy(
        &self,
        action: &str,
        req: &LowerRequest,
    ) -> Result<PolicyView, Error> {
        let path = format!("{APPROVALS}/policies/{}/lower", seg(action));
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn restore_policy(&self, action: &str) -> Result<PolicyView, Error> {
        let path = format!("{APPROVALS}/policies/{}/restore", seg(action));
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn agents(&self) -> Result<Vec<AgentView>, Error> {
        self.http
            .call(Method::GET, "/api/v1/ai/agents", NO_BODY)
            .await
    }
    pub async fn set_agent_paused(
        &self,
        name: &str,
        paused: bool,
        req: &AgentStatusRequest,
    ) -> Result<AgentView, Error> {
        let verb = if paused { "pause" } else { "resume" };
        let path = format!("/api/v1/ai/agents/{}/{verb}", seg(name));
        self.http.call(Method::POST, &path, Some(req)).await
    }
}

/// A decision on an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Cancel,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Cancel => "cancel",
        }
    }
}

/// The worker API with the shared worker token.
#[derive(Clone)]
pub struct WorkerClient {
    http: Http,
}

impl WorkerClient {
    pub fn new(client: reqwest::Client, base: &str, token: SecretString) -> Self {
        WorkerClient {
            http: Http::new(std::sync::Arc::new(client), base, Auth::Worker(token)),
        }
    }

    /// This client for the calls of one worker tick: each carries `X-Powernode-Tick: <key>`
    /// (`<schedule>:<tick>`), so the API applies the tick once however often it is run.
    pub fn for_tick(&self, key: &str) -> Self {
        let mut http = self.http.clone();
        http.tick = Some(key.to_owned());
        WorkerClient { http }
    }

    pub async fn heartbeat_sweep(&self) -> Result<SweepResponse, Error> {
        let path = format!("{WORKER_API}/federation/heartbeat_sweep");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn peer_heartbeats(&self) -> Result<PeerRun, Error> {
        let path = format!("{WORKER_API}/federation/peer_heartbeats");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn grant_maintenance(&self) -> Result<GrantMaintenance, Error> {
        let path = format!("{WORKER_API}/federation/grant_maintenance");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn sdwan_manager_tick(&self) -> Result<TickOutcome, Error> {
        let path = format!("{WORKER_API}/sdwan_manager/tick");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    /// The schedule's scan: the report is stored; the answer is its summary (the worker logs
    /// counts, and a fleet's findings would be megabytes held and sent for nothing).
    pub async fn governance_scan(&self) -> Result<ReportSummary, Error> {
        let path = format!("{WORKER_API}/federation/governance_scan");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn event_retention(&self) -> Result<RetentionOutcome, Error> {
        let path = format!("{WORKER_API}/fleet_events/retention");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    /// Fast establishment (SPEC §4): handshake (if ours to do) and a heartbeat to one peer now.
    pub async fn contact_peer(
        &self,
        peer_id: uuid::Uuid,
        reason: &str,
    ) -> Result<crate::worker::ContactOutcome, Error> {
        let path = format!("{WORKER_API}/federation/peers/{peer_id}/contact?reason={reason}");
        self.http.call(Method::POST, &path, NO_BODY).await
    }
    pub async fn report(&self, req: &JobReportRequest) -> Result<ScheduleStatusView, Error> {
        let path = format!("{WORKER_API}/report");
        self.http.call(Method::POST, &path, Some(req)).await
    }
}

/// The federation protocol on another instance's listener. The client (or transport) carries
/// the TLS configuration: the peer's pinned CA and, after accept, our client certificate.
#[derive(Clone)]
pub struct FederationClient {
    http: Http,
}

impl FederationClient {
    /// `base`: the instance URL (`https://host:port`).
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self::with_transport(std::sync::Arc::new(client), base)
    }

    /// A client over another transport (the PeerClient's per-peer mTLS connections).
    pub fn with_transport(transport: std::sync::Arc<dyn Transport>, base: &str) -> Self {
        FederationClient {
            http: Http::new(transport, base, Auth::None),
        }
    }

    /// The peer's CA certificate, DER.
    pub async fn ca(&self) -> Result<Vec<u8>, Error> {
        let call = self
            .http
            .request(Method::GET, &format!("{FEDERATION_API}/ca"));
        let (status, _, bytes) = self.http.exchange(call).await?;
        if !status.is_success() {
            return Err(Error::NotJson {
                status: status.as_u16(),
            });
        }
        Ok(bytes.to_vec())
    }
    pub async fn accept(
        &self,
        req: &crate::federation::AcceptRequest,
    ) -> Result<AcceptAnswer, Error> {
        let path = format!("{FEDERATION_API}/accept");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn handshake(&self, req: &HandshakeRequest) -> Result<HandshakeAnswer, Error> {
        let path = format!("{FEDERATION_API}/handshake");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatAnswer, Error> {
        let path = format!("{FEDERATION_API}/heartbeat");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    pub async fn renew(&self, req: &CertificateRenewRequest) -> Result<RenewAnswer, Error> {
        let path = format!("{FEDERATION_API}/certificates/renew");
        self.http.call(Method::POST, &path, Some(req)).await
    }
    /// Reads a shared resource under a grant (`fg-…`), optionally naming the SD-WAN network.
    pub async fn read_resource(
        &self,
        kind: &str,
        id: &str,
        grant_token: &SecretString,
        network: Option<&str>,
    ) -> Result<ResourceView, Error> {
        let path = format!("{FEDERATION_API}/resources/{}/{}", seg(kind), seg(id));
        let mut req = self
            .http
            .request(Method::GET, &path)
            .bearer_auth(grant_token.expose_secret());
        if let Some(n) = network {
            req = req.header("X-Sdwan-Network", n);
        }
        decode(self.http.send(req).await?)
    }
    /// Writes a shared resource under a grant with `write`.
    pub async fn write_resource(
        &self,
        kind: &str,
        id: &str,
        grant_token: &SecretString,
        network: Option<&str>,
        document: &Value,
    ) -> Result<ResourceView, Error> {
        let path = format!("{FEDERATION_API}/resources/{}/{}", seg(kind), seg(id));
        let mut req = self
            .http
            .request(Method::PUT, &path)
            .bearer_auth(grant_token.expose_secret())
            .json(document);
        if let Some(n) = network {
            req = req.header("X-Sdwan-Network", n);
        }
        decode(self.http.send(req).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_skip_absent_fields_and_encode_values() {
        let q = crate::events::EventsQuery {
            source: Some("federation peer".to_owned()),
            kind: None,
            peer_id: None,
            since: None,
            before: None,
            limit: Some(5),
        };
        // Pair order follows serde_json's map order, which a workspace feature may change.
        let q = query(&q);
        let mut pairs: Vec<&str> = q.trim_start_matches('?').split('&').collect();
        pairs.sort_unstable();
        assert!(q.starts_with('?'), "{q}");
        assert_eq!(pairs, ["limit=5", "source=federation+peer"]);
        assert_eq!(seg("SDWAN Manager"), "SDWAN%20Manager");
    }
}
