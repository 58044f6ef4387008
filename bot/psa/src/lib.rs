//! ResolutionFlow's PSA clients: ConnectWise Manage, Autotask and HaloPSA behind one trait,
//! [`Psa`]. Each reads a ticket, posts a note, lists the members notes can be credited to and
//! checks its connection; every failure is a [`PsaError`] in words a technician understands, and
//! no credential ever appears in an error, a log line or a `Debug` output.
//!
//! A connection is built by [`connect`] from the non-secret settings and the secret credentials a
//! team stored, both JSON objects keyed by the provider's [`fields`].
#![forbid(unsafe_code)]

mod autotask;
mod connectwise;
mod halo;
mod http;

pub use http::{HttpClient, http_client};
pub use rf_core::psa::{Member, NoteKind, NoteRequest, PostedNote, Provider, PsaError, Ticket};

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A PSA the bot can read tickets from and post notes to.
#[async_trait::async_trait]
pub trait Psa: Send + Sync + std::fmt::Debug {
    fn provider(&self) -> Provider;

    /// Checks the connection and credentials; Ok(a short description for people, e.g.
    /// "ConnectWise Manage v2024.1 (cloud)").
    async fn test(&self) -> Result<String, PsaError>;

    async fn ticket(&self, id: &str) -> Result<Ticket, PsaError>;

    /// Posts the note; returns the PSA's note id (for a split long note, the first part's id).
    async fn post_note(&self, note: &NoteRequest) -> Result<PostedNote, PsaError>;

    /// Every active member, following the PSA's paging.
    async fn members(&self) -> Result<Vec<Member>, PsaError>;

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, PsaError>;

    /// Looks a member up by the identifier people type (ConnectWise identifier "jdoe", Autotask
    /// resource id or username, Halo agent id or name).
    async fn member(&self, id: &str) -> Result<Option<Member>, PsaError>;
}

/// One setting or credential a provider needs, to drive CLI flags and the companion's form.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub secret: bool,
    pub help: &'static str,
}

const NOTE_KIND: Field = Field {
    name: "note_kind",
    label: "Note kind",
    required: false,
    secret: false,
    help: "How session notes are posted: internal (default), discussion or resolution.",
};

const CONNECTWISE_FIELDS: &[Field] = &[
    Field {
        name: "site",
        label: "Site",
        required: true,
        secret: false,
        help: "Your ConnectWise site, e.g. na.myconnectwise.net, or the full address of an on-premises server.",
    },
    Field {
        name: "company",
        label: "Company ID",
        required: true,
        secret: false,
        help: "The company id you sign in to ConnectWise with.",
    },
    Field {
        name: "codebase",
        label: "Codebase",
        required: false,
        secret: false,
        help: "The API codebase, e.g. v4_6_release. Leave empty to ask the site.",
    },
    NOTE_KIND,
    Field {
        name: "public_key",
        label: "Public key",
        required: true,
        secret: true,
        help: "The API member's public key (System > Members > API Members > API Keys).",
    },
    Field {
        name: "private_key",
        label: "Private key",
        required: true,
        secret: true,
        help: "The private key shown once when the API key was created.",
    },
    Field {
        name: "client_id",
        label: "Client ID",
        required: true,
        secret: true,
        help: "The integration's clientId from the ConnectWise developer portal.",
    },
];

const AUTOTASK_FIELDS: &[Field] = &[
    Field {
        name: "username",
        label: "API user name",
        required: true,
        secret: false,
        help: "The user name of the Autotask API user (API-only security level).",
    },
    Field {
        name: "zone_url",
        label: "Zone URL",
        required: false,
        secret: false,
        help: "The zone's REST address, e.g. https://webservices2.autotask.net/ATServicesRest/. Leave empty to look it up.",
    },
    Field {
        name: "discovery_url",
        label: "Discovery URL",
        required: false,
        secret: false,
        help: "Where zones are looked up; defaults to https://webservices.autotask.net/atservicesrest/.",
    },
    NOTE_KIND,
    Field {
        name: "integration_code",
        label: "Integration code",
        required: true,
        secret: true,
        help: "The tracking identifier (API integration code) of the API user.",
    },
    Field {
        name: "secret",
        label: "Secret",
        required: true,
        secret: true,
        help: "The API user's password (secret).",
    },
];

