//! The web UI in a real browser (fantoccini driving Debian's Chromium) against the real app on
//! port 0 with real PostgreSQL: sign-in, the health banner, propose once, Accept Peer across two
//! instances with workers running, approvals by a second operator, CSRF, XSS, sign-out and
//! disabling. Every page visited is saved under `target/ui-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::connection::SimpleConnection;
use powernode_domain::Permission;
use powernode_tests::browser::Browser;
use powernode_tests::federation::{instance, instance_with};
use powernode_tests::{
    TestApp, TestDb, WorkerProcess, admin_token, create_operator, eventually_async, insert_peer,
    redis_prefix, settings_with, spawn_app,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);

/// The app as a developer runs it: plain HTTP, so the session cookie is not `Secure` (in
/// production it is, behind the TLS reverse proxy of `deploy/README.md`).
async fn ui_app(db: &TestDb) -> TestApp {
    spawn_app(settings_with(
        &db.url,
        &[("POWERNODE_ENVIRONMENT", "development".to_owned())],
    ))
    .await
}

async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.goto(&app.url("/login")).await;
    b.fill("#token", token).await;
    b.click("form[action='/login'] button").await;
}

fn exec(db: &TestDb, sql: &str) {
    db.conn().batch_execute(sql).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_with_a_token_and_the_pages_are_accessible_and_carry_the_security_headers() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = ui_app(&db).await;
    let b = Browser::start("signin").await;
    // Without a session every page leads to the sign-in page.
    b.goto(&app.url("/governance")).await;
    assert_eq!(b.current_path().await, "/login");
    b.accessible().await;
    b.screenshot("login").await;
    sign_in(&b, &app, "pnop_wrong").await;
    let text = b.text().await;
    assert!(
        text.contains("Invalid or disabled operator token"),
        "{text}"
    );
    sign_in(&b, &app, &admin).await;
    assert_eq!(b.current_path().await, "/");
    let text = b.text().await;
    assert!(
        text.contains("Peers") && text.contains("No peers"),
        "{text}"
    );
    assert!(
        text.contains("Start with Propose"),
        "the empty state says what to do next"
    );
    b.accessible().await;
    b.screenshot("peers-empty").await;
    for path in [
        "/peers/new",
        "/federation/accept",
        "/ai/autonomy/approvals",
        "/events",
        "/governance",
    ] {
        b.goto(&app.url(path)).await;
        b.accessible().await;
        b.screenshot(path.trim_start_matches('/').replace('/', "-").as_str())
            .await;
    }
    // SPEC's headers on every UI answer, the session cookie's flags.
    let resp = reqwest::Client::new()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let cookie = h["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_banner_follows_a_real_sweep_and_recovery() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = ui_app(&db).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(3600));
    let b = Browser::start("banner").await;
    sign_in(&b, &app, &admin).await;
    assert!(!b.exists(".banner").await);
    assert_eq!(app.sweep().await.status(), 200);
    b.goto(&app.url("/events")).await;
    let banner = b
        .client
        .find(fantoccini::Locator::Css(".banner"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        banner,
        "Federation health: 1 peer(s) degraded — oldest heartbeat 60 min ago"
    );
    b.screenshot("degraded").await;
    b.click(".banner a").await;
    assert!(b.text().await.contains(&peer.to_string()));
    // Recovery: the peer heartbeats again.
    exec(
        &db,
        &format!(
            "UPDATE peers SET status = 'active', last_heartbeat_at = now() WHERE id = '{peer}'"
        ),
    );
    b.goto(&app.url("/")).await;
    assert!(!b.exists(".banner").await);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn propose_shows_the_token_once_and_a_resubmitted_form_proposes_once() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = ui_app(&db).await;
    let b = Browser::start("propose").await;
    sign_in(&b, &app, &admin).await;
    b.goto(&app.url("/peers/new")).await;
    b.fill("#remote_instance_url", "https://platform-b.example.com")
        .await;
    // The form as it will be posted, to post it again afterwards (a reload, a resubmit).
    let form = b
        .client
        .execute(
            "return new URLSearchParams(new FormData(document.querySelector('form[action=\"/peers/new\"]'))).toString();",
            vec![],
        )
        .await
        .unwrap();
    b.click("form[action='/peers/new'] button").await;
    let token = b.value("#secret").await;
    assert!(token.starts_with("pnfa1_"), "{token}");
    b.screenshot("token").await;
    // The same form again: its Idempotency-Key makes it the first answer, without the token.
    let again = b
        .client
        .execute(
            "const r = await fetch('/peers/new', {method: 'POST', body: arguments[0],
               headers: {'Content-Type': 'application/x-www-form-urlencoded'}});
             return await r.text();",
            vec![form],
        )
        .await
        .unwrap();
    let again = again.as_str().unwrap();
    assert!(again.contains("Already proposed"), "{again}");
    assert!(
        !again.contains(&token),
        "a resubmitted form does not show the token again"
    );
    let count: i64 = {
        use diesel::RunQueryDsl;
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM peers)",
        ))
        .get_result(&mut db.conn())
        .unwrap()
    };
    assert_eq!(count, 1, "one peer for a resubmitted form");
    // Never again: not on the peer page, not in the list.
    b.click("main a[href^='/peers/']").await;
    assert!(!b.source().await.contains(&token));
    b.goto(&app.url("/")).await;
    assert!(!b.source().await.contains(&token));
    b.screenshot("peers").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_peer_on_b_with_a_token_and_both_become_active_with_workers_running() {
    let a = instance().await;
    let b_side = instance_with(&[]).await;
    a.ready().await;
    b_side.ready().await;
    let _wa = WorkerProcess::spawn(
        "ui-a",
        &a.app.address,
        &redis_prefix(),
        &[(
            "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
            "1",
        )],
    );
    let _wb = WorkerProcess::spawn(
        "ui-b",
        &b_side.app.address,
        &redis_prefix(),
        &[(
            "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
            "1",
        )],
    );
    let br = Browser::start("accept").await;
    sign_in(&br, &a.app, &a.admin).await;
    br.goto(&a.app.url("/peers/new")).await;
    br.fill("#remote_instance_url", &b_side.public_url).await;
    br.click("form[action='/peers/new'] button").await;
    let token = br.value("#secret").await;
    // B's operator, in the same browser (cookies ignore the port: signing in to B replaces A's
    // session cookie, so A's pages below sign in again).
    sign_in(&br, &b_side.app, &b_side.admin).await;
    br.goto(&b_side.app.url("/federation/accept")).await;
    br.fill("#acceptance_token", &token).await;
    br.screenshot("form").await;
    br.click("form[action='/federation/accept'] button").await;
    assert!(br.current_path().await.starts_with("/peers/"));
    assert!(br.text().await.contains("accepted") || br.text().await.contains("enrolled"));
    for side in [&a, &b_side] {
        eventually_async(DEADLINE, "active", || async {
            (side.only_peer().await["status"] == "active").then_some(())
        })
        .await;
    }
    br.goto(&b_side.app.url("/")).await;
    assert!(br.text().await.contains("active"));
    br.screenshot("active").await;
    let peer = a.only_peer().await["id"].as_str().unwrap().to_owned();
    br.goto(&a.app.url(&format!("/peers/{peer}"))).await;
    sign_in(&br, &a.app, &a.admin).await;
    br.goto(&a.app.url(&format!("/peers/{peer}"))).await;
    let text = br.text().await;
    assert!(
        text.contains("peer.handshake") && text.contains("handshake completed"),
        "{text}"
    );
    br.accessible().await;
    br.screenshot("peer").await;
    br.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gated_revoke_is_approved_by_a_second_operator_and_a_gated_propose_collected_once() {
    let db = TestDb::gated();
    let requester = create_operator(
        &mut db.conn(),
        "requester",
        &[Permission::FederationRead, Permission::FederationManage],
    );
    let approver = create_operator(
        &mut db.conn(),
        "approver",
        &[Permission::FederationRead, Permission::InfraTasksControl],
    );
    let app = ui_app(&db).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let b = Browser::start("approvals").await;
    sign_in(&b, &app, &requester).await;
    b.goto(&app.url(&format!("/peers/{peer}"))).await;
    assert!(b.exists("#reason-revoke").await, "{}", b.text().await);
    b.fill("#reason-revoke", "compromised host").await;
    b.click("button.revoke").await;
    assert!(
        b.text()
            .await
            .contains("Approval required: system.federation_peer_revoke")
    );
    // Own request: no Approve button, the reason shown.
    b.goto(&app.url("/ai/autonomy/approvals")).await;
    assert!(!b.exists("button.approve").await);
    assert!(
        b.text()
            .await
            .contains("You cannot decide your own approval request.")
    );
    b.screenshot("own-request").await;
    // A gated propose by the same requester.
    b.goto(&app.url("/peers/new")).await;
    b.fill("#remote_instance_url", "https://platform-c.example.com")
        .await;
    b.click("form[action='/peers/new'] button").await;
    assert!(
        b.text()
            .await
            .contains("Approval required: system.federation_peer_propose")
    );

    // The approver decides both.
    let second = Browser::start("approver").await;
    sign_in(&second, &app, &approver).await;
    second.goto(&app.url("/ai/autonomy/approvals")).await;
    second.accessible().await;
    second.screenshot("pending").await;
    for _ in 0..2 {
        second
            .fill("input[name='comments']", "confirmed on call")
            .await;
        second.click("button.approve").await;
    }
    assert!(!second.exists("button.approve").await);
    assert_eq!(app.sdwan_tick().await["executed"], 2);
    second.goto(&app.url(&format!("/peers/{peer}"))).await;
    assert!(second.text().await.contains("revoked"));
    // The requester collects the proposal's token, once.
    b.goto(&app.url("/ai/autonomy/approvals")).await;
    b.click("form[action$='/claim'] button").await;
    let token = b.value("#secret").await;
    assert!(token.starts_with("pnfa1_"));
    b.screenshot("collected").await;
    b.goto(&app.url("/ai/autonomy/approvals")).await;
    assert!(!b.source().await.contains(&token));
    b.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_csrf_token_is_403_and_changes_nothing_and_script_is_shown_as_text() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = ui_app(&db).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let b = Browser::start("csrf").await;
    sign_in(&b, &app, &admin).await;
    b.goto(&app.url(&format!("/peers/{peer}"))).await;
    b.fill("#reason-suspend", "maintenance").await;
    b.client
        .execute(
            "for (const f of document.querySelectorAll('input[name=csrf_token]')) f.value = 'forged';",
            vec![],
        )
        .await
        .unwrap();
    b.click("button.suspend").await;
    let text = b.text().await;
    assert!(text.contains("Invalid or missing CSRF token"), "{text}");
    let status: String = app
        .get(&format!("/api/v1/system/federation/peers/{peer}"), &admin)
        .await
        .1["data"]["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status, "active", "nothing changed");
    // No token at all: the same 403 page; a path that is not an id: a page, not JSON.
    let answer = b
        .client
        .execute(
            "const r = await fetch(arguments[0], {method: 'POST', body: 'reason=x',
               headers: {'Content-Type': 'application/x-www-form-urlencoded'}});
             return [r.status, await r.text()];",
            vec![json!(format!("/peers/{peer}/suspend"))],
        )
        .await
        .unwrap();
    assert_eq!(answer[0], 403);
    assert!(
        answer[1]
            .as_str()
            .unwrap()
            .contains("Invalid or missing CSRF token")
    );
    let answer = b
        .client
        .execute(
            "const r = await fetch('/peers/not-a-uuid');
             return [r.status, r.headers.get('content-type')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(answer[0], 404);
    assert!(
        answer[1].as_str().unwrap().starts_with("text/html"),
        "{answer}"
    );
    // A reason with markup is text, never markup.
    b.goto(&app.url(&format!("/peers/{peer}"))).await;
    b.fill("#reason-suspend", "<script>alert(1)</script>").await;
    b.click("button.suspend").await;
    let text = b.text().await;
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    let scripts: serde_json::Value = b
        .client
        .execute("return document.querySelectorAll('script').length;", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, json!(1), "only app.js");
    b.screenshot("xss").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_and_disabling_end_every_copy_of_the_session() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let ops = create_operator(&mut db.conn(), "ops", &[Permission::FederationRead]);
    let app = ui_app(&db).await;
    let b = Browser::start("signout").await;
    sign_in(&b, &app, &admin).await;
    let cookie = b.cookie("pn_session").await.unwrap();
    let replay = || async {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url("/"))
            .header("Cookie", format!("pn_session={cookie}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        replay().await,
        200,
        "the copied cookie works while signed in"
    );
    b.click("form.signout button").await;
    assert_eq!(b.current_path().await, "/login");
    assert_eq!(
        replay().await,
        303,
        "the copied cookie died with the sign-out"
    );

    // Disabling an operator ends their session on the next request.
    sign_in(&b, &app, &ops).await;
    assert_eq!(b.current_path().await, "/");
    let me = app.operator(&ops).me().await.unwrap();
    app.operator(&admin)
        .disable_operator(me.id.into())
        .await
        .unwrap();
    b.goto(&app.url("/")).await;
    assert_eq!(b.current_path().await, "/login");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_are_issued_explained_renewed_and_revoked_from_the_peer_page() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = ui_app(&db).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let b = Browser::start("grants").await;
    sign_in(&b, &app, &admin).await;
    b.goto(&app.url(&format!("/peers/{peer}"))).await;
    b.click("main a[href$='/grants']").await;
    assert!(b.text().await.contains("No grants yet"));
    b.accessible().await;
    b.fill("#sdwan_network_ids", "overlay-1").await;
    b.fill("#source_cidrs", "10.0.0.0/8").await;
    b.click("form[action$='/grants'] button").await;
    let token = b.value("#secret").await;
    assert!(token.starts_with("fg-"), "{token}");
    b.screenshot("issued").await;
    // Explain a call from the wrong network: the failing dimension, the API's own checks.
    b.fill("input[name='resource_id']", "net-1").await;
    b.fill("input[name='network']", "overlay-2").await;
    b.fill("input[name='source_ip']", "10.1.2.3").await;
    b.click("form[action$='/explain'] button").await;
    let text = b.text().await;
    assert!(
        text.contains(": denied") && text.contains("network overlay-2"),
        "{text}"
    );
    assert!(
        !b.source().await.contains(&token),
        "the token is shown once"
    );
    b.screenshot("explained").await;
    b.fill("input[name='ttl_days']", "60").await;
    b.click("form[action$='/renew'] button").await;
    b.fill("input[name='reason']", "rotated").await;
    b.click("form[action$='/revoke'] button").await;
    let text = b.text().await;
    assert!(
        text.contains("revoked: rotated") && text.contains("not live"),
        "{text}"
    );
    // Every peer's grants, from the navigation.
    b.click("header nav a[href='/grants']").await;
    let text = b.text().await;
    assert!(
        text.contains(&peer.to_string()) && text.contains("revoked: rotated"),
        "{text}"
    );
    b.accessible().await;
    b.close().await;
}
