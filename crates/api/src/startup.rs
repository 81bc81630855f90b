//! Builds and runs the HTTP server; tests boot it on port 0.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpServer, web};
use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;

use crate::error::{self, MAX_BODY_BYTES};
use crate::routes;
use crate::services::Ctx;
use crate::settings::{Settings, redact_url};

/// Shared, read-only state of every worker thread: the services' narrow context plus what only
/// the HTTP layer needs (rate limits, metrics handle, Redis for `/readyz`, batcher threads).
pub struct AppState {
    pub ctx: Ctx,
    pub limits: crate::ratelimit::Limits,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub redis: redis::Client,
    /// Active peers' heartbeats, applied in batches (see `federation::batch`).
    pub heartbeats: crate::federation::batch::HeartbeatBatcher,
    /// Resource calls' lookups, batched the same way.
    pub lookups: crate::federation::batch::LookupBatcher,
    /// The federation listener's handle once it serves (`None` until its prerequisites exist).
    pub federation_listener: tokio::sync::watch::Receiver<Option<actix_web::dev::ServerHandle>>,
    /// When this process started serving (the doctor's grace for unreported schedules).
    pub started: std::time::Instant,
}

impl AppState {
    /// What the instance diagnosis needs from the HTTP layer.
    pub fn probes(&self) -> crate::services::doctor::Probes<'_> {
        crate::services::doctor::Probes {
            redis: &self.redis,
            federation_listener_up: self.federation_listener_up(),
            started: self.started,
        }
    }

    /// Whether the federation listener is serving (readiness).
    pub fn federation_listener_up(&self) -> bool {
        self.federation_listener.borrow().is_some()
    }
}

