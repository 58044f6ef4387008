//! Every PSA client against its local fake (`rf_tests::psa`): the same behaviour asked of
//! ConnectWise Manage, Autotask and HaloPSA — reading tickets, posting credited internal notes,
//! listing members, refusing bad credentials without repeating them, and reporting rate limits,
//! outages and timeouts as the errors the bot retries — plus each product's own handshake
//! (codebase discovery, zone discovery, OAuth tokens).

use rf_psa::{Member, NoteKind, NoteRequest, Provider, Psa, PsaError};
use rf_tests::psa::{self, FakePsa};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn connected(provider: Provider) -> (FakePsa, Arc<dyn Psa>) {
    let fake = FakePsa::start(provider).await;
    let client = rf_psa::connect(provider, &fake.settings(), &fake.credentials(), TIMEOUT)
        .unwrap_or_else(|e| panic!("{provider}: {e}"));
    (fake, client)
}

fn jane(fake: &FakePsa) -> Member {
    Member {
        id: fake.member_id(psa::JANE_EMAIL),
        name: "Jane Doe".to_owned(),
        email: Some(psa::JANE_EMAIL.to_owned()),
    }
}

fn note(text: &str, member: Option<Member>) -> NoteRequest {
    NoteRequest {
        ticket: psa::TICKET.to_owned(),
        kind: NoteKind::Internal,
        text: text.to_owned(),
        member,
    }
}

#[tokio::test]
async fn the_connection_test_says_what_it_reached() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        let said = client
            .test()
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        let expected = match provider {
            Provider::ConnectWise => "ConnectWise Manage v2024.1.12345 (cloud)".to_owned(),
            Provider::Autotask => "Autotask (zone Fake Zone".to_owned(),
            Provider::Halo => format!("HaloPSA at {}", fake.base_url.trim_start_matches("http://")),
        };
        assert!(said.starts_with(&expected), "{provider}: {said}");
        assert_eq!(client.provider(), provider);
    }
}

