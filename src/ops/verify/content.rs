//! The bytes of the requested components, streamed through SHA-256 and checked against
//! the sizes and digests the manifest pins. Nothing is stored.

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::ops::components::Component;
use crate::progress::Progress;
use crate::store::Target;
use crate::verifying_reader::VerifyingReader;

/// One component's bytes, checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCheck {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ComponentCheck {
    /// Why this component failed, as one line naming it (`None` if it passed).
    pub fn failure(&self) -> Option<String> {
        if self.ok {
            return None;
        }
        let error = self.error.as_deref().unwrap_or("failed");
        // Content errors already name the component.
        let name = format!("component `{}`", self.path);
        Some(if error.contains(&name) { error.to_string() } else { format!("{name}: {error}") })
    }
}

/// Streams each component's blob through SHA-256 without storing it, `concurrency` at a
/// time. The checks come back in the order of `components`.
pub async fn verify_components(
    target: &Target,
    components: &[Component],
    concurrency: usize,
    progress: &dyn Progress,
) -> Vec<ComponentCheck> {
    let checks = components.iter().map(|c| check_component(target, c, progress));
    futures_util::stream::iter(checks).buffered(concurrency.max(1)).collect().await
}

async fn check_component(target: &Target, c: &Component, progress: &dyn Progress) -> ComponentCheck {
    let d = &c.descriptor;
    progress.start(&d.digest, &c.path, d.size);
    let result: Result<()> = async {
        let reader = target.fetch_blob(d, 0).await?;
        let label = format!("component `{}`", c.path);
        let mut verified = VerifyingReader::new(reader, d.digest.clone(), d.size, label, Hasher::new());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = verified.read(&mut buf).await.map_err(|e| Error::io(&c.path, e))?;
            if n == 0 {
                return Ok(());
            }
            progress.advance(&d.digest, n as u64);
        }
    }
    .await;
    progress.finish(&d.digest);
    ComponentCheck {
        path: c.path.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    }
}
