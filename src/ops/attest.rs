//! `attest REF --model-card CARD`: signs a model card about a model and attaches it, and
//! finds the cards attached to a model that trusted signers attested (`card show`, and the
//! policy's `model-card` rules).
//!
//! Two Sigstore bundles are attached as referrers, laid out as `sign` lays out its own
//! (`docs/FORMAT.md`, "Model cards"): an in-toto statement whose subject is the manifest
//! digest and whose predicate is the card ([`card::PREDICATE_TYPE`]), and the same card as
//! a CycloneDX 1.6 ML-BOM ([`cyclonedx::PREDICATE_TYPE`]). Before signing, the card's
//! mandatory fields are checked (nothing is attached without them) and the fields the
//! artifact and the signer determine are filled in ([`card::provenance`]).
//!
//! A card attestation is **not a signature of the model**: it says what the model is, not
//! that its bytes are vouched for.

use serde::Serialize;
use serde_json::Value;

use crate::card::provenance::{self, Filled, SignerInfo};
use crate::card::{self, Card, cyclonedx};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::modelpack;
use crate::oci::{ANNOTATION_CREATED, Descriptor, Manifest};
use crate::ops::attach::attach_referrers;
use crate::ops::model::fetch_model_manifest;
use crate::ops::sign::{bundle_referrer, subject_name};
use crate::progress::NoProgress;
use crate::reference::Reference;
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;
use crate::sign::statement::{Statement, Subject};
use crate::sign::{Signer, TrustPolicy, verify_bundle};
use crate::store::limits::ReferrerBudget;
use crate::store::{BlobSource, Target};

/// Largest ModelPack config blob read to fill in a card.
const MAX_CONFIG_BLOB: u64 = 4 << 20;
/// Largest bundle read from a referrer.
const MAX_BUNDLE_BLOB: u64 = 16 << 20;

/// What `attest` attached.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestReport {
    pub reference: String,
    pub digest: Digest,
    /// The model-card attestation referrer.
    pub card_attestation: Descriptor,
    /// The CycloneDX attestation referrer.
    pub cyclonedx_attestation: Descriptor,
    /// Fields modelsign filled in (and the author's values it replaced).
    pub filled: Vec<Filled>,
    pub signer: SignerInfo,
}

/// The one-line refusal for a card whose mandatory fields are absent, if any are.
pub fn check_mandatory(card: &Card, what: &str) -> Result<()> {
    let missing = card.missing_mandatory();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidCard {
        what: what.to_string(),
        reason: format!(
            "missing or empty mandatory fields: {} (blank and TODO values count as empty); nothing was attested",
            missing.join(", ")
        ),
    })
}

/// A statement about the manifest `desc` of the artifact `subject_name`.
fn statement(subject_name: &str, desc: &Descriptor, predicate_type: &str, predicate: Value) -> Statement {
    let subject = Subject {
        name: subject_name.to_string(),
        digest: [("sha256".to_string(), desc.digest.hex())].into_iter().collect(),
    };
    Statement::new(vec![subject], predicate_type, predicate)
}

