//! Reading a policy file: YAML (serde-saphyr, with line numbers), then every name, file
//! and glob checked. Each mistake is one message: `line N: key: what is wrong`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::{NamedSigner, Quorum, Rule, RuleKind};
use crate::sign::certs::parse_pem_certificates;
use crate::sign::keyless::{CertificateIdentity, Matcher, TrustedRoot};
use crate::sign::{PublicKey, TrustPolicy};

/// Largest policy file, key or certificate file read.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Reads a small regular text file, reading at most [`MAX_POLICY_BYTES`] (FIFOs and
/// devices are refused; `stat` sizes are not trusted).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    // Non-blocking: opening a FIFO for reading would wait for a writer.
    let file =
        std::os::unix::fs::OpenOptionsExt::custom_flags(std::fs::OpenOptions::new().read(true), libc::O_NONBLOCK)
            .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_POLICY_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<u64>,
    #[serde(default)]
    signers: BTreeMap<String, Spanned<RawSigner>>,
    #[serde(default)]
    require: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSigner {
    key: Option<String>,
    certificate_chain: Option<String>,
    certificate_identity: Option<String>,
    certificate_identity_regexp: Option<String>,
    certificate_oidc_issuer: Option<String>,
    certificate_oidc_issuer_regexp: Option<String>,
    trusted_root: Option<String>,
}

impl RawSigner {
    fn keyless(&self) -> bool {
        self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    signed: Option<RawQuorum>,
    components: Option<String>,
    model_card: Option<RawCard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    signed: RawQuorum,
    #[serde(default)]
    fields: Vec<String>,
}

/// `[a, b]` (all of them) or `{of: [a, b], at-least: N}`.
struct RawQuorum {
    of: Vec<String>,
    at_least: Option<u64>,
}

impl<'de> Deserialize<'de> for RawQuorum {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawQuorum;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of signer names, or {of: [names], at-least: N}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawQuorum, A::Error> {
                let mut of = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    of.push(name);
                }
                Ok(RawQuorum { of, at_least: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawQuorum, A::Error> {
                let (mut of, mut at_least) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "of" => of = Some(map.next_value::<Vec<String>>()?),
                        "at-least" => at_least = Some(map.next_value::<u64>()?),
                        other => return Err(de::Error::unknown_field(other, &["of", "at-least"])),
                    }
                }
                let of = of.ok_or_else(|| de::Error::missing_field("of"))?;
                let at_least = at_least.ok_or_else(|| de::Error::missing_field("at-least"))?;
                Ok(RawQuorum { of, at_least: Some(at_least) })
            }
        }
        d.deserialize_any(V)
    }
}

/// The first line of a YAML error, with its line number when known.
fn yaml_error(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid YAML").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    match e.location() {
        Some(loc) if loc.line() > 0 && !first.contains("line ") => format!("line {}: {first}", loc.line()),
        _ => first,
    }
}

