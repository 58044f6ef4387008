//! The web companion in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) with `fantoccini`.
//!
//! An engineer opens the handoff link from chat and sees the four sections (the problem, what's
//! been tried, the assessment, where to start); the Claim button is reachable from the keyboard;
//! clicking it claims the handoff and the page shows who has it. Meanwhile an owner's queue page,
//! open in a second browser session with its own cookies, turns the card into "Claimed by Sam"
//! without reloading, through Server-Sent Events. Screenshots of both pages go to
//! `target/browser/`.
//!
//! Without `/usr/bin/chromium` and `chromedriver` the test says so and passes, so `cargo test`
//! works on a machine with only Rust; with `RF_REQUIRE_BROWSER=1` (as CI sets) it fails instead.

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use rf_core::domain::{Actor, Role};
use rf_core::ids::HandoffId;
use rf_core::links::LinkScope;
use rf_tests::{TestApp, TestDb};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to reach the state a step waits for.
const PATIENCE: Duration = Duration::from_secs(10);

/// `chromedriver` on the `PATH`, if Chromium and its driver are both installed.
fn installed_driver() -> Option<PathBuf> {
    if !Path::new(CHROMIUM).is_file() {
        return None;
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|path| path.is_file())
}

/// A chromedriver process with the browser profiles it hands out. Dropping it (also when the test
/// panics) kills the driver and every browser it started, then removes the profiles.
struct Chromedriver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Chromedriver {
    async fn start(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let mut command = Command::new(program);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so Drop can take the browsers down with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: tempfile::tempdir().expect("a directory for browser profiles"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port} within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session: a fresh headless Chromium with its own profile, so its own cookies.
    async fn session(&self, name: &str) -> Client {
        let profile = self.profiles.path().join(name);
        std::fs::create_dir(&profile).expect("a browser profile directory");
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // No reaching out to Google: this machine has no internet.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1200",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open a Chromium session for {name}: {e}"))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn person(app: &TestApp, name: &str, role: Role) -> Actor {
    app.person(name, role).await
}

/// A signed companion link for `actor`, as the bot would post it in chat.
async fn link(app: &TestApp, actor: &Actor, scope: LinkScope) -> String {
    app.app
        .engine
        .share_link(actor.account_id, actor.user_id, actor.role, scope)
        .await
        .unwrap()
        .expect("the test app has a companion, so links")
}

async fn escalate(app: &TestApp, jane: &Actor) -> HandoffId {
    let lines = ["escalate urgent whole office is down"];
    let (_, handoff) = app.session(jane, "vpn will not connect", &lines).await;
    handoff.expect("escalating leaves a handoff")
}

/// Runs `script` in the page until `done` accepts what it returns (errors, e.g. while the page
/// reloads, count as "not yet"); panics after `PATIENCE`, saying what was last seen.
async fn wait_until(
    browser: &Client,
    what: &str,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match browser.execute(script, Vec::new()).await {
            Ok(value) if done(&value) => return value,
            Ok(value) => value.to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

async fn screenshot(browser: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(name), png).expect("write the screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_link_opens_the_context_and_a_claim_updates_the_live_queue() {
    let Some(program) = installed_driver() else {
        let message = format!(
            "the browser test needs {CHROMIUM} and chromedriver \
             (apt-get install chromium chromium-driver)"
        );
        assert!(
            std::env::var("RF_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "RF_REQUIRE_BROWSER=1: {message}"
        );
        eprintln!("browser test skipped: {message}; set RF_REQUIRE_BROWSER=1 to fail instead");
        return;
    };

    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(rf_core::time::SystemClock)).await;
    let jane = person(&app, "Jane", Role::Engineer).await;
    let sam = person(&app, "Sam", Role::Engineer).await;
    let olga = person(&app, "Olga", Role::Owner).await;
    let handoff = escalate(&app, &jane).await;
    let sam_link = link(&app, &sam, LinkScope::Handoff(handoff)).await;
    let olga_link = link(&app, &olga, LinkScope::Account).await;

    let driver = Chromedriver::start(&program).await;
    let started = Instant::now();
    let olga_browser = driver.session("olga").await;
    let sam_browser = driver.session("sam").await;
    eprintln!(
        "on {}: two Chromium sessions up in {:?}",
        db.backend(),
        started.elapsed()
    );

    // Olga watches the live queue.
    olga_browser.goto(&olga_link).await.unwrap();
    assert_eq!(
        path_of(&olga_browser).await,
        "/queue",
        "an account link lands on the queue"
    );
    wait_until(
        &olga_browser,
        "the queue's event stream connects",
        "return document.body.getAttribute('data-stream');",
        |v| v == "ready",
    )
    .await;
    let card = format!("#h-{handoff}");
    let before = olga_browser
        .find(Locator::Css(&format!("{card} .status")))
        .await
        .expect("the escalation's card is on the queue")
        .text()
        .await
        .unwrap();
    assert_eq!(before, "Waiting for a senior");
    assert!(
        olga_browser
            .find(Locator::Css(&format!("{card} .claim-form")))
            .await
            .is_ok(),
        "an owner can claim from the queue"
    );
    // Survives only as long as the page does: proves the update below comes without a reload.
    olga_browser
        .execute("window.rfNotReloaded = true;", Vec::new())
        .await
        .unwrap();

    // Sam opens the handoff link from chat: the four sections.
    sam_browser.goto(&sam_link).await.unwrap();
    assert_eq!(
        path_of(&sam_browser).await,
        format!("/handoffs/{handoff}"),
        "a handoff link lands on its handoff"
    );
    let problem = sam_browser
        .find(Locator::Css("#problem-heading"))
        .await
        .expect("the problem section")
        .text()
        .await
        .unwrap();
    assert!(
        problem.contains("vpn will not connect"),
        "the problem summary heads the page: {problem:?}"
    );
    assert_eq!(
        sam_browser
            .find(Locator::Css("#problem-heading"))
            .await
            .unwrap()
            .tag_name()
            .await
            .unwrap(),
        "h1"
    );
    for (id, heading) in [
        ("tried-heading", "What's been tried"),
        ("assessment-heading", "Assessment"),
        ("start-heading", "Start here"),
    ] {
        let element = sam_browser
            .find(Locator::Css(&format!(
                "section[aria-labelledby='{id}'] #{id}"
            )))
            .await
            .unwrap_or_else(|e| panic!("the {heading:?} section: {e}"));
        assert!(
            element.is_displayed().await.unwrap(),
            "{heading:?} is visible"
        );
        let text = element.text().await.unwrap();
        assert!(text.starts_with(heading), "#{id} reads {text:?}");
    }

    // The Claim button is there and takes keyboard focus.
    let claim = sam_browser
        .find(Locator::Css(".claim-form button"))
        .await
        .expect("a Claim button for an unclaimed handoff");
    assert_eq!(claim.text().await.unwrap(), "Claim");
    let focused = sam_browser
        .execute(
            "var b = document.querySelector('.claim-form button'); b.focus(); \
             return document.activeElement === b;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(focused, true, "the Claim button can take keyboard focus");
    screenshot(&sam_browser, "handoff.png").await;

    // Sam claims; his page reloads to say so.
    let clicked = Instant::now();
    claim.click().await.expect("click Claim");
    let badge = wait_until(
        &sam_browser,
        "the handoff page shows the claim",
        "var b = document.querySelector('.claim-row .badge'); return b ? b.textContent : null;",
        |v| v.as_str().is_some_and(|t| t.starts_with("Claimed by Sam")),
    )
    .await;
    eprintln!(
        "handoff page: {badge} ({:?} after the click)",
        clicked.elapsed()
    );
    assert!(
        sam_browser.find(Locator::Css(".claim-form")).await.is_err(),
        "no Claim button once claimed"
    );
    let stored = app
        .app
        .engine
        .store()
        .get_handoff(jane.account_id, handoff)
        .await
        .unwrap();
    assert_eq!(stored.claimed_by, Some(sam.user_id), "Sam holds the claim");

    // Olga's queue follows without a reload.
    let status = wait_until(
        &olga_browser,
        "the queue card turns claimed",
        &format!(
            "var c = document.querySelector('{card}'); \
             return c && c.classList.contains('claimed') && !c.querySelector('.claim-form') \
                 ? c.querySelector('.status').textContent : null;"
        ),
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(status, "Claimed by Sam");
    eprintln!("queue updated {:?} after the click", clicked.elapsed());
    assert_eq!(
        olga_browser
            .execute("return window.rfNotReloaded === true;", Vec::new())
            .await
            .unwrap(),
        true,
        "the queue updated in place, without reloading"
    );
    let waiting = olga_browser
        .find(Locator::Css("#waiting"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(waiting, "0 waiting", "the count follows");
    screenshot(&olga_browser, "queue.png").await;

    olga_browser.close().await.expect("close Olga's browser");
    sam_browser.close().await.expect("close Sam's browser");
}