/// The ModelPack config of `manifest`, parsed, if it has one that reads as JSON.
async fn model_config(target: &Target, manifest: &Manifest) -> Result<Option<Value>> {
    if manifest.config.media_type != modelpack::CONFIG_MEDIA_TYPE {
        return Ok(None);
    }
    let bytes = target.fetch_small_blob(&manifest.config, MAX_CONFIG_BLOB).await?;
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Attests `card` about the model `reference` names in `target`; `card_name` names the
/// card in errors. The statements name the artifact as `sign`'s do ([`subject_name`]).
/// Refuses, before reaching the target, a card without its mandatory fields.
pub async fn attest(
    target: &Target,
    reference: &Reference,
    mut card: Card,
    card_name: &str,
    signer: &Signer,
) -> Result<AttestReport> {
    check_mandatory(&card, card_name)?;
    let selector = reference.selector();
    let subject_name = &subject_name(reference);
    let (desc, manifest) = fetch_model_manifest(target, &selector).await?;
    let config = model_config(target, &manifest).await?;
    let filled = provenance::fill_in(&mut card, &manifest, config.as_ref(), signer, &[cyclonedx::PREDICATE_TYPE]);
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let card_statement = statement(subject_name, &desc, card::PREDICATE_TYPE, card.to_predicate());
    let bom = cyclonedx::bom(&card, subject_name, &desc.digest, &now);
    let bom_statement = statement(subject_name, &desc, cyclonedx::PREDICATE_TYPE, bom);
    let card_bundle = signer.sign_statement(&card_statement)?;
    let bom_bundle = signer.sign_statement(&bom_statement)?;
    let card_referrer = bundle_referrer(&desc, &card_bundle, card::PREDICATE_TYPE);
    let bom_referrer = bundle_referrer(&desc, &bom_bundle, cyclonedx::PREDICATE_TYPE);
    let card_source = [BlobSource::Bytes(&card_bundle)];
    let bom_source = [BlobSource::Bytes(&bom_bundle)];
    let mut pushed =
        attach_referrers(target, &[(&card_referrer, &card_source[..]), (&bom_referrer, &bom_source[..])], &NoProgress)
            .await?;
    let cyclonedx_attestation = pushed.pop().expect("two referrers pushed");
    let card_attestation = pushed.pop().expect("two referrers pushed");
    Ok(AttestReport {
        reference: reference.to_string(),
        digest: desc.digest,
        card_attestation,
        cyclonedx_attestation,
        filled,
        signer: SignerInfo::of_signer(signer),
    })
}

/// A model card a trusted signer attested about this very manifest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestedCard {
    /// The referrer that carries it.
    pub referrer: Digest,
    pub signer: SignerInfo,
    /// When the referrer says it was made (unsigned: informative only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(serialize_with = "card_as_json")]
    pub card: Card,
}

fn card_as_json<S: serde::Serializer>(card: &Card, s: S) -> std::result::Result<S::Ok, S::Error> {
    card.to_predicate().serialize(s)
}

/// A referrer that holds a model-card attestation but was not accepted, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedCard {
    pub referrer: Digest,
    pub reason: String,
}

/// The model cards attached to `desc`: those a trusted signer attested about exactly this
/// manifest, and the card attestations that were not accepted (untrusted signer, about
/// another artifact, malformed). Referrers that are not card attestations are skipped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttestedCards {
    pub cards: Vec<AttestedCard>,
    pub rejected: Vec<RejectedCard>,
}

impl AttestedCards {
    /// Why no card counts, if none does (one line).
    pub fn failure(&self) -> Option<String> {
        if !self.cards.is_empty() {
            return None;
        }
        Some(match self.rejected.as_slice() {
            [] => "the model has no model-card attestation".to_string(),
            rejected => {
                let reasons: Vec<String> = rejected.iter().map(|r| format!("{}: {}", r.referrer, r.reason)).collect();
                format!(
                    "{} model-card attestation(s) found, none both by a trusted signer and about this manifest ({})",
                    rejected.len(),
                    reasons.join("; ")
                )
            }
        })
    }
}

/// The trusted model cards of the model a reference names (`card show`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardsReport {
    pub reference: String,
    pub digest: Digest,
    #[serde(flatten)]
    pub found: AttestedCards,
}

/// Fetches the manifest `reference` names and finds its trusted model cards
/// ([`attested_cards`]). No card is not an error here: see [`AttestedCards::failure`].
pub async fn show_cards(target: &Target, reference: &Reference, policy: &TrustPolicy) -> Result<CardsReport> {
    let (desc, _) = fetch_model_manifest(target, &reference.selector()).await?;
    let found = attested_cards(target, &desc, policy).await?;
    Ok(CardsReport { reference: reference.to_string(), digest: desc.digest, found })
}

