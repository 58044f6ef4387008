//! Redaction of secrets before anything leaves the system (exports, PSA notes, LLM prompts, logs).
//!
//! Each rule replaces what it finds with a label such as `[REDACTED:password]`, keeping the key or
//! scheme around it so the note still reads. IP addresses, hostnames, usernames and e-mail addresses
//! are left alone: technicians need them. Applying the redactor twice changes nothing.

use regex::{Captures, Regex};
use std::borrow::Cow;
use std::sync::LazyLock;

/// One kind of secret and how to find it.
struct Rule {
    label: &'static str,
    pattern: Regex,
    /// How to rebuild the match: `None` replaces it whole; `Some(f)` keeps what `f` keeps.
    keep: Option<fn(&Captures<'_>, &str) -> String>,
    /// Whether the captured `secret` really looks like one (for rules that also match prose).
    accept: fn(&str) -> bool,
}

fn always(_: &str) -> bool {
    true
}

/// Tokens and passwords almost always carry a digit, a symbol or a capital letter; prose does not.
fn looks_secret(value: &str) -> bool {
    value
        .chars()
        .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || c.is_ascii_punctuation())
}

/// The words that mark a value as secret in `key=value`, `key: value` and connection strings.
const SECRET_KEYS: &str = r"(?:password|passwd|passphrase|pass|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|aws_secret_access_key|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|private[_-]?key|accountkey|sharedaccesskey|sharedaccesssignature|sas[_-]?token|pin)";

fn keep_prefix(caps: &Captures<'_>, label: &str) -> String {
    format!("{}[REDACTED:{label}]", &caps["prefix"])
}

fn keep_prefix_and_suffix(caps: &Captures<'_>, label: &str) -> String {
    format!(
        "{}[REDACTED:{label}]{}",
        &caps["prefix"],
        caps.name("suffix").map_or("", |m| m.as_str())
    )
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let checked = |label, pattern: &str, keep, accept| Rule {
        label,
        pattern: Regex::new(pattern).expect("redaction pattern compiles"),
        keep,
        accept,
    };
    let rule = |label, pattern: &str, keep| checked(label, pattern, keep, always);
    vec![
        // Whole PEM private-key blocks (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8).
        rule(
            "private_key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            None,
        ),
        // Credentials inside URLs: scheme://user:secret@host
        rule(
            "url_credentials",
            r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)(?P<secret>[^\s@/]+)(?P<suffix>@)",
            Some(keep_prefix_and_suffix),
        ),
        // JSON Web Tokens.
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            None,
        ),
        // Authorization headers and bearer tokens.
        checked(
            "bearer_token",
            r"(?i)(?P<prefix>\bbearer\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
            Some(keep_prefix),
            |v| {
                v.chars()
                    .any(|c| c.is_ascii_digit() || "._~+/=-".contains(c))
            },
        ),
        rule(
            "basic_auth",
            r"(?i)(?P<prefix>\bauthorization:\s*basic\s+)(?P<secret>[A-Za-z0-9+/=]{8,})",
            Some(keep_prefix),
        ),
        // AWS access key ids.
        rule(
            "aws_access_key",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
            None,
        ),
        // GitHub tokens (classic and fine-grained).
        rule(
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
            None,
        ),
        // Slack tokens and incoming-webhook URLs.
        rule(
            "slack_token",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}|\bxapp-[0-9]-[A-Za-z0-9-]{10,}",
            None,
        ),
        rule(
            "slack_webhook",
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
            None,
        ),
        // Other well-known token shapes: OpenAI / Anthropic keys, Stripe, Google API keys.
        rule("api_key", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}", None),
        rule(
            "api_key",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
            None,
        ),
        rule("api_key", r"\bAIza[0-9A-Za-z_-]{35}\b", None),
        // "key": "value" and key='value': everything up to the closing quote.
        rule(
            "password",
            &format!(
                r#"(?i)(?P<prefix>\b{SECRET_KEYS}["']?\s*(?:=|:)\s*["'])(?P<secret>[^"'\r\n]+)(?P<suffix>["'])"#
            ),
            Some(keep_prefix_and_suffix),
        ),
        // key=value, key: value, connection-string segments (Password=...;).
        rule(
            "password",
            &format!(
                r#"(?i)(?P<prefix>\b{SECRET_KEYS}["']?\s*(?:=|:)\s*)(?P<secret>[^\s"';,\[][^\s"';,]*)"#
            ),
            Some(keep_prefix),
        ),
        // Natural language: "the password is Hunter2", "pwd was Xyz!".
        checked(
            "password",
            r"(?i)(?P<prefix>\b(?:password|passwd|pwd|passcode|pin)\s+(?:is|was|=)\s+)(?P<secret>[^\s\[][^\s]*)",
            Some(keep_prefix),
            looks_secret,
        ),
        // Windows: net user <name> <password> [/add ...]
        rule(
            "password",
            r"(?i)(?P<prefix>\bnet\s+user\s+(?:\S+|'[^']*'|\x22[^\x22]*\x22)\s+)(?P<secret>[^\s/*\[][^\s]*)",
            Some(keep_prefix),
        ),
        // PowerShell: ConvertTo-SecureString "secret" -AsPlainText
        rule(
            "password",
            r#"(?i)(?P<prefix>\bConvertTo-SecureString\s+(?:-String\s+)?["'])(?P<secret>[^"']+)(?P<suffix>["'])"#,
            Some(keep_prefix_and_suffix),
        ),
    ]
});

/// Finds and labels secrets in text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redactor;

