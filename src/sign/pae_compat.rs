//! The DSSE pre-authentication encoding as `model_signing` 0.2 computed it, by mistake:
//! `"DSSEV1 28 application/vnd.in-toto+json <len> " + repr(payload)`, where `repr` is
//! Python's text form of a `bytes` object (`b'…'` with escapes). Signatures made by that
//! release sign these bytes, and `model_signing` 1.x still accepts them for keys and
//! certificates (with SHA-256 whatever the curve, for certificates); so does modelsign.
//! Never used for keyless Sigstore signatures.

use super::statement::PAYLOAD_TYPE;

/// The bytes `model_signing` 0.2 signed for `payload`.
pub(crate) fn pae_v0_2(payload: &[u8]) -> Vec<u8> {
    format!("DSSEV1 {} {PAYLOAD_TYPE} {} {}", PAYLOAD_TYPE.len(), payload.len(), python_bytes_repr(payload))
        .into_bytes()
}

/// Python's `repr(bytes)`: single quotes unless the bytes hold `'` and no `"`; `\\`, the
/// quote, `\t`, `\n`, `\r` escaped; other bytes outside printable ASCII as `\xhh`.
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        // Values from python3: repr(b"...").
        assert_eq!(python_bytes_repr(b"{\n  \"a\": 1\n}"), r#"b'{\n  "a": 1\n}'"#);
        assert_eq!(python_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(python_bytes_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(python_bytes_repr(b"\\\t\r\x00\x7f\xff"), r"b'\\\t\r\x00\x7f\xff'");
        assert_eq!(pae_v0_2(b"{}"), b"DSSEV1 28 application/vnd.in-toto+json 2 b'{}'".to_vec());
    }
}