const HALO_FIELDS: &[Field] = &[
    Field {
        name: "url",
        label: "Resource server",
        required: true,
        secret: false,
        help: "Your HaloPSA address, e.g. https://acme.halopsa.com.",
    },
    Field {
        name: "auth_url",
        label: "Authorisation server",
        required: false,
        secret: false,
        help: "Defaults to the resource server followed by /auth.",
    },
    Field {
        name: "tenant",
        label: "Tenant",
        required: false,
        secret: false,
        help: "Hosted HaloPSA only: your tenant name.",
    },
    NOTE_KIND,
    Field {
        name: "client_id",
        label: "Client ID",
        required: true,
        secret: true,
        help: "The client id of the API application (Configuration > Integrations > HaloPSA API), using Client ID and Secret (Services).",
    },
    Field {
        name: "client_secret",
        label: "Client secret",
        required: true,
        secret: true,
        help: "The API application's client secret.",
    },
];

/// The settings (secret == false) and credentials (secret == true) of a provider, in form order.
pub fn fields(provider: Provider) -> &'static [Field] {
    match provider {
        Provider::ConnectWise => CONNECTWISE_FIELDS,
        Provider::Autotask => AUTOTASK_FIELDS,
        Provider::Halo => HALO_FIELDS,
    }
}

/// The note kind a connection's settings choose (settings key "note_kind"; default internal).
pub fn note_kind(settings: &Value) -> Result<NoteKind, PsaError> {
    match settings.get("note_kind") {
        None | Some(Value::Null) => Ok(NoteKind::default()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(NoteKind::default()),
        Some(Value::String(text)) => text.parse().map_err(PsaError::Misconfigured),
        Some(_) => Err(PsaError::Misconfigured(
            "`note_kind` must be internal, discussion or resolution".to_owned(),
        )),
    }
}

/// Builds a client from the non-secret settings and the secret credentials (both JSON objects of
/// string values keyed by [`Field::name`]). A missing required field is
/// [`PsaError::Misconfigured`] naming it. Nothing is sent until the first call.
pub fn connect(
    provider: Provider,
    settings: &Value,
    credentials: &Value,
    timeout: Duration,
) -> Result<Arc<dyn Psa>, PsaError> {
    let config = Config::new(provider, settings, credentials)?;
    note_kind(settings)?;
    let http = http_client(timeout)?;
    Ok(match provider {
        Provider::ConnectWise => Arc::new(connectwise::ConnectWise::new(&config, http)?),
        Provider::Autotask => Arc::new(autotask::Autotask::new(&config, http)?),
        Provider::Halo => Arc::new(halo::Halo::new(&config, http)?),
    })
}

/// The provider's name in messages.
pub(crate) fn name(provider: Provider) -> &'static str {
    match provider {
        Provider::ConnectWise => "ConnectWise",
        Provider::Autotask => "Autotask",
        Provider::Halo => "HaloPSA",
    }
}

/// A ticket id as people type it (`#12345`), for a PSA whose ticket ids are digits.
pub(crate) fn numeric_ticket(id: &str, provider: Provider) -> Result<&str, PsaError> {
    let id = id.trim().trim_start_matches('#');
    if is_number(id) {
        Ok(id)
    } else {
        Err(PsaError::Rejected(format!(
            "{} ticket numbers are digits",
            name(provider)
        )))
    }
}

/// What a technician reads when a ticket does not exist.
pub(crate) fn ticket_not_found(id: &str, provider: Provider) -> String {
    format!("ticket {id} not found in {}", name(provider))
}

/// A credential: its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A connection's settings and credentials, checked against the provider's [`fields`].
#[derive(Debug)]
pub(crate) struct Config<'a> {
    provider: Provider,
    settings: Option<&'a Map<String, Value>>,
    credentials: Option<&'a Map<String, Value>>,
}

