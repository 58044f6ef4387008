//! The real binary, several processes at once: crash recovery and claims across replicas.

use reqwest::header::{COOKIE, SET_COOKIE};
use rf_core::domain::{ChatIdentity, Platform, Role, RoleAssignment};
use rf_core::outbox::{DeliveryChannel, DeliveryStatus};
use rf_core::team::{LadderAction, LadderStep, When};
use rf_core::time::{Clock, SystemClock};
use rf_tests::TestDb;
use rf_tests::process::{MASTER_KEY, command, serve};
use rf_tests::smtp::SmtpSink;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Reads a child's stdout on a thread, line by line.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut String) -> bool {
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return true;
        }
    }
    false
}

/// The console account as the binary creates it, with the test's ladder and a senior with e-mail.
async fn prepare(db: &TestDb) -> (rf_core::ids::AccountId, rf_core::ids::TeamId) {
    let store = db.port();
    let (account, team) = store
        .ensure_installation(
            &resolutionflow::app::console_installation(),
            "My MSP",
            "Service Desk",
            SystemClock.now(),
        )
        .await
        .unwrap();
    let mut settings = team.settings.clone();
    settings.set_escalation_channel(rf_core::domain::ChannelRef {
        platform: Platform::Console,
        workspace: "local".into(),
        channel: "#escalations".into(),
    });
    settings.ladder.steps = vec![LadderStep::new(0, LadderAction::EmailSeniors, When::Always)];
    store
        .save_team_settings(account.id, team.id, &settings)
        .await
        .unwrap();
    store
        .upsert_user(
            account.id,
            team.id,
            &ChatIdentity {
                platform: Platform::Console,
                platform_user_id: "sam".into(),
                display_name: "Sam".into(),
                email: Some("sam@acme.test".into()),
            },
            RoleAssignment::Always(Role::Engineer),
            SystemClock.now(),
        )
        .await
        .unwrap();
    (account.id, team.id)
}

