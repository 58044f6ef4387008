//! Layered configuration: built-in defaults, then a TOML file, then `RF_*` environment variables.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// The whole configuration. Every field has a default, so an empty file is a valid file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub security: SecurityConfig,
    pub companion: CompanionConfig,
    pub flows: FlowsConfig,
    pub bootstrap: BootstrapConfig,
    pub console: ConsoleConfig,
    pub smtp: SmtpConfig,
    pub slack: SlackConfig,
    pub psa: PsaConfig,
    pub ai: AiConfig,
    pub jobs: JobsConfig,
    pub log: LogConfig,
}

/// The Slack app. Disabled while both `signing_secret` (HTTP) and `app_token` (Socket Mode) are
/// empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's Signing Secret (Basic Information page): every request Slack sends is checked.
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<SecretString>,
    /// The bot token (`xoxb-…`) of the one workspace this server serves. Not needed when
    /// workspaces install the app through OAuth (`client_id`, `client_secret`).
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<SecretString>,
    /// An app-level token (`xapp-…`, `connections:write`): receive over Socket Mode instead of HTTP.
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub app_token: Option<SecretString>,
    /// The app's Client ID, for "Add to Slack" (`/slack/install`) in many workspaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The app's Client Secret.
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretString>,
    /// Slack's OAuth consent page.
    pub authorize_url: String,
    /// The Web API base URL.
    pub api_url: String,
    /// The slash command as configured in the app.
    pub command: String,
    /// Throttle calls to Slack's published rate tiers.
    pub rate_control: bool,
    /// How long one Web API call may take before it is retried later.
    pub timeout_seconds: u64,
    /// Commands are answered through their `response_url` only when it starts with this.
    pub response_url_prefix: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            signing_secret: None,
            bot_token: None,
            app_token: None,
            client_id: None,
            client_secret: None,
            authorize_url: "https://slack.com/oauth/v2/authorize".to_owned(),
            api_url: "https://slack.com/api".to_owned(),
            command: "/rf".to_owned(),
            rate_control: true,
            timeout_seconds: 10,
            response_url_prefix: "https://hooks.slack.com/".to_owned(),
        }
    }
}

impl SlackConfig {
    /// The signing secret, when HTTP requests from Slack are accepted.
    pub fn signing_secret(&self) -> Option<&str> {
        self.signing_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
    }

    /// The app-level token, when Slack is reached over Socket Mode.
    pub fn app_token(&self) -> Option<&str> {
        self.app_token
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
    }
}

/// Outgoing e-mail (escalation fallback). Disabled while `host` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (port 587), `tls` (implicit TLS, port 465) or `none` (local relays and tests).
    pub tls: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    pub from: String,
    pub timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: "starttls".to_owned(),
            username: None,
            password: None,
            from: "ResolutionFlow <resolutionflow@localhost>".to_owned(),
            timeout_seconds: 15,
        }
    }
}

/// PSA integration. Connections (which PSA, credentials) are per team, stored encrypted in the
/// database: `resolutionflow psa add` or the companion's settings page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PsaConfig {
    /// How long one PSA API call may take before it counts as an outage (and is retried).
    pub timeout_seconds: u64,
}

impl Default for PsaConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 20,
        }
    }
}

