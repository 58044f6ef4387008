//! The PSA integration end to end: the real app (engine, job worker, store, sealed credentials)
//! against fake ConnectWise, Autotask and HaloPSA servers speaking their real JSON.

use rf_console::Console;
use rf_core::domain::Role;
use rf_core::psa::{NoteStatus, Provider, PsaError, TicketDesk};
use rf_core::time::{ManualClock, Timestamp};
use rf_tests::psa::FakePsa;
use rf_tests::{TestApp, TestDb};
use serde_json::Value;
use std::sync::Arc;

fn clock() -> ManualClock {
    ManualClock::starting_at(Timestamp::from_millis(1_795_000_000_000))
}

/// A technician at the console, with the worker's output shown after each line.
struct Tech {
    console: Console,
    clock: ManualClock,
}

impl Tech {
    async fn new(app: &TestApp, clock: ManualClock) -> Self {
        let console = Console::new(
            app.app.engine.clone(),
            app.app.console.clone(),
            "Jane",
            Role::Engineer,
        )
        .await
        .unwrap()
        .with_settle(app.app.console_settle());
        Self { console, clock }
    }

    async fn say(&mut self, line: &str) -> String {
        self.clock.advance_millis(5_000);
        self.console.handle_line(line).await.0
    }
}

/// Every string in a JSON value, joined: the text of a posted note whatever its shape.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join("\n"),
        Value::Object(map) => map.values().map(text_of).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The flag that makes a note internal, as each PSA spells it.
fn is_internal(provider: Provider, body: &Value) -> bool {
    match provider {
        Provider::ConnectWise => {
            body["internalAnalysisFlag"] == true && body["processNotifications"] == false
        }
        Provider::Autotask => body["publish"] == 2,
        Provider::Halo => body["hiddenfromuser"] == true,
    }
}

async fn connect(app: &TestApp, fake: &FakePsa) {
    app.app
        .desk
        .save(
            app.app.account.id,
            app.app.team.id,
            fake.provider,
            fake.settings(),
            &fake.credentials(),
        )
        .await
        .expect("save the connection");
}

async fn jane_id(app: &TestApp) -> rf_core::ids::UserId {
    use rf_core::Store as _;
    app.app
        .store
        .list_users(app.app.account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.display_name == "Jane")
        .expect("Jane")
        .id
}

#[tokio::test]
async fn a_linked_ticket_is_pulled_and_the_note_pushed_once_to_each_psa() {
    for provider in Provider::ALL {
        let db = TestDb::new().await;
        let clock = clock();
        let app = TestApp::start(&db, Arc::new(clock.clone())).await;
        let fake = FakePsa::start(provider).await;
        connect(&app, &fake).await;
        let mut tech = Tech::new(&app, clock).await;

        tech.say("/rf Outlook keeps asking for my password").await;
        tech.say("2").await; // no flow: free-form
        let out = tech.say("ticket 12345").await;
        assert!(
            // Autotask shows its ticket number (T20240101.0001) for id 12345.
            out.contains(&format!(" from {}", provider.title())) && out.contains("Ticket #"),
            "{provider}: the ticket's details are shown:\n{out}"
        );
        assert!(
            out.contains("Outlook keeps prompting for password"),
            "{provider}: summary:\n{out}"
        );
        assert!(out.contains("Company"), "{provider}: company:\n{out}");

        // Jane credits her notes to her PSA member from chat (matching by e-mail is below).
        let mapped = tech
            .say(&format!(
                "/rf psa map @jane {}",
                fake.member_id("jane@msp.example")
            ))
            .await;
        assert!(
            mapped.contains("credited to Jane Doe"),
            "{provider}: {mapped}"
        );

        tech.say("The admin password: Sup3rS3cret!42 was reset")
            .await;
        tech.say("fact Mailbox is on Exchange Online").await;
        let preview = tech.say("push").await;
        assert!(
            preview.contains("Post to ticket #12345"),
            "{provider}: a preview with the button:\n{preview}"
        );
        assert!(
            !preview.contains("Sup3rS3cret!42"),
            "{provider}: the preview is redacted"
        );
        let posted = tech.say("1").await;
        assert!(
            posted.contains("The session note is in ticket #12345"),
            "{provider}: the thread is told when it lands:\n{posted}"
        );
        assert!(posted.contains("credited to Jane Doe"), "{posted}");

        // A second press of the same button posts nothing more.
        let again = tech.say("1").await;
        assert!(again.contains("already in ticket #12345"), "{again}");

        let notes = fake.notes();
        assert_eq!(notes.len(), 1, "{provider}: exactly one note");
        let note = &notes[0];
        let text = text_of(&note.body);
        assert_eq!(note.ticket, "12345");
        assert!(
            is_internal(provider, &note.body),
            "{provider}: {:#}",
            note.body
        );
        assert!(
            text.contains("Mailbox is on Exchange Online"),
            "{provider}: the session documentation is the note:\n{text}"
        );
        assert!(
            !text.contains("Sup3rS3cret!42") && text.contains("[REDACTED"),
            "{provider}: redacted before it left:\n{text}"
        );
        assert_eq!(
            note.member.as_deref(),
            Some(fake.member_id("jane@msp.example").as_str())
        );

        // The post log says who, when, which ticket and the PSA's note id.
        use rf_core::Store as _;
        let session = app
            .app
            .store
            .list_sessions(app.app.account.id, &Default::default())
            .await
            .unwrap()
            .remove(0);
        let log = app
            .app
            .store
            .psa_notes(app.app.account.id, session.id)
            .await
            .unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].status, NoteStatus::Posted);
        assert_eq!(log[0].psa_note_id.as_deref(), Some(note.id.as_str()));
        assert_eq!(log[0].requested_by, jane_id(&app).await);
        assert!(log[0].posted_at.is_some());

        // The session's companion page shows the post log.
        let jane = app.person("Jane", Role::Engineer).await;
        let url = app
            .app
            .engine
            .share_link(
                jane.account_id,
                jane.user_id,
                jane.role,
                rf_core::links::LinkScope::Session(session.id),
            )
            .await
            .unwrap()
            .unwrap();
        let opened = http().get(url).send().await.unwrap();
        let cookie = opened.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let page = http()
            .get(format!("{}/sessions/{}", app.base_url, session.id))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Posted to the PSA"), "{page}");
        assert!(page.contains(&format!("as note {}", note.id)), "{page}");
    }
}

