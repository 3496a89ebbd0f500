//! Who may sign keyless: a certificate identity (the SAN Fulcio wrote, an email or a URI)
//! and the OIDC issuer that vouched for it (Fulcio's issuer extension), each matched
//! exactly or by a regular expression, as cosign's `--certificate-identity[-regexp]` and
//! `--certificate-oidc-issuer[-regexp]` do.
//!
//! Unlike cosign, a regular expression must match the **whole** value: it is compiled as
//! `^(?:RE)$`, so `https://github.com/acme/` does not accept
//! `https://github.com/acme/evil/…`, and `.*@acme.com` does not accept
//! `eve@acme.com.evil.org`.

use std::fmt;

use regex::Regex;

use crate::sign::{Error, Result};

/// How one certificate value is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The value equals this string.
    Exact(String),
    /// The whole value matches this regular expression (anchored at both ends).
    Regexp { pattern: String, regex: Regex },
}

impl Matcher {
    pub fn exact(value: impl Into<String>) -> Self {
        Matcher::Exact(value.into())
    }

    /// A regular expression (Rust `regex` syntax, close to Go's RE2) that must match the
    /// whole value. Fails on a pattern that does not compile.
    pub fn regexp(pattern: &str) -> Result<Self> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            // regex's syntax errors span several lines (the pattern, a caret, the error):
            // keep the last one, so the message stays one line.
            let text = e.to_string();
            let why = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid");
            let why = why.strip_prefix("error: ").unwrap_or(why);
            Error::InvalidPolicy(format!("invalid regular expression `{pattern}`: {why}"))
        })?;
        Ok(Matcher::Regexp { pattern: pattern.to_string(), regex })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(expected) => expected == value,
            Matcher::Regexp { regex, .. } => regex.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(v) => write!(f, "`{v}`"),
            Matcher::Regexp { pattern, .. } => write!(f, "regexp `{pattern}`"),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Regexp { pattern: a, .. }, Matcher::Regexp { pattern: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Matcher {}

/// A keyless signer the caller trusts: both the identity and the issuer must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub identity: Matcher,
    pub issuer: Matcher,
}

impl CertificateIdentity {
    pub fn new(identity: Matcher, issuer: Matcher) -> Self {
        CertificateIdentity { identity, issuer }
    }

    /// `{certificate-identity: ID, certificate-oidc-issuer: URL}`: both exact.
    pub fn exact(identity: impl Into<String>, issuer: impl Into<String>) -> Self {
        CertificateIdentity::new(Matcher::exact(identity), Matcher::exact(issuer))
    }

    /// From the four cosign flags: exactly one of `identity`/`identity_regexp` and
    /// exactly one of `issuer`/`issuer_regexp`.
    pub fn from_flags(
        identity: Option<&str>,
        identity_regexp: Option<&str>,
        issuer: Option<&str>,
        issuer_regexp: Option<&str>,
    ) -> Result<Self> {
        let identity = match (identity, identity_regexp) {
            (Some(v), None) => Matcher::exact(v),
            (None, Some(re)) => Matcher::regexp(re)?,
            (Some(_), Some(_)) => {
                return Err(Error::InvalidPolicy(
                    "give --certificate-identity or --certificate-identity-regexp, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::InvalidPolicy(
                    "a keyless signer needs --certificate-identity or --certificate-identity-regexp".into(),
                ));
            }
        };
        let issuer = match (issuer, issuer_regexp) {
            (Some(v), None) => Matcher::exact(v),
            (None, Some(re)) => Matcher::regexp(re)?,
            (Some(_), Some(_)) => {
                return Err(Error::InvalidPolicy(
                    "give --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::InvalidPolicy(
                    "a keyless signer needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp".into(),
                ));
            }
        };
        Ok(CertificateIdentity { identity, issuer })
    }

    pub fn matches(&self, identity: &str, issuer: &str) -> bool {
        self.identity.matches(identity) && self.issuer.matches(issuer)
    }
}

impl fmt::Display for CertificateIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "identity {} from issuer {}", self.identity, self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_only_the_same_string() {
        let id = CertificateIdentity::exact("a@example.com", "https://accounts.example.com");
        assert!(id.matches("a@example.com", "https://accounts.example.com"));
        assert!(!id.matches("a@example.com ", "https://accounts.example.com"));
        assert!(!id.matches("a@example.com", "https://accounts.example.com/"));
        assert!(!id.matches("A@example.com", "https://accounts.example.com"));
    }

    #[test]
    fn attack_regexp_matching_only_a_prefix_or_a_substring() {
        let id = CertificateIdentity::new(
            Matcher::regexp("https://github.com/acme/[a-z]+/.github/workflows/release.yml@refs/tags/v.*").unwrap(),
            Matcher::regexp("https://token.actions.githubusercontent.com").unwrap(),
        );
        let ok = "https://github.com/acme/model/.github/workflows/release.yml@refs/tags/v1.0";
        assert!(id.matches(ok, "https://token.actions.githubusercontent.com"));
        // The issuer regexp has no anchors, yet an issuer that merely contains it is refused.
        assert!(!id.matches(ok, "https://token.actions.githubusercontent.com.evil.example"));
        assert!(!id.matches(ok, "https://evil.example/https://token.actions.githubusercontent.com"));
        // An identity the pattern matches only a part of.
        assert!(!id.matches(&format!("https://evil.example/{ok}"), "https://token.actions.githubusercontent.com"));
        // A pattern that matches a prefix of the identity is refused as well.
        let prefix = CertificateIdentity::new(
            Matcher::regexp("https://github.com/acme/").unwrap(),
            Matcher::exact("https://token.actions.githubusercontent.com"),
        );
        assert!(!prefix.matches(ok, "https://token.actions.githubusercontent.com"));
        // Alternation cannot escape the anchors.
        let alt = Matcher::regexp("a@acme.com|b@acme.com").unwrap();
        assert!(alt.matches("b@acme.com"));
        assert!(!alt.matches("b@acme.com.evil.org"));
        assert!(!alt.matches("xa@acme.com"));
    }

    #[test]
    fn flags_need_one_of_each() {
        assert!(CertificateIdentity::from_flags(Some("a"), None, Some("b"), None).is_ok());
        assert!(CertificateIdentity::from_flags(None, Some("a.*"), None, Some("b")).is_ok());
        for (a, b, c, d) in [
            (Some("a"), Some("a"), Some("b"), None),
            (Some("a"), None, None, None),
            (None, None, Some("b"), None),
            (Some("a"), None, Some("b"), Some("b")),
        ] {
            assert!(matches!(CertificateIdentity::from_flags(a, b, c, d), Err(Error::InvalidPolicy(_))));
        }
        assert!(matches!(
            CertificateIdentity::from_flags(None, Some("(unclosed"), Some("b"), None),
            Err(Error::InvalidPolicy(m)) if m.contains("(unclosed")
        ));
    }
}