/// The AI copilot. `offline` (the default) needs no key and never touches the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// `offline`, `anthropic`, `openai` (any OpenAI-compatible endpoint: OpenAI, Azure, Ollama,
    /// vLLM, llama.cpp) or `off`.
    pub provider: String,
    /// The provider's key (`RF_AI__API_KEY`). Not needed for local OpenAI-compatible servers.
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Empty: `https://api.anthropic.com` or `https://api.openai.com/v1`. For Ollama
    /// `http://localhost:11434/v1`; for Azure `https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT`.
    pub base_url: String,
    /// The model for short confirmations. Empty: `claude-haiku-4-5` or `gpt-4o-mini`.
    pub fast_model: String,
    /// The model for discovery, decisions, notes, assessments and drafted flows. Empty:
    /// `claude-sonnet-4-5` or `gpt-4o`.
    pub deep_model: String,
    /// A fast model's answer below this confidence (0–100) is asked again of the deep model.
    pub low_confidence: u8,
    pub max_tokens: u32,
    /// How long one model call may take, retries not included.
    pub timeout_seconds: u64,
    /// How many times a call is tried when the provider is busy or unavailable.
    pub max_attempts: usize,
    /// OpenAI-compatible: `bearer` (Authorization header) or `api-key` (Azure).
    pub openai_auth: String,
    /// OpenAI-compatible: a query string added to every request (Azure: `api-version=2024-10-21`).
    pub openai_query: String,
    /// OpenAI-compatible: the name of the max-tokens field (`max_tokens` or `max_completion_tokens`).
    pub max_tokens_field: String,
    /// OpenAI-compatible: `json_schema` (falls back to `json_object` if refused), `json_object` or
    /// `none`.
    pub structured_output: String,
    /// An OpenAI-compatible embedding model for retrieval (empty: full-text search only).
    pub embedding_model: String,
    /// Where embeddings are asked for (empty: `base_url` when the provider is `openai`).
    pub embedding_base_url: String,
    /// The embedding endpoint's key (empty: `api_key`).
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub embedding_api_key: Option<SecretString>,
    /// A directory whose prompt files replace the built-in ones (`prompts/` in the source).
    pub prompts_dir: Option<PathBuf>,
    /// Prices in US dollars per million tokens by model name, for the cost recorded per turn:
    /// `[ai.prices."my-model"] input = 1.0, output = 2.0, cached = 0.1`. Well-known models are
    /// built in.
    pub prices: std::collections::HashMap<String, rf_ai::copilot::Price>,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            provider: "offline".to_owned(),
            api_key: None,
            base_url: String::new(),
            fast_model: String::new(),
            deep_model: String::new(),
            low_confidence: 40,
            max_tokens: 1_500,
            timeout_seconds: 60,
            max_attempts: 4,
            openai_auth: "bearer".to_owned(),
            openai_query: String::new(),
            max_tokens_field: "max_tokens".to_owned(),
            structured_output: "json_schema".to_owned(),
            embedding_model: String::new(),
            embedding_base_url: String::new(),
            embedding_api_key: None,
            prompts_dir: None,
            prices: std::collections::HashMap::new(),
        }
    }
}

impl AiConfig {
    pub fn api_key(&self) -> Option<String> {
        self.api_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned())
            .filter(|k| !k.is_empty())
    }
}

/// Background jobs (notifications, ladder, idle claims).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Run the job worker in this process (turn off for a web-only replica).
    pub enabled: bool,
    /// How often an idle worker looks for due jobs (it is also woken at once by new work).
    pub poll_interval_ms: u64,
    /// How long a worker may hold a job before another takes it over (a crashed worker's jobs).
    pub lease_seconds: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_ms: 500,
            lease_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://./resolutionflow.db` (single node) or `postgres://user@host/db` (replicas).
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_seconds: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://./resolutionflow.db".to_owned(),
            max_connections: 10,
            acquire_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the companion and webhooks listen.
    pub listen: String,
    /// How people and platforms reach this server (links are built from it). Defaults to
    /// `http://<listen>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered with 408.
    pub request_timeout_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            request_timeout_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// 32 random bytes, base64. Signs companion links and encrypts stored secrets. Set it
    /// (`RF_MASTER_KEY`) on every replica of a multi-replica deployment.
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub master_key: Option<SecretString>,
    /// Where a generated master key is kept when `master_key` is not set (single node).
    pub key_file: PathBuf,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            key_file: PathBuf::from("./resolutionflow.key"),
        }
    }
}

fn redacted<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(value) if !value.expose_secret().is_empty() => serializer.serialize_str("[REDACTED]"),
        _ => serializer.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanionConfig {
    /// How long a link from the bot can be opened.
    pub link_ttl_minutes: i64,
    /// How long the browser stays signed in after opening a link.
    pub cookie_ttl_minutes: i64,
}