// Multi-threaded: the SMTP sink must keep answering while this test waits on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_after_the_handoff_commits_delivers_once_after_restart() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (account, _) = prepare(&db).await;
    let sink = SmtpSink::start().await;

    // The first process records the escalation but has no worker, like one killed right after
    // the commit; then it is killed (SIGKILL, no shutdown).
    let mut first = command(&db, dir.path())
        .args(["console", "--no-http"])
        .env("RF_JOBS__ENABLED", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut first);
    first
        .stdin
        .as_mut()
        .unwrap()
        .write_all(
            b"/as Jane engineer\n/rf printer offline\nescalate urgent VIP printing payroll\n",
        )
        .unwrap();
    let mut seen = String::new();
    assert!(
        wait_for_line(&lines, "Escalated by Jane (priority urgent)", &mut seen),
        "{seen}"
    );
    first.kill().unwrap();
    first.wait().unwrap();

    let store = db.port();
    let handoff = store
        .list_handoffs(
            account,
            &rf_core::ports::HandoffFilter {
                open_only: true,
                since: None,
                limit: 5,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the handoff was committed");
    let before = store.deliveries(account, handoff.id).await.unwrap();
    let card = before
        .iter()
        .find(|d| d.channel == DeliveryChannel::ChatCard)
        .expect("a card delivery");
    assert_eq!(
        card.status,
        DeliveryStatus::Queued,
        "nothing was delivered before the kill"
    );
    assert!(!store.pending_jobs().await.unwrap().is_empty());
    assert!(sink.messages().is_empty());

    // Restarted with a worker: the card and the e-mail go out once.
    let restart = |db: &TestDb| {
        let mut child = command(db, dir.path())
            .args(["console", "--no-http"])
            .env("RF_SMTP_HOST", "127.0.0.1")
            .env("RF_SMTP_PORT", sink.address.port().to_string())
            .env("RF_SMTP_TLS", "none")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"/channel escalations\n/quit\n")
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let second = restart(&db);
    assert_eq!(
        second.matches("URGENT escalation: printer offline").count(),
        1,
        "the card, once:\n{second}"
    );
    let mail = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].to, ["sam@acme.test"]);
    let after = store.deliveries(account, handoff.id).await.unwrap();
    let card = after
        .iter()
        .find(|d| d.channel == DeliveryChannel::ChatCard)
        .unwrap();
    assert_eq!((card.status, card.attempts), (DeliveryStatus::Sent, 1));
    assert!(
        after
            .iter()
            .any(|d| d.channel == DeliveryChannel::Email && d.status == DeliveryStatus::Sent)
    );

    // A third start sends nothing more.
    let third = restart(&db);
    assert!(
        !third.contains("URGENT escalation"),
        "the card is not posted again: {third}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "no second e-mail");
    assert_eq!(
        store.deliveries(account, handoff.id).await.unwrap(),
        after,
        "no delivery changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claims_across_two_server_processes_have_one_winner() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (account, team) = prepare(&db).await;
    let servers = [
        serve(&db, dir.path(), &[]).await,
        serve(&db, dir.path(), &[]).await,
    ];

    // The test's own engine on the same database and master key: it escalates and mints links
    // that either server accepts.
    let mut config = resolutionflow::config::Config::default();
    config.database.url = db.url.clone();
    config.security.master_key = Some(MASTER_KEY.to_owned().into());
    config.http.public_url = Some(servers[0].url.clone());
    config.jobs.enabled = false;
    let app = resolutionflow::app::App::build(config).await.unwrap();
    let engine = &app.engine;
    let identity = |name: &str| ChatIdentity {
        platform: Platform::Console,
        platform_user_id: name.to_lowercase(),
        display_name: name.to_owned(),
        email: None,
    };
    let installation = resolutionflow::app::console_installation();
    let jane = engine
        .identify(
            &installation,
            &identity("Jane"),
            RoleAssignment::Always(Role::Engineer),
        )
        .await
        .unwrap();
    let thread = rf_core::domain::ThreadKey {
        platform: Platform::Console,
        workspace: "local".into(),
        channel: "#helpdesk".into(),
        thread: "race".into(),
    };
    engine
        .start(&jane, thread.clone(), "printer offline")
        .await
        .unwrap();
    engine
        .handle(
            &jane,
            &thread,
            rf_core::engine::Input::Text("escalate high payroll".into()),
        )
        .await
        .unwrap();
    let handoff = db
        .port()
        .session_for_thread(account, &thread)
        .await
        .unwrap()
        .unwrap()
        .handoff_id
        .unwrap();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut claimers = Vec::new();
    for i in 0..50 {
        let senior = engine
            .identify(
                &installation,
                &identity(&format!("Senior{i:02}")),
                RoleAssignment::Always(Role::Engineer),
            )
            .await
            .unwrap();
        let link = engine
            .share_link(
                account,
                senior.user_id,
                senior.role,
                rf_core::links::LinkScope::Account,
            )
            .await
            .unwrap()
            .unwrap();
        let server = &servers[i % 2].url;
        let link = link.replace(&servers[0].url, server);
        let opened = client.get(&link).send().await.unwrap();
        assert_eq!(opened.status(), 303, "{link}");
        let cookie = opened.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        claimers.push((server.clone(), cookie));
    }
    let start = Arc::new(tokio::sync::Barrier::new(claimers.len()));
    let tasks: Vec<_> = claimers
        .into_iter()
        .map(|(server, cookie)| {
            let (client, start) = (client.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let response = client
                    .post(format!("{server}/api/handoffs/{handoff}/claim"))
                    .header(COOKIE, cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.json::<serde_json::Value>().await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    let mut lost_to = Vec::new();
    for task in tasks {
        let body = task.await.unwrap();
        match body["outcome"].as_str() {
            Some("won") => won += 1,
            Some("already_claimed") => {
                lost_to.push(body["claimed_by"].as_str().unwrap_or_default().to_owned())
            }
            other => panic!("unexpected outcome {other:?}: {body}"),
        }
    }
    assert_eq!(
        won,
        1,
        "exactly one winner across two processes on {}",
        db.backend()
    );
    assert_eq!(lost_to.len(), 49);
    let winner = db
        .port()
        .get_handoff(account, handoff)
        .await
        .unwrap()
        .claimed_by_name
        .unwrap();
    assert!(
        lost_to.iter().all(|name| *name == winner),
        "every loser is told the winner ({winner}): {lost_to:?}"
    );
    assert_eq!(
        db.port()
            .claim_history(account, handoff)
            .await
            .unwrap()
            .len(),
        1
    );
    let _ = team;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_re_encrypts_stored_secrets_under_the_current_master_key() {
    use resolutionflow::keys::{
        INSTALLATION_SECRETS, MasterKey, Sealer, installation_secret_owner,
    };
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store = db.port();
    let (account, team) = rf_tests::account(store.as_ref(), "Acme").await.unwrap();
    let place = rf_core::domain::InstallationRef {
        platform: Platform::Slack,
        external_id: "T9".into(),
    };
    let now = SystemClock.now();
    store
        .attach_installation(&place, account.id, team.id, now)
        .await
        .unwrap();
    let owner = installation_secret_owner(&place, "slack_bot_token");
    let old = MasterKey::generate();
    let sealed = Sealer::new(&old, INSTALLATION_SECRETS).seal("xoxb-rotate-me", &owner);
    store
        .save_installation_secret(&place, "slack_bot_token", &sealed, now)
        .await
        .unwrap();

    let rotate = |key: &str| {
        command(&db, dir.path())
            .args(["keys", "rotate"])
            .env("RF_OLD_MASTER_KEY", key)
            .output()
            .unwrap()
    };
    let first = rotate(&old.to_base64());
    assert!(first.status.success(), "{first:?}");
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        said.contains("re-encrypted 1 stored secret(s)") && said.contains("0 already"),
        "{said}"
    );
    let current = MasterKey::from_base64(MASTER_KEY).unwrap();
    let stored = store
        .installation_secret(&place, "slack_bot_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Sealer::new(&current, INSTALLATION_SECRETS)
            .open(&stored, &owner)
            .unwrap(),
        "xoxb-rotate-me"
    );
    assert!(
        Sealer::new(&old, INSTALLATION_SECRETS)
            .open(&stored, &owner)
            .is_err()
    );
    // Again: nothing left to do.
    let again = rotate(&old.to_base64());
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.contains("re-encrypted 0") && said.contains("1 already"),
        "{said}"
    );
    // A secret under some third key: a clear error, and nothing written, not even the rotatable
    // secret next to it.
    let stray = Sealer::new(&MasterKey::generate(), INSTALLATION_SECRETS).seal("xoxb-x", &owner);
    store
        .save_installation_secret(&place, "slack_bot_token", &stray, now)
        .await
        .unwrap();
    let other = rf_core::domain::InstallationRef {
        platform: Platform::Slack,
        external_id: "T8".into(),
    };
    store
        .attach_installation(&other, account.id, team.id, now)
        .await
        .unwrap();
    let other_owner = installation_secret_owner(&other, "slack_bot_token");
    let rotatable = Sealer::new(&old, INSTALLATION_SECRETS).seal("xoxb-y", &other_owner);
    store
        .save_installation_secret(&other, "slack_bot_token", &rotatable, now)
        .await
        .unwrap();
    let failed = rotate(&old.to_base64());
    assert!(!failed.status.success());
    let error = String::from_utf8_lossy(&failed.stderr);
    assert!(error.contains("opens under neither key"), "{error}");
    assert!(!error.contains("xoxb"), "no secret in the error: {error}");
    assert_eq!(
        store
            .installation_secret(&other, "slack_bot_token")
            .await
            .unwrap()
            .as_deref(),
        Some(rotatable.as_str()),
        "nothing was written"
    );
}

// Multi-threaded: the fake PSA keeps serving while a child process is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_add_tests_and_seals_the_connection_and_keys_rotate_covers_it() {
    use resolutionflow::keys::{MasterKey, Sealer};
    use resolutionflow::psa::{PSA_CREDENTIALS, credentials_owner};
    use rf_core::psa::Provider;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = rf_tests::psa::FakePsa::start(Provider::ConnectWise).await;
    let settings = fake.settings();
    let credentials = fake.credentials();
    let psa = |args: &[&str], secrets: &serde_json::Value| {
        let mut cmd = command(&db, dir.path());
        cmd.arg("psa").args(args);
        for (name, value) in secrets.as_object().unwrap() {
            cmd.env(
                format!("RF_PSA_{}", name.to_uppercase()),
                value.as_str().unwrap(),
            );
        }
        cmd.stdin(std::process::Stdio::null()).output().unwrap()
    };
    let sets: Vec<String> = settings
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    let mut add = vec!["add", "connectwise"];
    for set in &sets {
        add.extend(["--set", set.as_str()]);
    }

    // A credential on the command line is refused; wrong credentials fail the test, nothing saved.
    let mut leaked = add.clone();
    leaked.extend(["--set", "private_key=oops"]);
    let refused = psa(&leaked, &credentials);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RF_PSA_PRIVATE_KEY"));
    let wrong = psa(&add, &fake.wrong_credentials());
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("connection test failed"), "{said}");
    assert!(!said.contains(rf_tests::psa::WRONG_SECRET), "{said}");

    let added = psa(&add, &credentials);
    assert!(added.status.success(), "{added:?}");
    assert!(String::from_utf8_lossy(&added.stdout).contains("connected to ConnectWise Manage"));
    let shown = psa(&["show"], &serde_json::json!({}));
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown_text.contains("stored encrypted"), "{shown_text}");
    for secret in credentials.as_object().unwrap().values() {
        assert!(!shown_text.contains(secret.as_str().unwrap()));
    }
    assert!(psa(&["test"], &serde_json::json!({})).status.success());

    // Rotation re-encrypts the PSA credentials too.
    let store = db.port();
    let connection = store.all_psa_connections().await.unwrap().remove(0);
    let owner = credentials_owner(connection.account_id, connection.id);
    let current = MasterKey::from_base64(MASTER_KEY).unwrap();
    let plain = Sealer::new(&current, PSA_CREDENTIALS)
        .open(&connection.sealed_credentials, &owner)
        .unwrap();
    let old = MasterKey::generate();
    store
        .reseal_psa_credentials(
            connection.id,
            &connection.sealed_credentials,
            &Sealer::new(&old, PSA_CREDENTIALS).seal(&plain, &owner),
        )
        .await
        .unwrap();
    let broken = psa(&["test"], &serde_json::json!({}));
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("another master key"));
    let rotated = command(&db, dir.path())
        .args(["keys", "rotate"])
        .env("RF_OLD_MASTER_KEY", old.to_base64())
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("re-encrypted 1"));
    assert!(psa(&["test"], &serde_json::json!({})).status.success());
}
