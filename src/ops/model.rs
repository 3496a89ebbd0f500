//! What every command that reads a model shares: fetching the model manifest a reference
//! names, and the facts signing and verification both compute from its components (the
//! OMS resources and root digest, the manifest statement's predicate type, and whether a
//! signed OMS statement lists exactly those components). Sign, verify, pull and inspect
//! take these from here so that neither has to reach into the other.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::folder;
use crate::oci::{Descriptor, Manifest};
use crate::ops::components::Component;
use crate::sign::oms::{self, Resource};
use crate::store::Target;

/// Predicate type of the manifest statement.
pub const MANIFEST_PREDICATE_TYPE: &str = "https://modelsign.dev/oci-manifest/v1";

/// Fetches the manifest a reference names; refuses an index (a model is one manifest).
pub async fn fetch_model_manifest(target: &Target, selector: &str) -> Result<(Descriptor, Manifest)> {
    let (desc, bytes) = target.fetch_manifest(selector).await?;
    if desc.is_index() {
        return Err(Error::NotAModel { selector: selector.to_string(), target: target.describe(), note: "" });
    }
    let manifest = Manifest::parse(&bytes, &format!("manifest {} in {}", desc.digest, target.describe()))?;
    Ok((desc, manifest))
}

/// The OMS resources of a manifest's components, in `model_signing` order.
pub fn oms_resources(components: &[Component]) -> Vec<Resource> {
    let mut resources: Vec<Resource> =
        components.iter().map(|c| Resource { name: c.path.clone(), digest: c.descriptor.digest.clone() }).collect();
    resources.sort_by(|a, b| folder::component_order(&a.name, &b.name));
    resources
}

/// The OMS root digest of a manifest's components (what the OMS statement's subject holds).
pub fn oms_root_digest(components: &[Component]) -> Digest {
    oms::root_digest(&oms_resources(components))
}

/// Whether an OMS statement lists exactly the components: same paths and digests, none
/// extra, missing or repeated (a single-file statement matches a single component).
pub fn oms_matches_components(signed: &oms::Manifest, components: &[Component]) -> std::result::Result<(), String> {
    if signed.is_single_file() && components.len() == 1 {
        let c = &components[0];
        return if signed.resources[0].digest == c.descriptor.digest {
            Ok(())
        } else {
            Err(format!(
                "component `{}` is {}, the signature says {}",
                c.path, c.descriptor.digest, signed.resources[0].digest
            ))
        };
    }
    let mut expected: BTreeMap<&str, &Digest> = BTreeMap::new();
    for c in components {
        expected.insert(&c.path, &c.descriptor.digest);
    }
    for r in &signed.resources {
        match expected.remove(r.name.as_str()) {
            None => return Err(format!("signed file `{}` is not a component of the manifest", r.name)),
            Some(d) if *d != r.digest => {
                return Err(format!("component `{}` is {d}, the signature says {}", r.name, r.digest));
            }
            Some(_) => {}
        }
    }
    match expected.into_iter().next() {
        Some((path, _)) => Err(format!("component `{path}` is not covered by the signature")),
        None => Ok(()),
    }
}
