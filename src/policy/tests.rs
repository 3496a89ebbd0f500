//! The policy file parser: what it accepts, one message naming line and key for each
//! mistake, and no panic on any input (a bounded property loop, stable Rust).

use std::path::{Path, PathBuf};

use super::*;
use crate::sign::{Algorithm, SigningKey};

fn files() -> impl Fn(&Path) -> std::io::Result<String> {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pem = PEM.get_or_init(|| SigningKey::generate(Algorithm::P256).unwrap().public_key().to_pem()).clone();
    move |p: &Path| {
        if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".pub")) {
            Ok(pem.clone())
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"))
        }
    }
}

fn parse(text: &str) -> Result<Policy, String> {
    Policy::from_text(text, &PathBuf::from("/p"), &files())
}

const GOOD: &str = "version: 1
signers:
  publisher: {key: keys/publisher.pub}
  security:  {key: keys/security.pub}
  vision:    {key: keys/vision.pub}
require:
  - signed: [publisher]
  - signed: {of: [security, vision], at-least: 1}
  - components: \"vision/**\"
    signed: [vision]
  - model-card:
      signed: [security]
      fields: [license, security.certificate]
";

#[test]
fn reads_the_documented_example() {
    let p = parse(GOOD).unwrap();
    assert_eq!(p.signers.len(), 3);
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].line, 7);
    assert!(matches!(&p.rules[1].kind, RuleKind::Signed(q) if q.at_least == 1 && q.of.len() == 2));
    assert!(matches!(&p.rules[2].kind, RuleKind::Components { glob, .. } if glob == "vision/**"));
    assert_eq!(p.rules[3].line, 11);
    assert_eq!(p.rules[3].describe(), "model-card: {signed: [security], fields: [license, security.certificate]}");
}

#[test]
fn each_mistake_is_one_line_naming_line_and_key() {
    let cases: [(&str, &str, &[&str]); 10] = [
        ("unknown key", "signers:\n  a: {key: a.pub}\n", &["line 5", "signd"]),
        ("missing file", "signers:\n  a: {key: missing.key}\n", &["line 3", "signers.a.key", "/p/missing.key"]),
        ("unknown signer", "signers:\n  a: {key: a.pub}\n", &["line 5", "signed", "unknown signer `b`"]),
        ("bad glob", "signers:\n  a: {key: a.pub}\n", &["line 5", "components", "bad glob"]),
        ("impossible threshold", "signers:\n  a: {key: a.pub}\n", &["line 5", "at-least: 3"]),
        ("signer key unknown", "signers:\n  a: {kee: a.pub}\n", &["kee"]),
        (
            "two kinds",
            "signers:\n  a: {key: a.pub, certificate-chain: r.pem}\n",
            &["line 3", "signers.a", "exactly one"],
        ),
        (
            "keyless without issuer",
            "signers:\n  a: {certificate-identity: x}\n",
            &["line 3", "signers.a.certificate-oidc-issuer", "needs"],
        ),
        ("card fields", "signers:\n  a: {key: a.pub}\n", &["line 5", "model-card.fields"]),
        ("mixed rule", "signers:\n  a: {key: a.pub}\n", &["line 5", "own list item"]),
    ];
    let requires = [
        "require:\n  - signd: [a]\n",
        "require:\n  - signed: [a]\n",
        "require:\n  - signed: [b]\n",
        "require:\n  - components: \"a/[\"\n    signed: [a]\n",
        "require:\n  - signed: {of: [a], at-least: 3}\n",
        "require:\n  - signed: [a]\n",
        "require:\n  - signed: [a]\n",
        "require:\n  - signed: [a]\n",
        "require:\n  - model-card: {signed: [a], fields: [\"a..b\"]}\n",
        "require:\n  - model-card: {signed: [a]}\n    signed: [a]\n",
    ];
    for ((name, signers, needles), require) in cases.iter().zip(requires) {
        let text = format!("version: 1\n{signers}{require}");
        let err = parse(&text).err().unwrap_or_else(|| panic!("{name}: accepted:\n{text}"));
        assert!(!err.contains('\n'), "{name}: not one line: {err}");
        for n in *needles {
            assert!(err.contains(n), "{name}: `{n}` not in: {err}");
        }
    }
    assert!(parse("version: 2\nrequire:\n  - signed: [a]\n").unwrap_err().contains("version"));
    assert!(parse("version: 1\nsigners: {}\nrequire: []\n").unwrap_err().contains("must require something"));
}

