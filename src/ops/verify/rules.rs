//! A policy's rules applied to what was found among a model's referrers.
//!
//! - `signed` is met only by a matching **whole-model** signature of the signer;
//! - `components` is met for a component by a component signature of the signer listing
//!   that component's path *and* digest, or by the signer's whole-model signature; only
//!   the components in scope are checked (all, or those verified or pulled); a glob that
//!   matches no component of the model fails (with a warning), it never passes silently;
//! - `model-card` is met by a model-card attestation about this manifest by the signer
//!   that holds the mandatory fields and the ones the rule names;
//! - a statement by any policy signer that contradicts the model fails the policy, as it
//!   fails verification with plain keys.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::signatures::{Coverage, Finding, StatementKind};
use crate::card::{self, Card};
use crate::ops::components::Component;
use crate::policy::{Policy, Quorum, Rule, RuleKind};

/// One rule's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResult {
    /// The line of the policy file the rule starts at (0 for the consistency check).
    pub line: u64,
    pub rule: String,
    pub passed: bool,
    pub reason: String,
}

/// Every rule of a policy, with pass or fail and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub policy: std::path::PathBuf,
    pub passed: bool,
    pub rules: Vec<RuleResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl PolicyReport {
    /// The first failing rule, as one line.
    pub fn failure(&self) -> Option<String> {
        self.rules.iter().find(|r| !r.passed).map(|r| {
            if r.line == 0 {
                format!("policy: {}", r.reason)
            } else {
                format!("policy rule at line {} ({}) failed: {}", r.line, r.rule, r.reason)
            }
        })
    }
}

/// What the trusted findings say, by policy signer name.
#[derive(Default)]
struct Evidence {
    /// Signers with a matching whole-model signature.
    model: BTreeSet<String>,
    /// Per component path, signers with a component signature covering it (path and digest).
    components: BTreeMap<String, BTreeSet<String>>,
    /// Model cards about this manifest, with who attested each.
    cards: Vec<(Vec<String>, Result<Card, String>)>,
    /// Signers that signed something here, but only component signatures or attestations.
    other: BTreeMap<String, BTreeSet<&'static str>>,
}

fn collect(findings: &[Finding]) -> (Evidence, Vec<String>) {
    let mut ev = Evidence::default();
    let mut contradictions = Vec::new();
    for f in findings {
        let Ok(t) = &f.trusted else { continue };
        if t.signer_names.is_empty() {
            continue;
        }
        match (&t.coverage, t.kind) {
            (Err(reason), _) => contradictions.push(format!(
                "{} by {} ({}) contradicts this model: {reason}",
                f.referrer,
                t.signer_names.join(", "),
                t.statement.predicate_type
            )),
            (Ok(Coverage::Model), _) => ev.model.extend(t.signer_names.iter().cloned()),
            (Ok(Coverage::Components(paths)), _) => {
                for p in paths {
                    ev.components.entry(p.clone()).or_default().extend(t.signer_names.iter().cloned());
                }
                for n in &t.signer_names {
                    ev.other.entry(n.clone()).or_default().insert("a component signature");
                }
            }
            (Ok(Coverage::Attestation), StatementKind::Attestation) => {
                if t.statement.predicate_type == card::PREDICATE_TYPE {
                    let parsed = Card::from_predicate(&t.statement.predicate).map_err(|e| e.to_string());
                    ev.cards.push((t.signer_names.clone(), parsed));
                }
                for n in &t.signer_names {
                    ev.other.entry(n.clone()).or_default().insert("an attestation");
                }
            }
            (Ok(Coverage::Attestation), _) => {}
        }
    }
    (ev, contradictions)
}

fn count(q: &Quorum, who: &BTreeSet<String>) -> usize {
    q.of.iter().filter(|n| who.contains(*n)).count()
}

fn need(q: &Quorum) -> String {
    if q.at_least == q.of.len() && q.of.len() == 1 {
        q.of[0].clone()
    } else {
        format!("{} of [{}]", q.at_least, q.of.join(", "))
    }
}