#[tokio::test]
async fn members_are_matched_by_email_and_unknown_tickets_are_explained() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let fake = FakePsa::start(Provider::ConnectWise).await;
    connect(&app, &fake).await;
    let (account, team) = (app.app.account.id, app.app.team.id);

    // Bob has an e-mail address the PSA knows: his note is credited to him without any mapping.
    let bob = app
        .member(
            &resolutionflow::app::console_installation(),
            "Bob",
            Role::Engineer,
            Some("bob@msp.example"),
        )
        .await;
    let (posted, member) = app
        .app
        .desk
        .post_note(account, team, "12345", "Replaced the cable.", bob.user_id)
        .await
        .expect("posted");
    assert_eq!(member.map(|m| m.name).as_deref(), Some("Bob Smith"));
    assert_eq!(fake.notes()[0].id, posted.id);
    assert_eq!(fake.notes()[0].member.as_deref(), Some("bsmith"));

    // An unknown ticket: a message a technician understands, in the thread.
    let mut tech = Tech::new(&app, clock).await;
    tech.say("/rf VPN drops every hour").await;
    let out = tech.say("ticket 99999").await;
    assert!(
        out.contains("couldn't pull ticket #99999") && out.contains("99999 not found"),
        "{out}"
    );
}

#[tokio::test]
async fn a_two_minute_outage_delays_the_note_and_loses_nothing() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let fake = FakePsa::start(Provider::ConnectWise).await;
    connect(&app, &fake).await;
    let mut tech = Tech::new(&app, clock.clone()).await;
    tech.say("/rf Printer offline on floor 2").await;
    tech.say("2").await;
    tech.say("ticket 12345").await;
    tech.say("fact The spooler had stopped").await;
    tech.say("push").await;

    fake.set_down(true);
    let out = tech.say("1").await;
    assert!(
        out.contains("is not answering") && out.contains("nothing is lost"),
        "the thread is told the note waits:\n{out}"
    );
    // Two minutes of outage, on the job queue's clock: every retry fails, none posts.
    let mut waited = 0;
    while waited < 120_000 {
        clock.advance_millis(5_000);
        waited += 5_000;
        app.app.worker.run_due().await;
    }
    assert!(fake.notes().is_empty());
    let failures = fake
        .calls()
        .iter()
        .filter(|(method, path, status)| {
            method == "POST" && path.contains("/notes") && *status == 503
        })
        .count();
    assert!(failures >= 4, "retried during the outage: {failures}");

    // Back: the next retry posts it, once, and the thread hears about it.
    fake.set_down(false);
    let mut told = String::new();
    for _ in 0..120 {
        clock.advance_millis(5_000);
        told.push_str(&tech.say("").await);
        if !fake.notes().is_empty() && told.contains("The session note is in ticket #12345") {
            break;
        }
    }
    assert_eq!(fake.notes().len(), 1, "posted exactly once");
    assert!(
        told.contains("The session note is in ticket #12345"),
        "{told}"
    );
    assert!(text_of(&fake.notes()[0].body).contains("The spooler had stopped"));
}