fn signer_trust(
    name: &str,
    raw: &Spanned<RawSigner>,
    base: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<TrustPolicy, String> {
    let line = raw.referenced.line();
    let at = |key: &str, what: String| format!("line {line}: signers.{name}.{key}: {what}");
    let s = &raw.value;
    let kinds = [s.key.is_some(), s.certificate_chain.is_some(), s.keyless()].iter().filter(|k| **k).count();
    if kinds != 1 {
        return Err(format!(
            "line {line}: signers.{name}: give exactly one of `key`, `certificate-chain`, or `certificate-identity[-regexp]` with `certificate-oidc-issuer[-regexp]`"
        ));
    }
    if s.trusted_root.is_some() && !s.keyless() {
        return Err(at("trusted-root", "is for keyless signers (with `certificate-identity[-regexp]`)".into()));
    }
    let load = |key: &str, file: &str| {
        let path = base.join(file);
        read(&path).map_err(|e| at(key, format!("cannot read {}: {e}", path.display())))
    };
    if let Some(file) = &s.key {
        let key = PublicKey::from_pem(&load("key", file)?).map_err(|e| at("key", format!("{file}: {e}")))?;
        return Ok(TrustPolicy::new().trust_key(key));
    }
    if let Some(file) = &s.certificate_chain {
        let pem = load("certificate-chain", file)?;
        let certs = parse_pem_certificates(&pem, file).map_err(|e| at("certificate-chain", e.to_string()))?;
        if certs.is_empty() {
            return Err(at("certificate-chain", format!("{file} holds no certificate")));
        }
        return Ok(TrustPolicy::new().trust_certificates(certs));
    }
    // A keyless Sigstore signer: identity and issuer, each exact or an anchored regexp,
    // checked against the signer's `trusted-root` (default: the built-in public-good root).
    let matcher = |exact: &Option<String>, regexp: &Option<String>, key: &str| match (exact, regexp) {
        (Some(v), None) => Ok(Matcher::exact(v.clone())),
        (None, Some(re)) => Matcher::regexp(re).map_err(|e| at(&format!("{key}-regexp"), e.to_string())),
        (Some(_), Some(_)) => Err(at(key, format!("give `{key}` or `{key}-regexp`, not both"))),
        (None, None) => Err(at(key, format!("a keyless signer needs `{key}` or `{key}-regexp`"))),
    };
    let identity = matcher(&s.certificate_identity, &s.certificate_identity_regexp, "certificate-identity")?;
    let issuer = matcher(&s.certificate_oidc_issuer, &s.certificate_oidc_issuer_regexp, "certificate-oidc-issuer")?;
    let root = match &s.trusted_root {
        Some(file) => {
            let json = load("trusted-root", file)?;
            TrustedRoot::from_json(&json, file).map_err(|e| at("trusted-root", e.to_string()))?
        }
        None => TrustedRoot::public_good().map_err(|e| at("trusted-root", e.to_string()))?,
    };
    Ok(TrustPolicy::new().trust_identity(CertificateIdentity::new(identity, issuer)).sigstore_root(root))
}

fn quorum(raw: RawQuorum, line: u64, key: &str, signers: &[NamedSigner]) -> Result<Quorum, String> {
    let at = |what: String| format!("line {line}: {key}: {what}");
    if raw.of.is_empty() {
        return Err(at("names no signer".into()));
    }
    let mut of: Vec<String> = Vec::new();
    for name in raw.of {
        if !signers.iter().any(|s| s.name == name) {
            let known: Vec<&str> = signers.iter().map(|s| s.name.as_str()).collect();
            return Err(at(format!("unknown signer `{name}` (signers: {})", known.join(", "))));
        }
        if of.contains(&name) {
            return Err(at(format!("signer `{name}` is named twice")));
        }
        of.push(name);
    }
    let at_least = match raw.at_least {
        None => of.len(),
        Some(n) if n == 0 || n as usize > of.len() => {
            return Err(at(format!("at-least: {n} must be between 1 and {} (the signers named)", of.len())));
        }
        Some(n) => n as usize,
    };
    Ok(Quorum { of, at_least })
}

fn rule(raw: Spanned<RawRule>, signers: &[NamedSigner]) -> Result<Rule, String> {
    let line = raw.referenced.line();
    let r = raw.value;
    let kind = match (r.signed, r.components, r.model_card) {
        (Some(q), None, None) => RuleKind::Signed(quorum(q, line, "signed", signers)?),
        (Some(q), Some(glob), None) => {
            let matcher = globset::Glob::new(&glob)
                .map_err(|e| format!("line {line}: components: bad glob `{glob}`: {e}"))?
                .compile_matcher();
            RuleKind::Components { glob, matcher, signed: quorum(q, line, "signed", signers)? }
        }
        (None, Some(_), None) => return Err(format!("line {line}: components: needs `signed` (who must sign them)")),
        (None, None, Some(card)) => {
            let signed = quorum(card.signed, line, "model-card.signed", signers)?;
            for f in &card.fields {
                if f.is_empty() || f.split('.').any(str::is_empty) {
                    return Err(format!("line {line}: model-card.fields: `{f}` is not a dotted field name"));
                }
            }
            RuleKind::ModelCard { signed, fields: card.fields }
        }
        (None, None, None) => {
            return Err(format!("line {line}: a rule needs `signed`, `components` + `signed`, or `model-card`"));
        }
        _ => return Err(format!("line {line}: `model-card` is a rule of its own: put it in its own list item")),
    };
    Ok(Rule { line, kind })
}

/// Parses and checks policy text. `base` is the folder paths are relative to.
pub fn parse(
    text: &str,
    base: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<(Vec<NamedSigner>, Vec<Rule>), String> {
    let raw: RawPolicy = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e))?;
    if raw.version.value != 1 {
        return Err(format!(
            "line {}: version: {} is not a known policy version (expected 1)",
            raw.version.referenced.line(),
            raw.version.value
        ));
    }
    let mut signers = Vec::new();
    for (name, s) in &raw.signers {
        if name.is_empty() {
            return Err(format!("line {}: signers: an empty signer name", s.referenced.line()));
        }
        signers.push(NamedSigner { name: name.clone(), trust: signer_trust(name, s, base, read)? });
    }
    if raw.require.is_empty() {
        return Err("require: a policy must require something (an empty policy would pass anything)".into());
    }
    let rules = raw.require.into_iter().map(|r| rule(r, &signers)).collect::<Result<Vec<_>, _>>()?;
    Ok((signers, rules))
}