/// Reads one referrer: its manifest and, if it names this manifest as `subject` and holds
/// a Sigstore bundle, that bundle (else `None`). `Err` only when fetching failed.
async fn referrer_bundle(
    target: &Target,
    entry: &Descriptor,
    subject: &Descriptor,
) -> Result<Option<(Manifest, Vec<u8>)>> {
    let (_, bytes) = target.fetch_manifest(&entry.digest.to_string()).await?;
    let Ok(manifest) = Manifest::parse(&bytes, "referrer") else { return Ok(None) };
    if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
        return Ok(None);
    }
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_MEDIA_TYPE || l.media_type.starts_with("application/vnd.dev.sigstore.bundle"))
    else {
        return Ok(None);
    };
    let bundle = target.fetch_small_blob(layer, MAX_BUNDLE_BLOB).await?;
    Ok(Some((manifest, bundle)))
}

/// `text` with control characters escaped: reasons may quote what a referrer says, and
/// each must stay one harmless line on a terminal.
fn printable(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// Whether an unverified bundle claims to carry a model card (to tell a rejected card
/// from an unrelated referrer in the report; never used to accept anything).
fn claims_card(manifest: &Manifest, bundle: &[u8]) -> bool {
    use base64::Engine;
    if manifest.annotations.get(crate::ops::sign::ANNOTATION_PREDICATE_TYPE).map(String::as_str)
        == Some(card::PREDICATE_TYPE)
    {
        return true;
    }
    let payload = serde_json::from_slice::<Value>(bundle).ok().and_then(|v| {
        let p = v.pointer("/dsseEnvelope/payload")?.as_str()?.to_string();
        base64::engine::general_purpose::STANDARD.decode(p).ok()
    });
    payload
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .is_some_and(|s| s.get("predicateType").and_then(Value::as_str) == Some(card::PREDICATE_TYPE))
}

/// Finds the model cards attested about `desc` by signers `policy` trusts. A card counts
/// only if its bundle verifies with the policy, its predicate type is
/// [`card::PREDICATE_TYPE`], one of its subjects is this manifest's digest, and its
/// predicate is a valid card.
pub async fn attested_cards(target: &Target, desc: &Descriptor, policy: &TrustPolicy) -> Result<AttestedCards> {
    let mut found = AttestedCards::default();
    let mut budget = ReferrerBudget::new(desc);
    for entry in target.referrers(desc).await? {
        budget.fetch()?;
        let (manifest, bundle) = match referrer_bundle(target, &entry, desc).await {
            Ok(Some(read)) => read,
            Ok(None) => continue,
            Err(e) => {
                budget.failed(&e)?;
                continue;
            }
        };
        let is_card = claims_card(&manifest, &bundle);
        let reject = |reason: String| RejectedCard { referrer: entry.digest.clone(), reason: printable(&reason) };
        let verified = match verify_bundle(&bundle, policy) {
            Ok(v) => v,
            Err(e) => {
                if is_card {
                    found.rejected.push(reject(format!("not signed by a trusted signer: {e}")));
                }
                continue;
            }
        };
        let statement = verified.statement();
        if statement.predicate_type != card::PREDICATE_TYPE {
            continue;
        }
        let names_manifest = statement
            .subject
            .iter()
            .any(|s| s.digest.get("sha256").map(String::as_str) == Some(desc.digest.hex().as_str()));
        if !names_manifest {
            let other: Vec<String> = statement
                .subject
                .iter()
                .map(|s| format!("{:?}@sha256:{:?}", s.name, s.digest.get("sha256").map(String::as_str).unwrap_or("?")))
                .collect();
            found.rejected.push(reject(format!(
                "the card is about another artifact ({}), not {}",
                other.join(", "),
                desc.digest
            )));
            continue;
        }
        match Card::from_predicate(&statement.predicate) {
            Ok(card) => found.cards.push(AttestedCard {
                referrer: entry.digest.clone(),
                signer: SignerInfo::of_verified(verified.verified_by()),
                created: manifest.annotations.get(ANNOTATION_CREATED).cloned(),
                card,
            }),
            Err(e) => found.rejected.push(reject(e.to_string())),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(super::printable("a\nb\u{1b}[31mc"), "a\\nb\\u{1b}[31mc");
    }
}