#[tokio::test]
async fn credentials_are_sealed_at_rest_and_a_wrong_master_key_is_a_clear_error() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let (account, team) = (app.app.account.id, app.app.team.id);
    for provider in Provider::ALL {
        let fake = FakePsa::start(provider).await;
        connect(&app, &fake).await;
        assert!(
            app.app.desk.test(account, team).await.is_ok(),
            "{provider}: the saved connection works"
        );
        let secrets: Vec<String> = fake
            .credentials()
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|v| v.len() >= 8)
            .collect();
        assert!(!secrets.is_empty());
        // Scan what the database holds: the SQLite file and its WAL, or every PostgreSQL column.
        let haystack: Vec<u8> = match db.url.strip_prefix("sqlite://") {
            Some(path) => [path.to_owned(), format!("{path}-wal")]
                .iter()
                .filter_map(|file| std::fs::read(file).ok())
                .flatten()
                .collect(),
            None => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT row_to_json(c)::text FROM psa_connections c")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                pool.close().await;
                rows.into_iter().flat_map(|(r,)| r.into_bytes()).collect()
            }
        };
        assert!(!haystack.is_empty());
        for secret in &secrets {
            assert!(
                !haystack
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "{provider}: a credential is stored in plain text"
            );
        }
    }

    // Another master key opens nothing, and says so.
    let other = resolutionflow::keys::MasterKey::generate();
    let desk = resolutionflow::psa::Desk::new(
        db.port(),
        Arc::new(clock),
        &other,
        std::time::Duration::from_secs(5),
    );
    match desk.ticket(account, team, "12345").await {
        Err(PsaError::Misconfigured(message)) => {
            assert!(message.contains("another master key"), "{message}")
        }
        other => panic!("expected a clear error, got {other:?}"),
    }
}

/// Signs in to the companion as `actor` (an account link) and returns the cookie header.
async fn companion_cookie(app: &TestApp, actor: &rf_core::domain::Actor) -> String {
    let url = app
        .app
        .engine
        .share_link(
            actor.account_id,
            actor.user_id,
            actor.role,
            rf_core::links::LinkScope::Account,
        )
        .await
        .unwrap()
        .expect("the companion is configured");
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    response.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn admins_connect_and_test_the_psa_from_the_companion() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let fake = FakePsa::start(Provider::Halo).await;
    let admin = app.person("Ann", Role::Admin).await;
    let engineer = app.person("Eric", Role::Engineer).await;
    let page = format!("{}/team/psa", app.base_url);

    // Engineers may not see the page.
    let cookie = companion_cookie(&app, &engineer).await;
    let refused = http()
        .get(&page)
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);

    let cookie = companion_cookie(&app, &admin).await;
    let form = |action: &str, credentials: &Value| {
        let mut fields = vec![
            ("provider".to_owned(), "halo".to_owned()),
            ("action".to_owned(), action.to_owned()),
        ];
        for (source, prefix) in [(fake.settings(), "halo."), (credentials.clone(), "halo.")] {
            for (name, value) in source.as_object().unwrap() {
                fields.push((
                    format!("{prefix}{name}"),
                    value.as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        fields
    };
    let post = |path: &str, fields: Vec<(String, String)>| {
        http()
            .post(format!("{}{path}", app.base_url))
            .header(reqwest::header::COOKIE, &cookie)
            .form(&fields)
            .send()
    };

    // Wrong credentials: the test fails with a clear message, nothing is saved, no secret echoed.
    let wrong = post("/team/psa", form("save", &fake.wrong_credentials()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("The connection test failed"), "{wrong}");
    assert!(wrong.contains("Nothing was saved"));
    assert!(!wrong.contains(rf_tests::psa::WRONG_SECRET));
    assert!(
        app.app
            .desk
            .test(admin.account_id, admin.team_id)
            .await
            .is_err()
    );

    // Test, then test and save.
    let tested = post("/team/psa", form("test", &fake.credentials()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(tested.contains("The connection works"), "{tested}");
    let saved = post("/team/psa", form("save", &fake.credentials()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(saved.contains("Connected and saved"), "{saved}");
    assert!(saved.contains("connected</span>"), "{saved}");
    for secret in fake.credentials().as_object().unwrap().values() {
        assert!(
            !saved.contains(secret.as_str().unwrap()),
            "the page never shows a credential"
        );
    }
    let retest = post("/team/psa/test", Vec::new())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(retest.contains("The saved connection works"), "{retest}");

    // Map Eric to a Halo agent.
    let mapped = post(
        "/team/psa/map",
        vec![
            ("user".into(), engineer.user_id.to_string()),
            ("member".into(), fake.member_id("bob@msp.example")),
        ],
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        mapped.contains("Eric&#x27;s notes are credited to Bob Smith")
            || mapped.contains("Eric's notes are credited to Bob Smith"),
        "{mapped}"
    );
}
