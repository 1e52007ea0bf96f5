//! What of the environment goes into a record: only variables named by the
//! allow-list, and of those, never a value that is or looks like a secret.
//!
//! Two guards, so that one mistake is not a leak: a name that sounds secret
//! (TOKEN, SECRET, PASSWORD, KEY, AWS_*, …) is redacted even when allow-listed,
//! and so is a value that looks like a credential (a PEM private key, a bearer
//! token, a GitHub, Slack or AWS key id, a JWT), whatever its name.

use std::collections::BTreeMap;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

const SECRET_WORDS: [&str; 7] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
];
const SECRET_PREFIXES: [&str; 3] = ["AWS_", "GH_", "GITHUB_"];

/// Whether `pattern` (a name, or a prefix ending in `*`) allows `name`.
fn allowed(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Whether a variable's name says it holds a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
        || SECRET_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// Whether a value looks like a credential, whatever it is called.
pub fn secret_value(value: &str) -> bool {
    let v = value.trim();
    let token_after = |prefix: &str, min: usize| {
        v.split(|c: char| c.is_whitespace() || c == '=' || c == ':')
            .any(|w| {
                w.strip_prefix(prefix).is_some_and(|rest| {
                    rest.len() >= min
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                })
            })
    };
    (v.contains("-----BEGIN") && v.contains("PRIVATE KEY"))
        || v.contains("PRIVATE KEY-----")
        || v.to_ascii_lowercase().starts_with("bearer ")
        || ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]
            .iter()
            .any(|p| token_after(p, 20))
        || ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"]
            .iter()
            .any(|p| token_after(p, 10))
        || ["AKIA", "ASIA"].iter().any(|p| {
            v.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
                w.len() == 20
                    && w.starts_with(p)
                    && w.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            })
        })
        || looks_like_jwt(v)
}

fn looks_like_jwt(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 8
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// The allow-listed part of `env`, with secrets redacted.
pub fn capture(env: &BTreeMap<String, String>, allow: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(name, _)| allow.iter().any(|p| allowed(p, name)))
        .map(|(name, value)| {
            let value = if secret_name(name) || secret_value(value) {
                REDACTED.to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_allow_listed_names_are_kept_and_secrets_never() {
        let e = env(&[
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C"),
            ("HOME", "/home/hui"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("MY_API_TOKEN", "abc"),
            (
                "NOTES",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn==\n-----END OPENSSH PRIVATE KEY-----",
            ),
            (
                "HEADER",
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz",
            ),
            ("CI_NOTE", "id AKIAIOSFODNN7EXAMPLE here"),
        ]);
        let allow: Vec<String> = [
            "PATH",
            "LC_*",
            "AWS_*",
            "MY_API_TOKEN",
            "NOTES",
            "HEADER",
            "CI_NOTE",
        ]
        .map(String::from)
        .to_vec();
        let got = capture(&e, &allow);
        assert_eq!(got["PATH"], "/usr/bin");
        assert_eq!(got["LC_ALL"], "C");
        assert!(!got.contains_key("HOME"), "not allow-listed");
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "MY_API_TOKEN",
            "NOTES",
            "HEADER",
            "CI_NOTE",
        ] {
            assert_eq!(got[name], REDACTED, "{name}");
        }
    }

    #[test]
    fn ordinary_values_are_not_mistaken_for_secrets() {
        for v in [
            "/usr/local/bin:/usr/bin",
            "en_US.UTF-8",
            "8",
            "production_gates",
            "ghp_",
            "a.b.c",
        ] {
            assert!(!secret_value(v), "{v}");
        }
        assert!(secret_value("ghp_0123456789abcdefghijABCDEFGHIJ012345"));
        assert!(secret_value(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz"
        ));
    }
}