#[test]
fn keyless_signers_exact_or_anchored_regexp() {
    let text = "version: 1
signers:
  ci: {certificate-identity-regexp: 'https://github\\.com/acme/.*', certificate-oidc-issuer: https://token.actions.githubusercontent.com}
  alice: {certificate-identity: alice@example.com, certificate-oidc-issuer-regexp: 'https://accounts\\.(google|example)\\.com'}
require:
  - signed: [ci, alice]
";
    let p = parse(text).unwrap();
    let ci = &p.signer("ci").unwrap().trust;
    assert!(ci.keys().is_empty() && ci.roots().is_empty());
    let id = &ci.identities()[0];
    assert!(id.matches(
        "https://github.com/acme/models/.github/workflows/r.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com"
    ));
    assert!(
        !id.matches("https://github.com/acme/x", "https://token.actions.githubusercontent.com.evil"),
        "issuer is exact"
    );
    assert!(
        !id.matches("xhttps://github.com/acme/x", "https://token.actions.githubusercontent.com"),
        "anchored at the start"
    );
    let alice = &p.signer("alice").unwrap().trust.identities()[0];
    assert!(alice.matches("alice@example.com", "https://accounts.google.com"));
    assert!(!alice.matches("alice@example.com", "https://accounts.google.com.evil.org"), "anchored at the end");

    for (signer, needles) in [
        (
            "{certificate-identity-regexp: '(x', certificate-oidc-issuer: y}",
            &["line 3", "signers.a.certificate-identity-regexp", "(x"][..],
        ),
        (
            "{certificate-identity: x, certificate-identity-regexp: y, certificate-oidc-issuer: z}",
            &["line 3", "not both"],
        ),
        ("{certificate-oidc-issuer: y}", &["line 3", "signers.a.certificate-identity", "needs"]),
        ("{key: a.pub, trusted-root: r.json}", &["line 3", "signers.a.trusted-root", "keyless"]),
        (
            "{certificate-identity: x, certificate-oidc-issuer: y, trusted-root: absent.json}",
            &["line 3", "signers.a.trusted-root", "/p/absent.json"],
        ),
        ("{certificate-identity: x, certificate-oidc-issuer: y, key: a.pub}", &["line 3", "exactly one"]),
    ] {
        let text = format!("version: 1\nsigners:\n  a: {signer}\nrequire:\n  - signed: [a]\n");
        let err = parse(&text).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
        assert!(!err.contains('\n'), "not one line: {err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
    }
}

/// A small deterministic generator (no extra crate): splices, truncations and byte flips
/// of valid policies, and random YAML-ish text. The parser must answer, never panic.
#[test]
fn never_panics_on_any_input() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> =
        "version: 1\nsigners require - [ ] { } , key of at-least components model-card fields \"*?\\\t&*!|>%@`#'\u{0}é"
            .chars()
            .collect();
    for i in 0..1500 {
        let mut text: Vec<char> = GOOD.chars().collect();
        match i % 3 {
            0 => text.truncate((next() as usize) % (text.len() + 1)),
            1 => {
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % text.len();
                    text[at] = alphabet[(next() as usize) % alphabet.len()];
                }
            }
            _ => {
                text = (0..(next() % 200)).map(|_| alphabet[(next() as usize) % alphabet.len()]).collect();
            }
        }
        let text: String = text.into_iter().collect();
        let _ = std::panic::catch_unwind(|| parse(&text)).unwrap_or_else(|_| panic!("panicked on:\n{text:?}"));
    }
}