#[tokio::test]
async fn a_ticket_is_read_with_its_names_and_description() {
    for provider in Provider::ALL {
        let (_fake, client) = connected(provider).await;
        let ticket = client
            .ticket(psa::TICKET)
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        let shown_id = match provider {
            Provider::Autotask => psa::TICKET_NUMBER,
            _ => psa::TICKET,
        };
        assert_eq!(ticket.id, shown_id, "{provider}");
        assert_eq!(ticket.summary, psa::SUMMARY, "{provider}");
        assert_eq!(ticket.company.as_deref(), Some(psa::COMPANY), "{provider}");
        assert_eq!(ticket.contact.as_deref(), Some(psa::CONTACT), "{provider}");
        assert_eq!(ticket.board.as_deref(), Some(psa::BOARD), "{provider}");
        assert_eq!(ticket.status.as_deref(), Some(psa::STATUS), "{provider}");
        assert_eq!(
            ticket.priority.as_deref(),
            Some(psa::PRIORITY),
            "{provider}"
        );
        assert_eq!(
            ticket.description.as_deref(),
            Some(psa::DESCRIPTION),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn autotask_finds_a_ticket_by_its_number_and_posts_to_it() {
    let (fake, client) = connected(Provider::Autotask).await;
    let ticket = client.ticket(psa::TICKET_NUMBER).await.unwrap();
    assert_eq!(ticket.summary, psa::SUMMARY);
    let posted = client
        .post_note(&NoteRequest {
            ticket: ticket.id,
            ..note("Found by number", None)
        })
        .await
        .unwrap();
    let notes = fake.notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].ticket, psa::TICKET);
    assert_eq!(notes[0].id, posted.id);
}

#[tokio::test]
async fn a_missing_ticket_is_not_found() {
    for provider in Provider::ALL {
        let (_fake, client) = connected(provider).await;
        match client.ticket(psa::MISSING_TICKET).await {
            Err(PsaError::NotFound(message)) => {
                assert!(
                    message.contains(psa::MISSING_TICKET),
                    "{provider}: {message}"
                )
            }
            other => panic!("{provider}: expected NotFound, got {other:?}"),
        }
        let posted = client
            .post_note(&NoteRequest {
                ticket: psa::MISSING_TICKET.to_owned(),
                ..note("Nowhere to go", None)
            })
            .await;
        assert!(
            matches!(&posted, Err(PsaError::NotFound(m)) if m.contains(psa::MISSING_TICKET)),
            "{provider}: {posted:?}"
        );
    }
}

#[tokio::test]
async fn an_internal_note_is_posted_once_credited_to_the_member() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        let member = client
            .member_by_email(psa::JANE_EMAIL)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{provider}: Jane is a member"));
        assert_eq!(member, jane(&fake), "{provider}");
        let text = "Reset the Outlook profile & cleared cached credentials.\nUser confirmed.";
        let posted = client
            .post_note(&note(text, Some(member.clone())))
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));

        let notes = fake.notes();
        assert_eq!(notes.len(), 1, "{provider}: {notes:?}");
        let recorded = &notes[0];
        assert_eq!(recorded.ticket, psa::TICKET, "{provider}");
        assert_eq!(recorded.id, posted.id, "{provider}");
        assert_eq!(
            recorded.member.as_deref(),
            Some(member.id.as_str()),
            "{provider}"
        );
        let body = &recorded.body;
        match provider {
            Provider::ConnectWise => {
                assert_eq!(body["text"], text);
                assert_eq!(body["internalAnalysisFlag"], true);
                assert_eq!(body["detailDescriptionFlag"], false);
                assert_eq!(body["resolutionFlag"], false);
                assert_eq!(body["processNotifications"], false);
                assert_eq!(body["member"]["identifier"], "jdoe");
            }
            Provider::Autotask => {
                assert_eq!(body["description"], text);
                assert_eq!(body["publish"], 2);
                assert_eq!(body["ticketID"], 12345);
                assert_eq!(body["noteType"], 1);
            }
            Provider::Halo => {
                let html = body["note"].as_str().unwrap();
                assert!(
                    html.contains("Reset the Outlook profile &amp; cleared cached credentials.<br>User confirmed."),
                    "{html}"
                );
                assert_eq!(body["hiddenfromuser"], true);
                assert_eq!(body["outcome"], "Private Note");
                assert_eq!(body["who_agentid"], 5);
            }
        }
    }
}

#[tokio::test]
async fn a_note_without_a_member_is_not_credited() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        client
            .post_note(&note("Anonymous", None))
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert_eq!(fake.notes()[0].member, None, "{provider}");
    }
}

#[tokio::test]
async fn a_long_note_is_posted_in_labelled_parts() {
    for provider in [Provider::ConnectWise, Provider::Autotask] {
        let (fake, client) = connected(provider).await;
        let paragraph = "Checked the mailbox rules and the credential manager. ".repeat(40);
        let text = vec![paragraph.trim(); 40].join("\n\n"); // ≈ 86,000 characters
        let posted = client.post_note(&note(&text, None)).await.unwrap();
        let notes = fake.notes();
        assert!(notes.len() >= 3, "{provider}: {} parts", notes.len());
        assert_eq!(posted.id, notes[0].id, "{provider}: the first part's id");
        let field = match provider {
            Provider::ConnectWise => "text",
            _ => "description",
        };
        for (i, part) in notes.iter().enumerate() {
            let part = part.body[field].as_str().unwrap();
            assert!(
                part.starts_with(&format!("(part {} of {})", i + 1, notes.len())),
                "{provider}"
            );
            assert!(part.chars().count() <= 32_000, "{provider}");
        }
    }
}

#[tokio::test]
async fn members_are_listed_and_found() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        let mut members = client.members().await.unwrap();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["Bob Smith", "Jane Doe"],
            "{provider}: inactive Carl is left out"
        );
        assert_eq!(members[1], jane(&fake), "{provider}");

        let bob = client.member_by_email(psa::BOB_EMAIL).await.unwrap();
        assert_eq!(
            bob.map(|m| m.name).as_deref(),
            Some("Bob Smith"),
            "{provider}"
        );
        assert_eq!(
            client.member_by_email("nobody@msp.example").await.unwrap(),
            None,
            "{provider}"
        );

        let typed: &[&str] = match provider {
            Provider::ConnectWise => &["jdoe"],
            Provider::Autotask => &["29682885", "jdoe"],
            Provider::Halo => &["5", "jane doe"],
        };
        for id in typed {
            let found = client.member(id).await.unwrap();
            assert_eq!(found, Some(jane(&fake)), "{provider}: {id}");
        }
        assert_eq!(client.member("nobody").await.unwrap(), None, "{provider}");
    }
}

