//! Keyless signing with Sigstore: the network half that `sign/` (pure) leaves out.
//!
//! Flow for one signing run ([`keyless_signer`]): check the OIDC identity token (audience
//! `sigstore`, not expired) → a fresh ephemeral P-256 key → Fulcio certifies it for the
//! token's identity ([`fulcio`]) → a [`Signer`] whose every bundle is completed by
//! [`witness::KeylessWitness`]: Rekor entry ([`rekor`], v1 or v2), RFC 3161 timestamp
//! ([`tsa`]) when the signing config lists a TSA, and a verification of the finished
//! bundle against the trusted root before it leaves. The ephemeral key lives in memory
//! only and is dropped with the signer.
//!
//! Services come from a Sigstore signing config ([`signing_config`]): the public-good
//! instance's, built in, or a private one. HTTP follows the registry client's rules
//! ([`http`]): timeouts, capped responses, no redirects, HTTPS except to loopback, and the
//! token goes to Fulcio only.

pub mod fulcio;
pub mod http;
pub mod rekor;
pub mod signing_config;
pub mod token;
pub mod tsa;
pub mod witness;

use std::sync::Arc;
use std::time::Duration;

pub use signing_config::{RekorVersion, Services};
pub use token::{GithubActions, IdentityToken, SIGSTORE_AUDIENCE};
pub use witness::KeylessWitness;

use crate::sign::bundle::HintStyle;
use crate::sign::keyless::TrustedRoot;
use crate::sign::keys::ExternalKey;
use crate::sign::{Algorithm, Error, PublicKey, Signer, SigningKey};

/// The ephemeral key, shared by the signer (which signs with it) and the witness (which
/// proves its possession to Fulcio again if the certificate runs out).
struct Ephemeral(Arc<SigningKey>);

impl ExternalKey for Ephemeral {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }

    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }

    fn describe(&self) -> &str {
        "the ephemeral keyless signing key"
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.sign(message)
    }
}

/// Certifies a fresh key for `token`'s identity with the configured Fulcio, and returns a
/// signer whose bundles are logged, timestamped and verified against `root` (and the
/// witness, which reports what verified). The certificate is asked for now, so that a
/// token Fulcio refuses fails before any work; it is renewed (same key, same token) if it
/// would run out before a bundle is logged (hashing a large folder can outlast it).
pub async fn keyless_signer(
    token: &IdentityToken,
    services: &Services,
    root: TrustedRoot,
    timeout: Duration,
) -> Result<(Signer, Arc<KeylessWitness>), Error> {
    token.check_usable(SIGSTORE_AUDIENCE)?;
    let fulcio = http::Service::new("Fulcio", &services.fulcio)?;
    let key = Arc::new(SigningKey::generate(Algorithm::P256)?);
    // The witness checks the other URLs before Fulcio is asked: a bad config costs no certificate.
    let mut witness = KeylessWitness::new(key.clone(), token.clone(), fulcio, services, root, timeout)?;
    witness.certify().await?;
    let witness = Arc::new(witness);
    let signer = Signer::from_key(SigningKey::from_external(Box::new(Ephemeral(key))))
        .hint_style(HintStyle::None)
        .with_witness(witness.clone());
    Ok((signer, witness))
}
