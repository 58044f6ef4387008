//! The web companion over real HTTP: signed links, the cookie exchange, tenant scoping.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use rf_companion::links::TokenKind;
use rf_core::domain::{ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, ThreadKey};
use rf_core::links::LinkScope;
use rf_core::time::{Clock, ManualClock, Timestamp};
use rf_tests::{TestApp, TestDb};
use std::sync::Arc;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Fixture {
    _db: TestDb,
    app: TestApp,
    clock: ManualClock,
}

async fn fixture() -> Fixture {
    let db = TestDb::new().await;
    let clock = ManualClock::starting_at(Timestamp::from_millis(1_795_000_000_000));
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    Fixture {
        _db: db,
        app,
        clock,
    }
}

/// Starts a session in an account (a new installation, or the console's) and returns its id.
async fn session_in(
    f: &Fixture,
    installation: &InstallationRef,
    problem: &str,
) -> (rf_core::domain::Actor, rf_core::ids::SessionId) {
    let engine = &f.app.app.engine;
    let store = engine.store();
    store
        .ensure_installation(installation, "Other MSP", "Desk", engine.now())
        .await
        .unwrap();
    let actor = engine
        .identify(
            installation,
            &ChatIdentity {
                platform: installation.platform,
                platform_user_id: "U1".into(),
                display_name: "Jane".into(),
                email: None,
            },
            RoleAssignment::IfNew(Role::Engineer),
        )
        .await
        .unwrap();
    let thread = ThreadKey {
        platform: installation.platform,
        workspace: installation.external_id.clone(),
        channel: "C1".into(),
        thread: rf_core::ids::StepId::new().to_string(),
    };
    engine.start(&actor, thread.clone(), problem).await.unwrap();
    engine
        .handle(
            &actor,
            &thread,
            rf_core::engine::Input::Text("note secret=abc123 in the config".into()),
        )
        .await
        .unwrap();
    let session = store
        .session_for_thread(actor.account_id, &thread)
        .await
        .unwrap()
        .unwrap();
    (actor, session.id)
}

async fn link_for(f: &Fixture, actor: &rf_core::domain::Actor, scope: LinkScope) -> String {
    f.app
        .app
        .engine
        .share_link(actor.account_id, actor.user_id, actor.role, scope)
        .await
        .unwrap()
        .expect("the companion is configured")
}

/// Opens a link; returns the cookie header to send afterwards and where it redirected.
async fn open(url: &str) -> (String, String) {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap()
    );
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    (cookie.split(';').next().unwrap().to_owned(), location)
}