impl Redactor {
    pub fn new() -> Self {
        Self
    }

    /// The text with every secret replaced by a label. Borrowed when nothing was found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut current: Cow<'a, str> = Cow::Borrowed(text);
        for rule in RULES.iter() {
            if !rule.pattern.is_match(&current) {
                continue;
            }
            let replaced = rule
                .pattern
                .replace_all(&current, |caps: &Captures<'_>| {
                    // A label we already wrote is not a secret, and prose is not either.
                    if let Some(secret) = caps.name("secret")
                        && (secret.as_str().starts_with("[REDACTED")
                            || !(rule.accept)(secret.as_str()))
                    {
                        return caps[0].to_owned();
                    }
                    match rule.keep {
                        Some(keep) => keep(caps, rule.label),
                        None => format!("[REDACTED:{}]", rule.label),
                    }
                })
                .into_owned();
            current = Cow::Owned(replaced);
        }
        current
    }

    /// Whether the text contains anything the redactor would replace.
    pub fn finds_secrets(&self, text: &str) -> bool {
        matches!(self.redact(text), Cow::Owned(ref s) if s != text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::new().redact(text).into_owned()
    }

    /// (input, expected output)
    const POSITIVES: &[(&str, &str)] = &[
        (
            "tried password=Hunter2! on the DC",
            "tried password=[REDACTED:password] on the DC",
        ),
        ("Password: Sup3r$ecret", "Password: [REDACTED:password]"),
        ("pwd = letmein", "pwd = [REDACTED:password]"),
        (
            r#"{"password": "p@ss w0rd"}"#,
            r#"{"password": "[REDACTED:password]"}"#,
        ),
        ("pass='open sesame'", "pass='[REDACTED:password]'"),
        (
            "the password is Hunter2 for now",
            "the password is [REDACTED:password] for now",
        ),
        (
            "client_secret=abc123def456",
            "client_secret=[REDACTED:password]",
        ),
        ("API_KEY: 9f8e7d6c5b4a", "API_KEY: [REDACTED:password]"),
        (
            "Server=sql01;Database=crm;User Id=sa;Password=Winter2024!;",
            "Server=sql01;Database=crm;User Id=sa;Password=[REDACTED:password];",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=q1w2e3r4t5y6==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=[REDACTED:password];EndpointSuffix=core.windows.net",
        ),
        (
            "postgres://app:s3cr3t@db.internal:5432/crm",
            "postgres://app:[REDACTED:url_credentials]@db.internal:5432/crm",
        ),
        (
            "https://admin:hunter2@10.0.0.5/login",
            "https://admin:[REDACTED:url_credentials]@10.0.0.5/login",
        ),
        (
            "Authorization: Bearer abcdef123456.xyz",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        (
            "Authorization: Basic dXNlcjpwYXNzd29yZA==",
            "Authorization: Basic [REDACTED:basic_auth]",
        ),
        (
            "key AKIAIOSFODNN7EXAMPLE in env",
            "key [REDACTED:aws_access_key] in env",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:password]",
        ),
        (
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked",
            "token [REDACTED:github_token] leaked",
        ),
        (
            "bot uses xoxb-1234567890-abcdefghij",
            "bot uses [REDACTED:slack_token]",
        ),
        (
            "hook https://hooks.slack.com/services/T000/B000/XXXX",
            "hook [REDACTED:slack_webhook]",
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
            "jwt [REDACTED:jwt] end",
        ),
        (
            "OPENAI sk-proj-abcdefghijklmnopqrstuvwx",
            "OPENAI [REDACTED:api_key]",
        ),
        (
            "net user jdoe Welcome2024! /add",
            "net user jdoe [REDACTED:password] /add",
        ),
        (
            r#"$pw = ConvertTo-SecureString "P@ssw0rd!" -AsPlainText -Force"#,
            r#"$pw = ConvertTo-SecureString "[REDACTED:password]" -AsPlainText -Force"#,
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nafter",
            "[REDACTED:private_key]\nafter",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
            "[REDACTED:private_key]",
        ),
    ];

    /// Text that must come through untouched.
    const NEGATIVES: &[&str] = &[
        "password changed 3 months ago",
        "user forgot their password and is locked out",
        "ping 10.0.0.5 and 192.168.1.20 both reply",
        "nslookup dc01.corp.acme.local returned 10.1.2.3",
        "mapped \\\\fs01\\shared as S:",
        "email jane.doe@acme.com about the mailbox",
        "https://portal.office.com/adminportal/home#/users",
        "token expired, signed in again",
        "reset the MFA token for the user",
        "secret question answered",
        "the bearer of bad news",
        "KB5034441 failed with 0x80070643",
        "Get-ADUser jdoe -Properties LockedOut",
        "net user jdoe /domain",
        "PIN reset required on Windows Hello",
        "the password was reset yesterday and is expired",
        "use bearer authentication on the proxy",
    ];

    #[test]
    fn secrets_are_replaced_with_labels() {
        for (input, expected) in POSITIVES {
            assert_eq!(redact(input), *expected, "input: {input}");
        }
    }

    #[test]
    fn ordinary_support_text_is_untouched() {
        for input in NEGATIVES {
            assert_eq!(redact(input), *input);
            assert!(!Redactor::new().finds_secrets(input), "{input}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        for (input, _) in POSITIVES {
            let once = redact(input);
            assert_eq!(redact(&once), once, "input: {input}");
        }
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(
            Redactor::new().redact("printer offline"),
            Cow::Borrowed(_)
        ));
    }
}
