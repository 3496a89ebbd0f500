//! RFC 7512 `pkcs11:` URIs as cosign and `model_signing` take them: which module, token
//! and key, and where the PIN comes from. See the parent module for the accepted attributes.

use std::fmt;
use std::path::PathBuf;

use cryptoki::types::AuthPin;

use super::error;
use crate::sign::Result;

/// The URI scheme that marks a `--key` as a PKCS#11 key.
pub const SCHEME: &str = "pkcs11:";

/// Largest `pin-source` file read.
const MAX_PIN_FILE: u64 = 4096;

/// A parsed `pkcs11:` URI. Its `Debug` output never shows the PIN.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    /// The key's label (`CKA_LABEL`).
    pub object: Option<String>,
    /// The key's `CKA_ID` (raw bytes, percent-decoded).
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pin_value: Option<String>,
    pin_source: Option<PathBuf>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("slot_id", &self.slot_id)
            .field("object", &self.object)
            .field("id", &self.id.as_ref().map(hex::encode))
            .field("module_path", &self.module_path)
            .finish_non_exhaustive()
    }
}

/// Whether a `--key` value is a PKCS#11 URI rather than a file.
pub fn is_uri(key: &str) -> bool {
    key.len() >= SCHEME.len() && key[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
}

fn percent_decode(value: &str, name: &str) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| error("URI", format!("attribute `{name}` has a bad percent escape")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(value: Vec<u8>, name: &str) -> Result<String> {
    String::from_utf8(value).map_err(|_| error("URI", format!("attribute `{name}` is not UTF-8")))
}

impl Pkcs11Uri {
    /// Parses an RFC 7512 URI. A token (`token`, `serial` or `slot-id`) and a key
    /// (`object` or `id`) must be named; `module-path` must be absolute.
    pub fn parse(uri: &str) -> Result<Self> {
        if !is_uri(uri) {
            return Err(error("URI", "does not start with `pkcs11:`"));
        }
        let rest = &uri[SCHEME.len()..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Pkcs11Uri::default();
        let mut seen = std::collections::HashSet::new();
        let pairs = path
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| (p, true))
            .chain(query.split('&').filter(|p| !p.is_empty()).map(|p| (p, false)));
        for (pair, in_path) in pairs {
            // A malformed pair is not echoed: it may be a PIN.
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                error("URI", format!("a {} attribute is not NAME=VALUE", if in_path { "path" } else { "query" }))
            })?;
            if !seen.insert(name.to_string()) {
                return Err(error("URI", format!("attribute `{name}` is given twice")));
            }
            let raw = percent_decode(value, name)?;
            match (in_path, name) {
                (true, "token") => parsed.token = Some(text(raw, name)?),
                (true, "serial") => parsed.serial = Some(text(raw, name)?),
                (true, "manufacturer") => parsed.manufacturer = Some(text(raw, name)?),
                (true, "model") => parsed.model = Some(text(raw, name)?),
                (true, "slot-id") => {
                    parsed.slot_id = Some(
                        text(raw, name)?.parse().map_err(|_| error("URI", "slot-id is not a non-negative number"))?,
                    )
                }
                (true, "object") => parsed.object = Some(text(raw, name)?),
                (true, "id") => parsed.id = Some(raw),
                (true, "type") => {
                    if raw != b"private" {
                        return Err(error("URI", "type must be `private` (the key that signs)"));
                    }
                }
                (false, "module-path") => {
                    let path = PathBuf::from(text(raw, name)?);
                    if !path.is_absolute() {
                        return Err(error("URI", "module-path must be an absolute path"));
                    }
                    parsed.module_path = Some(path);
                }
                (false, "pin-value") => parsed.pin_value = Some(text(raw, name)?),
                (false, "pin-source") => {
                    let source = text(raw, name)?;
                    let path = PathBuf::from(source.strip_prefix("file:").unwrap_or(&source));
                    if !path.is_absolute() {
                        return Err(error("URI", "pin-source must be an absolute path or file: URI"));
                    }
                    parsed.pin_source = Some(path);
                }
                (_, other) => {
                    return Err(error(
                        "URI",
                        format!(
                            "unsupported {} attribute `{other}` (path: token, serial, manufacturer, model, slot-id, object, id, type; query: module-path, pin-value, pin-source)",
                            if in_path { "path" } else { "query" }
                        ),
                    ));
                }
            }
        }
        if parsed.pin_value.is_some() && parsed.pin_source.is_some() {
            return Err(error("URI", "give pin-value or pin-source, not both"));
        }
        if parsed.token.is_none() && parsed.serial.is_none() && parsed.slot_id.is_none() {
            return Err(error("URI", "name the token: token=LABEL, serial= or slot-id="));
        }
        if parsed.object.is_none() && parsed.id.is_none() {
            return Err(error("URI", "name the key: object=LABEL or id=%XX…"));
        }
        Ok(parsed)
    }

    /// The PIN the URI gives (`pin-value`, or the content of `pin-source`), if any.
    pub fn pin(&self) -> Result<Option<AuthPin>> {
        if let Some(pin) = &self.pin_value {
            return Ok(Some(AuthPin::from(pin.clone())));
        }
        let Some(path) = &self.pin_source else { return Ok(None) };
        let bytes = crate::local_fs::read_capped(path, MAX_PIN_FILE, "PIN file")
            .map_err(|e| error(format!("pin-source {}", path.display()), e.to_string()))?;
        let mut pin =
            String::from_utf8(bytes).map_err(|_| error(format!("pin-source {}", path.display()), "not UTF-8 text"))?;
        if pin.ends_with('\n') {
            pin.pop();
            if pin.ends_with('\r') {
                pin.pop();
            }
        }
        Ok(Some(AuthPin::from(pin)))
    }

    /// How messages name the key: token and object, never the query.
    pub fn describe(&self) -> String {
        let token = match (&self.token, &self.serial, self.slot_id) {
            (Some(t), _, _) => format!("token `{t}`"),
            (None, Some(s), _) => format!("token with serial `{s}`"),
            (None, None, Some(slot)) => format!("the token in slot {slot}"),
            (None, None, None) => "the token".into(),
        };
        let key = match (&self.object, &self.id) {
            (Some(o), _) => format!("key `{o}`"),
            (None, Some(id)) => format!("key with id {}", hex::encode(id)),
            (None, None) => "the key".into(),
        };
        format!("{key} on {token}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_what_cosign_and_model_signing_write() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=my%20token;object=release-key;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2634",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("my token"));
        assert_eq!(uri.object.as_deref(), Some("release-key"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(uri.module_path.as_deref(), Some(Path::new("/usr/lib/softhsm/libsofthsm2.so")));
        assert_eq!(uri.pin_value.as_deref(), Some("12&34"));
        assert!(!format!("{uri:?}").contains("12&34"));
        let uri = Pkcs11Uri::parse("pkcs11:slot-id=7;type=private;object=k?pin-source=file:/run/pin").unwrap();
        assert_eq!(uri.slot_id, Some(7));
        assert_eq!(uri.pin_source.as_deref(), Some(Path::new("/run/pin")));
        assert!(is_uri("PKCS11:token=a"));
        assert!(!is_uri("key.pem"));
    }

    #[test]
    fn refuses_bad_uris_without_echoing_the_pin() {
        for (bad, expect) in [
            ("pkcs11:object=k?module-path=/m.so", "name the token"),
            ("pkcs11:token=t?module-path=/m.so", "name the key"),
            ("pkcs11:token=t;object=k?module-path=relative.so", "absolute"),
            ("pkcs11:token=t;object=k;token=u", "twice"),
            ("pkcs11:token=t;object=k;x-vendor=1", "unsupported path attribute `x-vendor`"),
            ("pkcs11:token=t;object=k?pin-value=secret&pin-source=/p", "not both"),
            ("pkcs11:token=t;object=k?pin-value=se%zzret", "bad percent escape"),
            ("pkcs11:token=t;object=k;type=public", "type must be"),
            ("pkcs11:token=t;object=k;slot-id=-1", "slot-id"),
            ("file:key.pem", "pkcs11:"),
        ] {
            let err = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
            assert!(!err.contains("secret") && !err.contains("se%zz"), "{err}");
        }
    }
}