/// Handlers hand `&state` to services, which see only the context.
impl std::ops::Deref for AppState {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

pub struct Application {
    port: u16,
    federation_port: u16,
    server: Server,
    federation: tokio::sync::watch::Receiver<Option<actix_web::dev::ServerHandle>>,
}

impl Application {
    /// Binds `settings.http_listen` and prepares the server. Does not wait for PostgreSQL:
    /// the server answers `/readyz` with 503 until it is reachable.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.http_listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (POWERNODE_HTTP_LISTEN)",
                settings.http_listen
            )
        })?;
        let port = listener.local_addr()?.port();
        // Bound now so a taken port fails at start; served once the CA and the listener
        // certificate are available (PostgreSQL may still be coming up).
        let federation_listener =
            crate::federation::bind(&settings.federation_listen).map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e} (POWERNODE_FEDERATION_LISTEN)",
                    settings.federation_listen
                )
            })?;
        let federation_port = federation_listener
            .local_addr()?
            .as_socket()
            .map_or(0, |a| a.port());
        let (federation_tx, federation) = tokio::sync::watch::channel(None);
        let pool = powernode_store::pool(
            settings.database_url.expose_secret(),
            settings.database_pool_size,
            settings.database_timeout,
        );
        let redis = redis::Client::open(settings.redis_url.expose_secret())
            .map_err(|e| anyhow::anyhow!("POWERNODE_REDIS_URL is not a valid Redis URL: {e}"))?;
        let grace = settings.shutdown_grace;
        let limits = crate::ratelimit::Limits::new(&settings);
        limits.spawn_eviction();
        let db = crate::db::Database::new(pool, settings.database_timeout);
        let capacity = settings.federation_batch_queue as usize;
        let heartbeats = crate::federation::batch::heartbeats(&db, capacity)?;
        let lookups = crate::federation::batch::lookups(&db, capacity)?;
        let state = web::Data::new(AppState {
            ctx: Ctx {
                peer_clients: crate::peer_clients::PeerClients::new(
                    settings.peer_client_cache,
                    std::time::Duration::from_secs(crate::services::federation::PEER_IDLE_SECS),
                ),
                queue: crate::queue::JobQueue::new(
                    settings.redis_url.clone(),
                    settings.redis_prefix.clone(),
                ),
                db,
                settings,
            },
            limits,
            metrics: crate::observability::install()?,
            redis,
            heartbeats,
            lookups,
            federation_listener: federation.clone(),
            started: std::time::Instant::now(),
        });
        // The document comes from the same registration the server uses (built once here).
        let (_, doc) = App::new()
            .into_utoipa_app()
            .configure(routes::configure)
            .split_for_parts();
        let doc = routes::openapi::finish(doc);
        let known = web::Data::new(routes::KnownPaths::new(&doc.paths));
        // The federation listener's routes join the same document (tagged "federation").
        let (_, federation_doc) = App::new()
            .into_utoipa_app()
            .configure(crate::federation::routes::configure)
            .split_for_parts();
        let mut doc = doc;
        doc.merge(federation_doc);
        routes::openapi::error_bodies(&mut doc);
        let doc = routes::openapi::make_true(
            serde_json::to_value(&doc).map_err(|e| anyhow::anyhow!("OpenAPI document: {e}"))?,
            state.settings.federation_public_url.as_str(),
            &state.settings.resource_kinds,
        );
        let doc = web::Data::new(routes::openapi::OpenApiDocument(doc.to_string()));
        let server_state = state.clone();
        let mcp = crate::mcp::service(state.clone());
        let server = HttpServer::new(move || {
            let (app, _) = App::new()
                .wrap(actix_web::middleware::from_fn(crate::nul::refuse_nul))
                .wrap(ErrorHandlers::new().default_handler(error::envelope_bare_errors))
                // Operator answers may carry once-only secrets (tokens): never cached.
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Cache-Control", "no-store")),
                )
                .wrap(TracingLogger::default())
                .app_data(server_state.clone())
                .app_data(doc.clone())
                .app_data(known.clone())
                .app_data(error::json_config())
                .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .into_utoipa_app()
                .configure(routes::configure)
                .split_for_parts();
            app.service(crate::mcp::scope(mcp.clone()))
                // Last: its empty prefix would shadow anything registered after it.
                .service(crate::ui::scope(
                    server_state.settings.ui_session_key.clone(),
                    server_state.settings.environment,
                ))
                .default_service(web::to(routes::unmatched))
        })
        .shutdown_timeout(grace.as_secs())
        .listen(listener)?
        .run();
        tokio::spawn(announce_database(state.clone()));
        tokio::spawn(crate::federation::supervise(
            state,
            federation_listener,
            federation_tx,
        ));
        Ok(Application {
            port,
            federation_port,
            server,
            federation,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The federation (mTLS) listener's port; it answers once the CA is ready.
    pub fn federation_port(&self) -> u16 {
        self.federation_port
    }

    /// Serves until SIGTERM/SIGINT (actix drains in-flight requests for the grace period),
    /// then drains the federation listener too.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let handle = self.federation.borrow().clone();
        if let Some(handle) = handle {
            handle.stop(true).await;
        }
        result
    }
}

/// Logs, with backoff, that we are waiting for PostgreSQL until it answers, then whether
/// migrations are pending; requests keep being served (and `/readyz` says 503) meanwhile. The
/// instance identity and CA are created by the federation listener's start
/// (`federation::supervise`), which waits for the same prerequisites.
async fn announce_database(state: web::Data<AppState>) {
    let target = redact_url(state.settings.database_url.expose_secret());
    let check = || {
        let state = state.clone();
        async move { crate::db::run(&state.db, powernode_store::migrate::pending).await }
    };
    let pending = check
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .without_max_times(),
        )
        .notify(|e, wait| {
            tracing::warn!(
                "waiting for PostgreSQL at {target}: {}; retrying in {:.1}s",
                e.detail(),
                wait.as_secs_f64()
            );
        })
        .await;
    match pending {
        Ok(p) if p.is_empty() => tracing::info!("PostgreSQL reachable; schema up to date"),
        Ok(p) => tracing::warn!(
            pending = ?p,
            "PostgreSQL reachable but migrations are pending: run `powernode-api migrate`"
        ),
        Err(e) => tracing::error!(error = %e.detail(), "PostgreSQL check gave up"),
    }
}