impl<'a> Config<'a> {
    pub(crate) fn new(
        provider: Provider,
        settings: &'a Value,
        credentials: &'a Value,
    ) -> Result<Self, PsaError> {
        let object = |value: &'a Value, what: &str| match value {
            Value::Null => Ok(None),
            Value::Object(map) => Ok(Some(map)),
            _ => Err(PsaError::Misconfigured(format!(
                "the {} {what} must be a JSON object",
                name(provider)
            ))),
        };
        let config = Self {
            provider,
            settings: object(settings, "settings")?,
            credentials: object(credentials, "credentials")?,
        };
        for field in fields(provider) {
            let present = if field.secret {
                config.credential(field.name)?.is_some()
            } else {
                config.setting(field.name)?.is_some()
            };
            if field.required && !present {
                return Err(PsaError::Misconfigured(format!(
                    "{} needs `{}`",
                    name(provider),
                    field.name
                )));
            }
        }
        Ok(config)
    }

    /// A setting's text, if set (blank counts as unset).
    pub(crate) fn setting(&self, key: &str) -> Result<Option<String>, PsaError> {
        self.text(self.settings, key, false)
    }

    /// A setting [`fields`] marks required (checked by [`Config::new`]).
    pub(crate) fn required(&self, key: &str) -> Result<String, PsaError> {
        self.setting(key)?.ok_or_else(|| self.missing(key))
    }

    /// A required credential.
    pub(crate) fn secret(&self, key: &str) -> Result<Secret, PsaError> {
        self.credential(key)?
            .map(Secret)
            .ok_or_else(|| self.missing(key))
    }

    /// A setting that is an address: `host`, `host/path` (https assumed) or a full http(s) URL.
    pub(crate) fn url(&self, key: &str) -> Result<Option<Url>, PsaError> {
        self.setting(key)?
            .map(|value| parse_url(self.provider, key, &value))
            .transpose()
    }

    fn credential(&self, key: &str) -> Result<Option<String>, PsaError> {
        self.text(self.credentials, key, true)
    }

    fn missing(&self, key: &str) -> PsaError {
        PsaError::Misconfigured(format!("{} needs `{key}`", name(self.provider)))
    }

    fn text(
        &self,
        map: Option<&Map<String, Value>>,
        key: &str,
        secret: bool,
    ) -> Result<Option<String>, PsaError> {
        match map.and_then(|map| map.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => {
                let text = text.trim();
                Ok((!text.is_empty()).then(|| text.to_owned()))
            }
            Some(Value::Number(number)) if !secret => Ok(Some(number.to_string())),
            Some(_) => Err(PsaError::Misconfigured(format!(
                "{} `{key}` must be text",
                name(self.provider)
            ))),
        }
    }
}

/// Parses an address setting; a bare host means HTTPS.
pub(crate) fn parse_url(provider: Provider, key: &str, value: &str) -> Result<Url, PsaError> {
    let value = value.trim();
    let full = if value.contains("://") {
        value.to_owned()
    } else {
        format!("https://{value}")
    };
    let invalid = |why: &str| {
        PsaError::Misconfigured(format!(
            "{} `{key}` is not a usable address ({why}): {value}",
            name(provider)
        ))
    };
    let url = Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("use https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "put credentials in the credential fields, not the address",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("no ? or # parts"));
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// `url` with a trailing slash, so relative joins land under it.
pub(crate) fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// A `Retry-After` header in seconds. (The HTTP-date form is not used by these PSAs.)
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What the PSA said about a failed call, for [`failure`].
#[derive(Debug, Default)]
pub(crate) struct Complaint {
    /// The PSA's own message, from its error body.
    pub(crate) detail: Option<String>,
    /// What a 404 means here ("ticket 12345 not found in ConnectWise").
    pub(crate) not_found: Option<String>,
}

/// Turns a non-success answer into the error a technician reads. `credentials` says what to check
/// when the PSA refused them; it never includes a credential.
pub(crate) fn failure(answer: &http::Answer, complaint: Complaint, credentials: &str) -> PsaError {
    let provider = name(answer.provider);
    let code = answer.status.as_u16();
    let detail = complaint.detail.map(|d| trim_text(&d, 500));
    match code {
        401 => PsaError::Unauthorized(credentials.to_owned()),
        403 => PsaError::Unauthorized(match detail {
            Some(detail) => format!("{provider} refused access: {detail}"),
            None => format!("{provider} refused access ({credentials})"),
        }),
        404 => PsaError::NotFound(
            complaint
                .not_found
                .or(detail)
                .unwrap_or_else(|| format!("{provider} has no such record")),
        ),
        429 => PsaError::RateLimited {
            after: answer.retry_after,
        },
        400..=499 => PsaError::Rejected(
            detail.unwrap_or_else(|| format!("{provider} rejected the request (HTTP {code})")),
        ),
        500..=599 => PsaError::Unavailable(match detail {
            Some(detail) => format!("{provider} answered HTTP {code}: {detail}"),
            None => format!("{provider} answered HTTP {code}"),
        }),
        _ => PsaError::Unavailable(format!("unexpected answer from {provider} (HTTP {code})")),
    }
}

/// `text` trimmed to at most `max` characters, cut at a word where one is near, with "…" when
/// something was left out.
pub(crate) fn trim_text(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut = text
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(text.len(), |(at, _)| at);
    let head = &text[..cut];
    let head = match head.rfind(char::is_whitespace) {
        Some(space) if space > cut * 4 / 5 => &head[..space],
        _ => head,
    };
    format!("{}…", head.trim_end())
}

/// Room kept in each part of a split note for its "(part i of n)" label.
const PART_LABEL_ROOM: usize = 32;

/// Splits a note longer than `max` characters into parts of at most `max` characters, each
/// labelled "(part i of n)", breaking between paragraphs where it can, else between lines, else
/// inside a line. A note that fits is returned as it is.
pub(crate) fn split_note(text: &str, max: usize) -> Vec<String> {
    if text.chars().count() <= max {
        return vec![text.to_owned()];
    }
    let budget = max.saturating_sub(PART_LABEL_ROOM).max(1);
    let chunks = pack(text, budget, &["\n\n", "\n"]);
    let total = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            format!(
                "(part {} of {total})\n\n{}",
                i + 1,
                chunk.trim_matches('\n')
            )
        })
        .collect()
}