fn signed_rule(q: &Quorum, ev: &Evidence) -> (bool, String) {
    let met: Vec<&String> = q.of.iter().filter(|n| ev.model.contains(*n)).collect();
    if met.len() >= q.at_least {
        let names: Vec<&str> = met.iter().map(|s| s.as_str()).collect();
        return (true, format!("whole-model signature by {}", names.join(", ")));
    }
    let mut reason = format!("{} of the required signers signed the whole model (need {})", met.len(), need(q));
    let partial: Vec<String> =
        q.of.iter()
            .filter(|n| !ev.model.contains(*n))
            .filter_map(|n| {
                ev.other.get(n).map(|k| format!("{n} has only {}", k.iter().copied().collect::<Vec<_>>().join(" and ")))
            })
            .collect();
    if !partial.is_empty() {
        reason.push_str(&format!("; {}, which are not whole-model signatures", partial.join("; ")));
    }
    (false, reason)
}

fn components_rule(
    glob: &str,
    matcher: &globset::GlobMatcher,
    q: &Quorum,
    all: &[Component],
    scope: &[Component],
    ev: &Evidence,
    warnings: &mut Vec<String>,
) -> (bool, String) {
    let matching: Vec<&Component> = all.iter().filter(|c| matcher.is_match(&c.path)).collect();
    if matching.is_empty() {
        warnings.push(format!("components glob `{glob}` matches no component of the model"));
        return (false, format!("`{glob}` matches no component of the model: nothing to check is not a pass"));
    }
    let in_scope: Vec<&Component> = scope.iter().filter(|c| matcher.is_match(&c.path)).collect();
    if in_scope.is_empty() {
        return (true, "not checked: matches none of the requested components".into());
    }
    for c in &in_scope {
        let mut who = ev.model.clone();
        if let Some(signers) = ev.components.get(&c.path) {
            who.extend(signers.iter().cloned());
        }
        let n = count(q, &who);
        if n < q.at_least {
            return (
                false,
                format!(
                    "component `{}` ({}) is signed by {n} of the required signers (need {})",
                    c.path,
                    c.descriptor.digest,
                    need(q)
                ),
            );
        }
    }
    (true, format!("{} component(s) signed", in_scope.len()))
}

fn card_rule(q: &Quorum, fields: &[String], ev: &Evidence) -> (bool, String) {
    let mut good = BTreeSet::new();
    let mut problems = Vec::new();
    for (names, parsed) in &ev.cards {
        let named: Vec<&String> = names.iter().filter(|n| q.of.contains(n)).collect();
        if named.is_empty() {
            continue;
        }
        match parsed {
            Err(e) => problems.push(format!("the card attested by {} is invalid: {e}", names.join(", "))),
            Ok(card) => {
                let missing: Vec<&str> = card::MANDATORY_FIELDS
                    .iter()
                    .copied()
                    .chain(fields.iter().map(String::as_str))
                    .filter(|f| !card.is_present(f))
                    .collect();
                if missing.is_empty() {
                    good.extend(named.into_iter().cloned());
                } else {
                    problems.push(format!("the card attested by {} lacks {}", names.join(", "), missing.join(", ")));
                }
            }
        }
    }
    let n = count(q, &good);
    if n >= q.at_least {
        let names: Vec<&str> = q.of.iter().filter(|s| good.contains(*s)).map(String::as_str).collect();
        return (true, format!("model card attested by {}", names.join(", ")));
    }
    let mut reason = format!("{n} of the required signers attested a complete model card (need {})", need(q));
    if !problems.is_empty() {
        reason.push_str(&format!(": {}", problems.join("; ")));
    }
    (false, reason)
}

/// Applies `policy` to the findings about a model whose components are `all`, checking
/// component rules for the components in `scope` only.
pub fn evaluate(policy: &Policy, findings: &[Finding], all: &[Component], scope: &[Component]) -> PolicyReport {
    let (ev, contradictions) = collect(findings);
    let mut warnings = Vec::new();
    let mut rules: Vec<RuleResult> = policy
        .rules
        .iter()
        .map(|rule: &Rule| {
            let (passed, reason) = match &rule.kind {
                RuleKind::Signed(q) => signed_rule(q, &ev),
                RuleKind::Components { glob, matcher, signed } => {
                    components_rule(glob, matcher, signed, all, scope, &ev, &mut warnings)
                }
                RuleKind::ModelCard { signed, fields } => card_rule(signed, fields, &ev),
            };
            RuleResult { line: rule.line, rule: rule.describe(), passed, reason }
        })
        .collect();
    rules.push(RuleResult {
        line: 0,
        rule: "no statement by a policy signer contradicts the model".into(),
        passed: contradictions.is_empty(),
        reason: contradictions.first().cloned().unwrap_or_else(|| "none does".into()),
    });
    PolicyReport { policy: policy.path.clone(), passed: rules.iter().all(|r| r.passed), rules, warnings }
}
