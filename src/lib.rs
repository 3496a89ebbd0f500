//! modelsign: AI models as OCI artifacts, one layer per file, signed so that one
//! component can be verified without the rest. See `docs/ARCHITECTURE.md`.
//!
//! Each command of the `modelsign` binary is a function in [`ops`] that takes a
//! [`store::Target`] (a registry repository or an OCI layout folder) and returns a
//! serialisable report; the binary only parses arguments and prints. From Rust:
//!
//! ```no_run
//! use modelsign::ops::verify::Trust;
//! use modelsign::ops::{inspect, pull, push, sign};
//! use modelsign::progress::NoProgress;
//! use modelsign::reference::Reference;
//! use modelsign::sign::{PublicKey, Signer, SigningKey, TrustPolicy};
//! use modelsign::store::{Target, TargetOptions};
//!
//! # async fn example() -> modelsign::Result<()> {
//! let reference: Reference = "localhost:5000/models/tiny:v1".parse()?;
//! let options = TargetOptions { plain_http: true, ..TargetOptions::default() };
//! let target = Target::open(&reference, &options, true).await?;
//!
//! // Hash the folder, then upload what the registry lacks, then the manifest (and a
//! // `model.sig` found in the folder, as a signature referrer).
//! let tag = push::push_tag(&reference);
//! let packed = push::pack("./tiny".as_ref(), &push::PackOptions::default(), tag.as_deref(), &NoProgress)?;
//! let pushed = push::push(&target, &reference, &packed, 4, &NoProgress).await?;
//! println!("pushed {}", pushed.digest);
//!
//! // Sign it from its manifest alone, then look at it.
//! let pem = std::fs::read_to_string("signer.key").map_err(|e| modelsign::Error::io("signer.key", e))?;
//! let key = SigningKey::from_pem(&pem, None)?;
//! sign::sign(&target, &reference, &Signer::from_key(key)).await?;
//! let report = inspect::inspect(&target, &reference).await?;
//! println!("{}", serde_json::to_string_pretty(&report).expect("a report serialises"));
//!
//! // Pull it, verified: with trust, `pull` makes the trust decision first and writes
//! // nothing unless it passes (an error says why); each file is checked against its digest.
//! let pem = std::fs::read_to_string("signer.pub").map_err(|e| modelsign::Error::io("signer.pub", e))?;
//! let trust = Trust::Keys(TrustPolicy::new().trust_key(PublicKey::from_pem(&pem)?));
//! let pulled = pull::pull(&target, &reference, "./tiny-copy".as_ref(), &[], Some(&trust), 4, &NoProgress).await?;
//! assert!(pulled.verification.is_some_and(|v| v.decision.passed));
//! # Ok(())
//! # }
//! ```

pub mod artifact_kind;
pub mod atomic_file;
pub mod blocking;
pub mod card;
pub mod component_path;
pub mod digest;
pub mod digest_cache;
pub(crate) mod direct_write;
pub mod error;
pub mod folder;
pub mod local_fs;
pub mod modelpack;
pub(crate) mod net;
pub mod oci;
pub mod ops;
pub mod policy;
pub mod progress;
pub mod reference;
pub mod sign;
pub mod sigstore;
pub mod store;
pub mod tuf;
pub mod unpack;
pub mod verifying_reader;

pub use error::{Error, Result};