#[tokio::test]
async fn members_follow_the_paging() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        fake.add_members(1_203);
        let members = client.members().await.unwrap();
        assert_eq!(members.len(), 1_205, "{provider}");
        let pages = match provider {
            Provider::ConnectWise => fake.count("/v4_6_release/apis/3.0/system/members"),
            Provider::Autotask => fake.count("/zone2/ATServicesRest/v1.0/Resources/query"),
            Provider::Halo => fake.count("/api/Agent"),
        };
        let expected = match provider {
            Provider::ConnectWise => 2, // 1,000 a page
            Provider::Autotask => 3,    // 500 a page
            Provider::Halo => 1,        // not paged
        };
        assert_eq!(pages, expected, "{provider}");
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_without_repeating_them() {
    for provider in Provider::ALL {
        let fake = FakePsa::start(provider).await;
        let client = rf_psa::connect(
            provider,
            &fake.settings(),
            &fake.wrong_credentials(),
            TIMEOUT,
        )
        .unwrap();
        assert!(
            !format!("{client:?}").contains(psa::WRONG_SECRET),
            "{provider}"
        );
        for result in [
            client.test().await.map(|_| ()),
            client.ticket(psa::TICKET).await.map(|_| ()),
        ] {
            let error = result.expect_err("refused");
            assert!(
                matches!(error, PsaError::Unauthorized(_)),
                "{provider}: {error:?}"
            );
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains(psa::WRONG_SECRET), "{provider}: {shown}");
            }
        }
    }
}

#[tokio::test]
async fn the_debug_output_of_a_client_holds_no_credential() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        client.test().await.unwrap();
        let debug = format!("{client:?}");
        for value in fake.credentials().as_object().unwrap().values() {
            let value = value.as_str().unwrap();
            assert!(!debug.contains(value), "{provider}: {debug}");
        }
    }
}

#[tokio::test]
async fn a_rate_limit_says_when_to_come_back() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        client.test().await.unwrap();
        fake.fail_next(1, 429, Some(7));
        let error = client.ticket(psa::TICKET).await.unwrap_err();
        assert_eq!(
            error,
            PsaError::RateLimited {
                after: Some(Duration::from_secs(7))
            },
            "{provider}"
        );
        assert!(error.is_transient());
        client.ticket(psa::TICKET).await.unwrap();
    }
}

#[tokio::test]
async fn an_outage_is_unavailable_and_transient() {
    for provider in Provider::ALL {
        let (fake, client) = connected(provider).await;
        client.test().await.unwrap();
        fake.fail_next(1, 503, None);
        let error = client
            .post_note(&note("During an outage", None))
            .await
            .unwrap_err();
        assert!(
            matches!(error, PsaError::Unavailable(_)),
            "{provider}: {error:?}"
        );
        assert!(error.is_transient(), "{provider}");
        assert!(fake.notes().is_empty(), "{provider}");

        fake.set_down(true);
        let error = client.members().await.unwrap_err();
        assert!(error.is_transient(), "{provider}: {error:?}");
        fake.set_down(false);
        client.members().await.unwrap();
    }
}

#[tokio::test]
async fn a_stalled_psa_times_out_as_unavailable() {
    for provider in Provider::ALL {
        let fake = FakePsa::start(provider).await;
        let client = rf_psa::connect(
            provider,
            &fake.settings(),
            &fake.credentials(),
            Duration::from_secs(1),
        )
        .unwrap();
        fake.stall(Duration::from_secs(30));
        let started = std::time::Instant::now();
        let error = client.ticket(psa::TICKET).await.unwrap_err();
        assert!(
            matches!(&error, PsaError::Unavailable(m) if m.contains("did not answer")),
            "{provider}: {error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{provider}");
    }
}