impl Default for CompanionConfig {
    fn default() -> Self {
        Self {
            link_ttl_minutes: 24 * 60,
            cookie_ttl_minutes: 12 * 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowsConfig {
    /// Load the bundled sample flows into an account whose library is empty.
    pub load_samples: bool,
    /// A folder of flow files imported (created or updated) at every start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_dir: Option<PathBuf>,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            load_samples: true,
            import_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// The account the console (and the CLI) work in, created on first start.
    pub account_name: String,
    pub team_name: String,
    /// The console team's escalation channel.
    pub escalation_channel: String,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            account_name: "My MSP".to_owned(),
            team_name: "Service Desk".to_owned(),
            escalation_channel: "#escalations".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Who you are when the console starts (`/as` switches).
    pub user: String,
    pub role: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            user: "you".to_owned(),
            role: "owner".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter: `info`, `warn,resolutionflow=debug`, …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "pretty".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// Flat environment names and the settings they set. Any other setting is reachable as
/// `RF_<SECTION>__<KEY>`, e.g. `RF_COMPANION__LINK_TTL_MINUTES`.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("database_url", "database.url"),
    ("listen", "http.listen"),
    ("public_url", "http.public_url"),
    ("master_key", "security.master_key"),
    ("key_file", "security.key_file"),
    ("log", "log.level"),
    ("log_format", "log.format"),
    ("load_samples", "flows.load_samples"),
    ("flows_dir", "flows.import_dir"),
    ("smtp_host", "smtp.host"),
    ("smtp_port", "smtp.port"),
    ("smtp_tls", "smtp.tls"),
    ("smtp_username", "smtp.username"),
    ("smtp_password", "smtp.password"),
    ("smtp_from", "smtp.from"),
    ("slack_signing_secret", "slack.signing_secret"),
    ("slack_bot_token", "slack.bot_token"),
    ("slack_api_url", "slack.api_url"),
    ("slack_command", "slack.command"),
    ("slack_app_token", "slack.app_token"),
    ("slack_client_id", "slack.client_id"),
    ("slack_client_secret", "slack.client_secret"),
];

const SECTIONS: &[&str] = &[
    "database",
    "http",
    "security",
    "companion",
    "flows",
    "bootstrap",
    "console",
    "smtp",
    "slack",
    "psa",
    "ai",
    "jobs",
    "log",
];

fn env_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if let Some((_, path)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == key) {
        return Some((*path).to_owned());
    }
    let (section, rest) = key.split_once("__")?;
    SECTIONS
        .contains(&section)
        .then(|| format!("{section}.{}", rest.replace("__", ".")))
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl Config {
    /// Defaults, then `file` (or `./resolutionflow.toml` if it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("resolutionflow.toml").exists() => {
                figment = figment.merge(Toml::file_exact("resolutionflow.toml"));
            }
            None => {}
        }
        let env = Env::prefixed("RF_")
            .filter(|key| env_key(key.as_str()).is_some_and(|path| path != "slack.client_id"))
            .map(|key| env_key(key.as_str()).unwrap_or_default().into());
        let mut config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        // Slack client ids look like numbers ("1234567890.1234567890") and must stay text.
        if let Some(id) = ["RF_SLACK_CLIENT_ID", "RF_SLACK__CLIENT_ID"]
            .iter()
            .find_map(|key| std::env::var(key).ok())
        {
            config.slack.client_id = Some(id);
        }
        Ok(config)
    }

    /// The default configuration as a commented TOML file.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        format!(
            "# ResolutionFlow configuration. Every value shown is the default.\n\
             # Environment variables override this file: RF_DATABASE_URL, RF_LISTEN, RF_PUBLIC_URL,\n\
             # RF_MASTER_KEY, RF_LOG, RF_LOG_FORMAT, or RF_<SECTION>__<KEY> for anything else.\n\
             # security.master_key (RF_MASTER_KEY) is never printed; set it from a secret store.\n\n{body}"
        )
    }

    /// The URL people and platforms use to reach this server.
    pub fn public_url(&self) -> String {
        self.http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.http.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_settings() {
        assert_eq!(env_key("DATABASE_URL").as_deref(), Some("database.url"));
        assert_eq!(
            env_key("COMPANION__LINK_TTL_MINUTES").as_deref(),
            Some("companion.link_ttl_minutes")
        );
        assert_eq!(env_key("JOBS__ENABLED").as_deref(), Some("jobs.enabled"));
        assert_eq!(env_key("SMTP__FROM").as_deref(), Some("smtp.from"));
        assert_eq!(env_key("SMTP_HOST").as_deref(), Some("smtp.host"));
        assert_eq!(env_key("TEST_DATABASE_URL"), None);
        assert_eq!(env_key("NOPE__X"), None);
    }

    #[test]
    fn the_default_file_parses_back() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed.database.url, "sqlite://./resolutionflow.db");
        assert_eq!(parsed.http.listen, "127.0.0.1:8080");
    }

    #[test]
    fn secrets_never_print() {
        let mut config = Config::default();
        config.security.master_key = Some(SecretString::from(
            "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
        ));
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("[REDACTED]"));
        assert!(!text.contains("c2VjcmV0"));
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
    }
}
