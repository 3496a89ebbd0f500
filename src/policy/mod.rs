//! Trust policies (`--policy POLICY.yaml`): who must have vouched for what before a model
//! is used. The format is documented in `docs/POLICY.md`:
//!
//! ```yaml
//! version: 1
//! signers:
//!   publisher: {key: keys/publisher.pub}
//!   ops:       {certificate-chain: roots/ops-root.pem}
//! require:
//!   - signed: [publisher]
//!   - components: "vision/**"
//!     signed: {of: [vision, publisher], at-least: 1}
//!   - model-card: {signed: [security], fields: [license]}
//! ```
//!
//! [`Policy::load`] reads and checks a policy file: every mistake (unknown key, missing
//! file, bad glob, unknown signer name, impossible threshold) is one message naming the
//! file, the line and the key. Signers are keys, certificate roots, or keyless Sigstore
//! identities (identity + OIDC issuer, exact or an anchored regexp, against a trusted
//! root). `ops::verify::decide` applies it to what was found among a
//! model's referrers (`ops/verify/rules.rs`). This module is pure: it reads files, never
//! the network.

mod parse;

use std::path::{Path, PathBuf};

use globset::GlobMatcher;

pub use parse::MAX_POLICY_BYTES;

use crate::sign::TrustPolicy;

/// A loaded, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy file (paths in it are relative to its folder).
    pub path: PathBuf,
    pub signers: Vec<NamedSigner>,
    pub rules: Vec<Rule>,
}

/// A signer the policy names.
#[derive(Debug, Clone)]
pub struct NamedSigner {
    pub name: String,
    pub trust: TrustPolicy,
}

/// "At least `at_least` of these signers".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub of: Vec<String>,
    pub at_least: usize,
}

/// One requirement, with the line it starts at.
#[derive(Debug, Clone)]
pub struct Rule {
    pub line: u64,
    pub kind: RuleKind,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Whole-model signatures by a quorum.
    Signed(Quorum),
    /// Each component matching `glob` covered by a quorum (a component signature listing
    /// it with its digest, or a whole-model signature).
    Components { glob: String, matcher: GlobMatcher, signed: Quorum },
    /// A model card attested by a quorum, holding the mandatory fields and `fields`.
    ModelCard { signed: Quorum, fields: Vec<String> },
}

impl Rule {
    /// The rule as the policy states it, for reports.
    pub fn describe(&self) -> String {
        fn quorum(q: &Quorum) -> String {
            if q.at_least == q.of.len() {
                format!("[{}]", q.of.join(", "))
            } else {
                format!("{{of: [{}], at-least: {}}}", q.of.join(", "), q.at_least)
            }
        }
        match &self.kind {
            RuleKind::Signed(q) => format!("signed: {}", quorum(q)),
            RuleKind::Components { glob, signed, .. } => format!("components: \"{glob}\", signed: {}", quorum(signed)),
            RuleKind::ModelCard { signed, fields } if fields.is_empty() => {
                format!("model-card: {{signed: {}}}", quorum(signed))
            }
            RuleKind::ModelCard { signed, fields } => {
                format!("model-card: {{signed: {}, fields: [{}]}}", quorum(signed), fields.join(", "))
            }
        }
    }
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> crate::Result<Policy> {
        let text = parse::read_text(path)
            .map_err(|e| crate::Error::InvalidPolicy { path: path.to_path_buf(), reason: e.to_string() })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        parse::parse(&text, &base, &parse::read_text)
            .map(|(signers, rules)| Policy { path: path.to_path_buf(), signers, rules })
            .map_err(|e| crate::Error::InvalidPolicy { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// Parses policy text; `read` reads the files it names (relative to `base`).
    pub fn from_text(
        text: &str,
        base: &Path,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Policy, String> {
        parse::parse(text, base, read).map(|(signers, rules)| Policy { path: base.join("policy"), signers, rules })
    }

    pub fn signer(&self, name: &str) -> Option<&NamedSigner> {
        self.signers.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests;