/// Packs `text` into chunks of at most `budget` characters, joining its pieces (split at the first
/// separator) greedily and splitting a piece too big for one chunk at the next separator.
fn pack(text: &str, budget: usize, separators: &[&str]) -> Vec<String> {
    let length = |s: &str| s.chars().count();
    if length(text) <= budget {
        return vec![text.to_owned()];
    }
    let Some((separator, finer)) = separators.split_first() else {
        let chars: Vec<char> = text.chars().collect();
        return chars.chunks(budget).map(|c| c.iter().collect()).collect();
    };
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for piece in text.split(separator) {
        let piece_len = length(piece);
        let joined = if current.is_empty() {
            piece_len
        } else {
            current_len + length(separator) + piece_len
        };
        if joined <= budget {
            if !current.is_empty() {
                current.push_str(separator);
            }
            current.push_str(piece);
            current_len = joined;
            continue;
        }
        if !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
        }
        if piece_len <= budget {
            current = piece.to_owned();
            current_len = piece_len;
        } else {
            chunks.extend(pack(piece, budget, finer));
            current_len = 0;
        }
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks.retain(|c| !c.trim().is_empty());
    chunks
}

/// Whether `id` is a plain number.
pub(crate) fn is_number(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// A person's name from first and last names, else `fallback`.
pub(crate) fn full_name(first: Option<&str>, last: Option<&str>, fallback: &str) -> String {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        fallback.to_owned()
    } else {
        name
    }
}

