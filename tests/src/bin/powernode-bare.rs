//! `powernode-bare`: the bench's bare mTLS baseline (issue 18). The federation listener exactly
//! as the API builds it — `federation::server` (per-source gate, OpenSSL with the instance's
//! CA and its stored listener certificate, client certificate read per connection, the same
//! keep-alive), configured from the same environment — serving one fixed small JSON body on
//! every path, with no database behind it. What it serves is the machine's HTTP + mTLS limit.
//!
//! Reads the API's settings from the environment (`POWERNODE_*`); the API must have started
//! once against the same database (it creates the identity and the listener certificate).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench fixture fails loudly"
)]

use actix_web::{App, HttpResponse, web};
use powernode_api::federation;
use secrecy::ExposeSecret;

/// About the size of a heartbeat's answer.
const BODY: &str =
    r#"{"data":{"status":"ok","server_time":"2026-11-30T00:00:00.000000Z","accepted":true}}"#;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = powernode_api::settings::Settings::load(None)?;
    let db = powernode_api::db::Database::new(
        powernode_store::pool(
            settings.database_url.expose_secret(),
            1,
            settings.database_timeout,
        ),
        settings.database_timeout,
    );
    let identity = powernode_api::ca::ensure_identity(&db, &settings.master_key).await?;
    let ca = openssl::x509::X509::from_pem(identity.ca_cert_pem.as_bytes())?;
    let host = federation::public_host(&settings);
    let mut conn = db.pool().get()?;
    let stored = powernode_store::certificates::server_certificate(&mut conn, &host)?
        .ok_or_else(|| anyhow::anyhow!("no listener certificate for {host}: start the API once"))?;
    let key = settings
        .master_key
        .open(powernode_api::ca::SERVER_KEY_CONTEXT, &stored.key_sealed)?;
    let acceptor = federation::acceptor(&ca, &stored.cert_pem, key.expose_secret())?;
    let socket = federation::bind(&settings.federation_listen)?;
    socket.listen(federation::LISTEN_BACKLOG)?;
    let server = federation::server(&settings, socket.into(), acceptor, || {
        // The request body is read (as the API's JSON extractors read theirs), then dropped.
        App::new().default_service(web::to(|_body: web::Bytes| async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(BODY)
        }))
    })?;
    println!(
        "bare mTLS endpoint listening on {}",
        settings.federation_listen
    );
    server.await?;
    Ok(())
}
