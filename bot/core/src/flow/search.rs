//! Turning a technician's plain-language problem into search terms.
//!
//! The store owns the query syntax (FTS5 on SQLite, `tsquery` on PostgreSQL); the core decides which
//! words matter, so both backends search for the same thing.

use serde::{Deserialize, Serialize};

/// One word to look for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTerm {
    /// Lowercase ASCII letters and digits only: safe to embed in any query syntax.
    pub text: String,
    /// Also match words that start with this one (`print` → `printer`, `printing`).
    pub prefix: bool,
}

/// What to search the flow library for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowQuery {
    pub terms: Vec<QueryTerm>,
}

/// Words that carry no meaning for matching a support problem.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "but",
    "by",
    "can",
    "cannot",
    "cant",
    "could",
    "did",
    "didn",
    "does",
    "doesn",
    "doing",
    "don",
    "dont",
    "each",
    "even",
    "ever",
    "every",
    "for",
    "from",
    "get",
    "gets",
    "getting",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "ive",
    "just",
    "keep",
    "keeps",
    "kept",
    "like",
    "me",
    "mine",
    "more",
    "most",
    "my",
    "need",
    "needs",
    "no",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "out",
    "over",
    "please",
    "really",
    "s",
    "said",
    "says",
    "she",
    "should",
    "since",
    "so",
    "some",
    "still",
    "t",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "too",
    "trying",
    "try",
    "tried",
    "up",
    "us",
    "very",
    "was",
    "wasn",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "why",
    "will",
    "with",
    "won",
    "wont",
    "would",
    "yet",
    "you",
    "your",
    "help",
    "issue",
    "issues",
    "problem",
    "problems",
    "user",
    "users",
    "customer",
    "customers",
    "client",
    "clients",
    "today",
    "morning",
    "anymore",
    "suddenly",
    "since",
    "started",
    "starting",
    "work",
    "working",
    "works",
    "doesnt",
    "isnt",
    "wont",
];

/// MSP shorthand and everyday words, each mapped to the words a flow author would use.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("pw", &["password"]),
    ("pwd", &["password"]),
    ("passwd", &["password"]),
    ("passcode", &["password"]),
    ("login", &["sign"]),
    ("logon", &["sign"]),
    ("signin", &["sign"]),
    ("credentials", &["password"]),
    ("creds", &["password"]),
    ("2fa", &["mfa"]),
    ("otp", &["mfa"]),
    ("authenticator", &["mfa"]),
    ("print", &["printer"]),
    ("printing", &["printer"]),
    ("prints", &["printer"]),
    ("mailbox", &["outlook", "email"]),
    ("mail", &["email"]),
    ("emails", &["email"]),
    ("o365", &["m365"]),
    ("office365", &["m365"]),
    ("anyconnect", &["vpn"]),
    ("globalprotect", &["vpn"]),
    ("forticlient", &["vpn"]),
    ("wireguard", &["vpn"]),
    ("tunnel", &["vpn"]),
    ("locked", &["lockout"]),
    ("sluggish", &["slow"]),
    ("laggy", &["slow"]),
    ("freezing", &["slow", "freeze"]),
    ("hangs", &["slow", "freeze"]),
    ("websites", &["dns", "website"]),
    ("resolve", &["dns"]),
    ("nslookup", &["dns"]),
    ("share", &["drive"]),
    ("shares", &["drive"]),
    ("mapped", &["drive"]),
    ("hire", &["onboarding"]),
    ("starter", &["onboarding"]),
    ("joiner", &["onboarding"]),
    ("patches", &["patch"]),
    ("patching", &["patch"]),
    ("updates", &["patch", "update"]),
];

/// Terms shorter than this are matched exactly, longer ones also as prefixes.
const MIN_PREFIX_LEN: usize = 4;
/// A problem description rarely needs more than this many distinct words.
const MAX_TERMS: usize = 24;

impl FlowQuery {
    /// The search terms for a problem description, in order of first appearance.
    pub fn from_problem(text: &str) -> Self {
        let mut terms: Vec<QueryTerm> = Vec::new();
        let add = |word: &str, terms: &mut Vec<QueryTerm>| {
            if terms.len() < MAX_TERMS && !terms.iter().any(|t| t.text == word) {
                terms.push(QueryTerm {
                    text: word.to_owned(),
                    prefix: word.len() >= MIN_PREFIX_LEN,
                });
            }
        };
        let lowered = text.to_lowercase().replace(['\'', '’'], "");
        for word in lowered
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if let Some((_, expansions)) = SYNONYMS.iter().find(|(key, _)| *key == word) {
                add(word, &mut terms);
                for expansion in *expansions {
                    add(expansion, &mut terms);
                }
            } else if !STOP_WORDS.contains(&word)
                && (word.len() > 1 || word.chars().all(|c| c.is_ascii_digit()))
            {
                add(word, &mut terms);
            }
        }
        Self { terms }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        FlowQuery::from_problem(text)
            .terms
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn stop_words_and_punctuation_fall_away() {
        assert_eq!(
            words("Outlook keeps asking for my password!"),
            ["outlook", "asking", "password"]
        );
        assert_eq!(words("I can't print"), ["print", "printer"]);
    }

    #[test]
    fn shorthand_expands_to_the_words_flows_use() {
        assert_eq!(
            words("user locked out, pw reset"),
            ["locked", "lockout", "pw", "password", "reset"]
        );
    }

    #[test]
    fn only_safe_characters_survive() {
        let query =
            FlowQuery::from_problem(r#"vpn "OR" NEAR(x) ; DROP TABLE flows; -- 'quote' * :* |"#);
        for term in &query.terms {
            assert!(
                term.text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{term:?}"
            );
        }
    }

    #[test]
    fn short_words_are_not_prefixes() {
        let query = FlowQuery::from_problem("vpn dropping");
        assert_eq!(
            query.terms[0],
            QueryTerm {
                text: "vpn".into(),
                prefix: false
            }
        );
        assert!(query.terms[1].prefix);
    }

    #[test]
    fn empty_text_gives_no_terms() {
        assert!(FlowQuery::from_problem("  the, and... ").is_empty());
    }
}