#[tokio::test]
async fn connectwise_validation_errors_are_rejected_with_their_reasons() {
    let (fake, client) = connected(Provider::ConnectWise).await;
    client.test().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(include_str!(
        "../../bot/psa/fixtures/connectwise/error_invalid_object.json"
    ))
    .unwrap();
    fake.fail_next_with(1, 400, body);
    let error = client.post_note(&note("Rejected", None)).await.unwrap_err();
    assert!(
        matches!(&error, PsaError::Rejected(m) if m.contains("id or deviceIdentifier is required")),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn connectwise_discovers_its_codebase_once() {
    let (fake, client) = connected(Provider::ConnectWise).await;
    client.test().await.unwrap();
    client.ticket(psa::TICKET).await.unwrap();
    client.members().await.unwrap();
    let calls = fake.calls();
    assert_eq!(
        calls[0],
        ("GET".to_owned(), "/login/companyinfo/acme".to_owned(), 200)
    );
    assert_eq!(fake.count("/login/companyinfo/"), 1);
    assert!(
        calls[1..]
            .iter()
            .all(|(_, path, _)| path.starts_with("/v4_6_release/apis/3.0/")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn connectwise_uses_a_configured_codebase_without_asking() {
    let fake = FakePsa::start(Provider::ConnectWise).await;
    let mut settings = fake.settings();
    settings["codebase"] = "v4_6_release".into();
    let client = rf_psa::connect(
        Provider::ConnectWise,
        &settings,
        &fake.credentials(),
        TIMEOUT,
    )
    .unwrap();
    client.test().await.unwrap();
    assert_eq!(fake.count("/login/companyinfo/"), 0);
}

#[tokio::test]
async fn connectwise_names_an_unknown_company() {
    let fake = FakePsa::start(Provider::ConnectWise).await;
    let mut settings = fake.settings();
    settings["company"] = "globex".into();
    let client = rf_psa::connect(
        Provider::ConnectWise,
        &settings,
        &fake.credentials(),
        TIMEOUT,
    )
    .unwrap();
    let error = client.test().await.unwrap_err();
    assert!(
        matches!(&error, PsaError::Misconfigured(m) if m.contains("globex")),
        "{error:?}"
    );
}

#[tokio::test]
async fn autotask_discovers_its_zone_once() {
    let (fake, client) = connected(Provider::Autotask).await;
    client.test().await.unwrap();
    client.ticket(psa::TICKET).await.unwrap();
    client.members().await.unwrap();
    let calls = fake.calls();
    assert_eq!(
        calls[0].1,
        format!(
            "/atservicesrest/v1.0/zoneInformation?user={}",
            psa::AT_USERNAME.replace('@', "%40")
        )
    );
    assert_eq!(fake.count("/atservicesrest/"), 1);
    assert!(
        calls[1..]
            .iter()
            .all(|(_, path, _)| path.starts_with("/zone2/ATServicesRest/v1.0/")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn autotask_uses_a_configured_zone_without_asking() {
    let fake = FakePsa::start(Provider::Autotask).await;
    let mut settings = fake.settings();
    settings["zone_url"] = format!("{}/zone2/ATServicesRest", fake.base_url).into();
    let client =
        rf_psa::connect(Provider::Autotask, &settings, &fake.credentials(), TIMEOUT).unwrap();
    client.ticket(psa::TICKET).await.unwrap();
    assert_eq!(fake.count("/atservicesrest/"), 0);
}

#[tokio::test]
async fn halo_fetches_a_token_once_and_again_after_a_401() {
    let (fake, client) = connected(Provider::Halo).await;
    client.test().await.unwrap();
    client.ticket(psa::TICKET).await.unwrap();
    client.members().await.unwrap();
    assert_eq!(fake.count("/auth/token"), 1);

    fake.revoke_tokens();
    client.ticket(psa::TICKET).await.unwrap();
    assert_eq!(fake.count("/auth/token"), 2);
    let refused: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|(_, _, status)| *status == 401)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one refusal, then a new token: {refused:?}"
    );

    client.members().await.unwrap();
    assert_eq!(fake.count("/auth/token"), 2);
}
