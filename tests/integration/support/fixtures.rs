//! Small model folders and digests for tests.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a tiny model folder `<parent>/<name>`: `config.json`, `model.safetensors`
/// (`weights_len` pseudo-random bytes), `tokenizer.json`, `extra/notes.txt` and an empty
/// `extra/empty.txt`. Returns the folder.
pub fn write_tiny_model(parent: &Path, name: &str, weights_len: usize) -> PathBuf {
    let root = parent.join(name);
    std::fs::create_dir_all(root.join("extra")).expect("model dir");
    std::fs::write(root.join("config.json"), br#"{"architectures":["TinyModel"],"hidden_size":8}"#).unwrap();
    std::fs::write(root.join("model.safetensors"), pseudo_random_bytes(weights_len, 0x5eed)).unwrap();
    std::fs::write(root.join("tokenizer.json"), br#"{"version":"1.0","vocab":{"a":0,"b":1}}"#).unwrap();
    std::fs::write(root.join("extra/notes.txt"), b"tiny model for tests\n").unwrap();
    std::fs::write(root.join("extra/empty.txt"), b"").unwrap();
    root
}