fn console() -> InstallationRef {
    resolutionflow::app::console_installation()
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let f = fixture().await;
    let health = client()
        .get(format!("{}/healthz", f.app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = client()
        .get(format!("{}/readyz", f.app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_link_opens_the_session_timeline() {
    let f = fixture().await;
    let (actor, session) = session_in(&f, &console(), "printer offline").await;
    let url = link_for(&f, &actor, LinkScope::Session(session)).await;
    let (cookie, location) = open(&url).await;
    assert_eq!(location, format!("/sessions/{session}"));
    let page = client()
        .get(format!("{}{location}", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let body = page.text().await.unwrap();
    assert!(
        body.contains("<h1 id=\"session-title\">printer offline</h1>"),
        "{body}"
    );
    assert!(body.contains("Jane started the session"), "{body}");
    assert!(body.contains("secret=[REDACTED:password]"), "{body}");
    assert!(!body.contains("abc123"), "{body}");

    let download = client()
        .get(format!("{}/sessions/{session}/export/md", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(download.text().await.unwrap().contains("## Timeline (UTC)"));
}

#[tokio::test]
async fn a_tampered_link_is_refused_with_401() {
    let f = fixture().await;
    let (actor, session) = session_in(&f, &console(), "printer offline").await;
    let url = link_for(&f, &actor, LinkScope::Session(session)).await;
    let (head, token) = url.split_once("token=").unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Claim another role by editing the payload; the signature no longer matches.
    parts[1] = parts[1].replacen('e', "f", 1);
    let forged = format!("{head}token={}", parts.join("."));
    let response = client().get(&forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("This link is not valid")
    );

    let no_cookie = client()
        .get(format!("{}/sessions/{session}", f.app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), StatusCode::UNAUTHORIZED);
    let forged_cookie = client()
        .get(format!("{}/sessions/{session}", f.app.base_url))
        .header(COOKIE, format!("rf_session={}", parts.join(".")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_cookie.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_link_explains_itself() {
    let f = fixture().await;
    let (actor, session) = session_in(&f, &console(), "printer offline").await;
    let url = link_for(&f, &actor, LinkScope::Session(session)).await;
    // Links live 24 hours by default.
    f.clock.advance_millis(25 * 3_600_000);
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.unwrap();
    assert!(body.contains("This link has expired"), "{body}");
    assert!(body.contains("Ask the bot for a new one"), "{body}");
}

#[tokio::test]
async fn another_tenants_session_is_not_found() {
    let f = fixture().await;
    let (jane, own) = session_in(&f, &console(), "printer offline").await;
    let other = InstallationRef {
        platform: Platform::Slack,
        external_id: "T-OTHER".into(),
    };
    let (_, foreign) = session_in(&f, &other, "vpn down").await;
    let url = link_for(&f, &jane, LinkScope::Account).await;
    let (cookie, location) = open(&url).await;
    assert_eq!(location, "/queue");
    let home = client()
        .get(format!("{}/", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let home = home.text().await.unwrap();
    assert!(
        home.contains("printer offline") && !home.contains("vpn down"),
        "{home}"
    );
    for path in [
        format!("/sessions/{foreign}"),
        format!("/sessions/{foreign}/export/md"),
    ] {
        let response = client()
            .get(format!("{}{path}", f.app.base_url))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let own_page = client()
        .get(format!("{}/sessions/{own}", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(own_page.status(), StatusCode::OK);
    let junk = client()
        .get(format!("{}/sessions/not-an-id", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_session_link_opens_only_its_session() {
    let f = fixture().await;
    let (jane, first) = session_in(&f, &console(), "printer offline").await;
    let (_, second) = session_in(&f, &console(), "slow pc").await;
    let (cookie, _) = open(&link_for(&f, &jane, LinkScope::Session(first)).await).await;
    let response = client()
        .get(format!("{}/sessions/{second}", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_flow_link_opens_the_library_and_nothing_else() {
    let f = fixture().await;
    let (jane, session) = session_in(&f, &console(), "printer offline").await;
    let store = f.app.app.engine.store();
    let flow = |slug: &'static str| async move {
        store
            .get_flow_by_slug(jane.account_id, slug)
            .await
            .unwrap()
            .expect(slug)
            .summary
            .id
    };
    let (printer, patching) = (
        flow("printer-offline").await,
        flow("monthly-patch-compliance").await,
    );
    let (cookie, location) = open(&link_for(&f, &jane, LinkScope::Flow(printer)).await).await;
    assert_eq!(location, format!("/flows/{printer}"));
    let get = |path: String| {
        client()
            .get(format!("{}{path}", f.app.base_url))
            .header(COOKIE, &cookie)
            .send()
    };
    let page = get(location).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    // The tree's steps, each with an anchor the branches lead to.
    assert!(
        page.contains("Printer shows offline")
            && page.contains("id=\"step-")
            && page.contains("href=\"#step-"),
        "{page}"
    );
    // The library is the account's: a maintenance flow shows its schedule and commands.
    let page = get(format!("/flows/{patching}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("0 6 2 * *") && page.contains("Get-HotFix"),
        "{page}"
    );
    // Nothing else of the account opens with it.
    for path in [
        format!("/sessions/{session}"),
        "/queue".to_owned(),
        "/team/metrics".to_owned(),
        "/flows/not-an-id".to_owned(),
    ] {
        let response = get(path.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Another account's link does not open this account's flows.
    let other = InstallationRef {
        platform: Platform::Slack,
        external_id: "T-OTHER".into(),
    };
    let (bob, _) = session_in(&f, &other, "vpn down").await;
    let (theirs, _) = open(&link_for(&f, &bob, LinkScope::Account).await).await;
    let response = client()
        .get(format!("{}/flows/{printer}", f.app.base_url))
        .header(COOKIE, &theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_a_link_ends_access() {
    let f = fixture().await;
    let (jane, session) = session_in(&f, &console(), "printer offline").await;
    let url = link_for(&f, &jane, LinkScope::Session(session)).await;
    let (cookie, location) = open(&url).await;
    let store = f.app.app.engine.store();
    let token = url.split("token=").nth(1).unwrap();
    let claims = f
        .app
        .app
        .companion
        .keys
        .verify(token, TokenKind::Link, f.clock.now())
        .unwrap();
    store
        .revoke_link(jane.account_id, claims.jti, f.clock.now())
        .await
        .unwrap();
    let response = client()
        .get(format!("{}{location}", f.app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.unwrap().contains("revoked"));
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