/// A JSON id (number or text) as text.
pub(crate) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_provider_lists_its_settings_and_credentials() {
        for provider in Provider::ALL {
            let fields = fields(provider);
            assert!(fields.iter().any(|f| f.name == "note_kind" && !f.secret));
            assert!(fields.iter().any(|f| f.secret && f.required), "{provider}");
        }
        let secrets: Vec<&str> = fields(Provider::ConnectWise)
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        assert_eq!(secrets, ["public_key", "private_key", "client_id"]);
    }

    #[test]
    fn a_missing_field_is_named() {
        let credentials = json!({ "public_key": "pub", "private_key": "priv", "client_id": "cid" });
        let error = connect(
            Provider::ConnectWise,
            &json!({ "company": "acme" }),
            &credentials,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            error,
            PsaError::Misconfigured("ConnectWise needs `site`".to_owned())
        );
        let error = connect(
            Provider::ConnectWise,
            &json!({ "site": "na.myconnectwise.net", "company": "acme" }),
            &json!({ "public_key": "pub", "private_key": " ", "client_id": "cid" }),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            error,
            PsaError::Misconfigured("ConnectWise needs `private_key`".to_owned())
        );
        let error = connect(
            Provider::Autotask,
            &json!({}),
            &json!({ "integration_code": "x", "secret": "y" }),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            error,
            PsaError::Misconfigured("Autotask needs `username`".to_owned())
        );
        let error = connect(
            Provider::Halo,
            &json!({ "url": "https://acme.halopsa.com" }),
            &json!({ "client_id": "id" }),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            error,
            PsaError::Misconfigured("HaloPSA needs `client_secret`".to_owned())
        );
    }

    #[test]
    fn settings_must_be_usable() {
        let bad_kind = connect(
            Provider::Halo,
            &json!({ "url": "acme.halopsa.com", "note_kind": "loud" }),
            &json!({ "client_id": "id", "client_secret": "s" }),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(bad_kind, PsaError::Misconfigured(m) if m.contains("loud")));
        let bad_url = connect(
            Provider::Halo,
            &json!({ "url": "ftp://acme.halopsa.com" }),
            &json!({ "client_id": "id", "client_secret": "s" }),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(bad_url, PsaError::Misconfigured(m) if m.contains("`url`")));
        let not_object = connect(
            Provider::Halo,
            &json!(["url"]),
            &json!({}),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(not_object, PsaError::Misconfigured(_)));
    }

    #[test]
    fn note_kind_defaults_to_internal() {
        assert_eq!(note_kind(&json!({})).unwrap(), NoteKind::Internal);
        assert_eq!(
            note_kind(&json!({ "note_kind": "" })).unwrap(),
            NoteKind::Internal
        );
        assert_eq!(
            note_kind(&json!({ "note_kind": "Discussion" })).unwrap(),
            NoteKind::Discussion
        );
        assert!(note_kind(&json!({ "note_kind": 3 })).is_err());
    }

    #[test]
    fn addresses_default_to_https() {
        let url = parse_url(Provider::ConnectWise, "site", "na.myconnectwise.net").unwrap();
        assert_eq!(url.as_str(), "https://na.myconnectwise.net/");
        let url = parse_url(Provider::ConnectWise, "site", "http://127.0.0.1:8080").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/");
        assert!(parse_url(Provider::ConnectWise, "site", "https://u:p@host").is_err());
    }

    #[test]
    fn endpoints_encode_each_segment() {
        let base = Url::parse("https://h/v4_6_release/apis/3.0").unwrap();
        assert_eq!(
            endpoint(&base, &["service", "tickets", "1/../x"]).as_str(),
            "https://h/v4_6_release/apis/3.0/service/tickets/1%2F..%2Fx"
        );
        let base = Url::parse("https://h/ATServicesRest/v1.0/").unwrap();
        assert_eq!(
            endpoint(&base, &["Tickets", "5"]).as_str(),
            "https://h/ATServicesRest/v1.0/Tickets/5"
        );
    }

    #[test]
    fn short_notes_are_not_split() {
        assert_eq!(split_note("hello", 10), vec!["hello".to_owned()]);
    }

    #[test]
    fn long_notes_split_between_paragraphs_and_are_labelled() {
        let paragraph = "word ".repeat(30); // 150 characters
        let text = [paragraph.trim(); 5].join("\n\n");
        let parts = split_note(&text, 400);
        assert_eq!(parts.len(), 3);
        for (i, part) in parts.iter().enumerate() {
            assert!(part.chars().count() <= 400, "part {i} is too long");
            assert!(part.starts_with(&format!("(part {} of 3)\n\n", i + 1)));
            assert!(!part.ends_with('\n'));
        }
        // Nothing is lost: the paragraphs come back in order.
        let rejoined: Vec<&str> = parts.iter().flat_map(|p| p.split("\n\n").skip(1)).collect();
        assert_eq!(rejoined.len(), 5);
        assert!(rejoined.iter().all(|p| *p == paragraph.trim()));
    }

    #[test]
    fn a_huge_paragraph_splits_at_lines_then_anywhere() {
        let line = "x".repeat(90);
        let text = [line.as_str(); 10].join("\n");
        let parts = split_note(&text, 232);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= 232));
        let unbroken = "é".repeat(1_000);
        let parts = split_note(&unbroken, 232);
        assert!(parts.iter().all(|p| p.chars().count() <= 232));
        let total: usize = parts
            .iter()
            .map(|p| p.split_once("\n\n").unwrap().1.chars().count())
            .sum();
        assert_eq!(total, 1_000);
    }

    #[test]
    fn text_is_trimmed_at_a_word() {
        assert_eq!(trim_text("short", 10), "short");
        let trimmed = trim_text("one two three four five six", 12);
        assert!(trimmed.chars().count() <= 12);
        assert!(trimmed.ends_with('…'));
        assert_eq!(trim_text(&"é".repeat(20), 5).chars().count(), 5);
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "[REDACTED]");
    }
}
