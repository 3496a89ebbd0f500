//! `WWW-Authenticate` challenges: `scheme` followed by comma-separated `key=value` or
//! `key="quoted, \"value\""` parameters, and the one modelsign answers (Bearer or Basic).

use std::collections::HashMap;

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses a `WWW-Authenticate` value into its challenges: `scheme` followed by
/// comma-separated `key=value` or `key="quoted, \"value\""` parameters.
pub(crate) fn parse_challenges(header: &str) -> Vec<(String, HashMap<String, String>)> {
    let bytes = header.as_bytes();
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut i = 0;
    let skip = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        while *i < bytes.len() && pred(bytes[*i]) {
            *i += 1;
        }
    };
    while i < bytes.len() {
        skip(&mut i, &|b| b == b' ' || b == b'\t' || b == b',');
        let start = i;
        skip(&mut i, &|b| !matches!(b, b' ' | b'\t' | b',' | b'='));
        if start == i {
            if i < bytes.len() {
                i += 1; // a stray '='
            }
            continue;
        }
        let token = &header[start..i];
        let mut j = i;
        skip(&mut j, &|b| b == b' ' || b == b'\t');
        let is_param = j < bytes.len() && bytes[j] == b'=' && !(j + 1 < bytes.len() && bytes[j + 1] == b'=');
        if !is_param {
            // A new challenge (or a token68 after the scheme, which carries nothing we use).
            if out.last().is_none_or(|(_, params)| {
                !params.is_empty() || token.eq_ignore_ascii_case("basic") || token.eq_ignore_ascii_case("bearer")
            }) {
                out.push((token.to_string(), HashMap::new()));
            }
            if i < bytes.len() && bytes[i] == b'=' {
                skip(&mut i, &|b| b == b'=');
            }
            continue;
        }
        i = j + 1;
        skip(&mut i, &|b| b == b' ' || b == b'\t');
        let value = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1; // closing quote
            v
        } else {
            let s = i;
            skip(&mut i, &|b| b != b',');
            header[s..i].trim().to_string()
        };
        if let Some((_, params)) = out.last_mut() {
            params.insert(token.to_ascii_lowercase(), value);
        }
    }
    out
}

/// The challenge modelsign can answer: the first Bearer or Basic one.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    parse_challenges(header).into_iter().find_map(|(scheme, mut params)| {
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.remove("realm").filter(|r| !r.is_empty())?;
            Some(Challenge::Bearer { realm, service: params.remove("service"), scope: params.remove("scope") })
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        // Unquoted values, spaces, odd case, escaped quotes and an error parameter.
        let c =
            parse_challenge(r#"bearer  realm=https://a.example/t , service = "s \"q\"", error="insufficient_scope""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://a.example/t".into(),
                service: Some("s \"q\"".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "a bearer challenge needs a realm");
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge(r#"Negotiate, Basic realm="x""#), Some(Challenge::Basic));
        let all = parse_challenges(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "Newauth");
        assert_eq!(all[0].1["title"], "Login to \"apps\"");
        assert_eq!(all[1].1["realm"], "simple");
        assert_eq!(parse_challenge("Negotiate abc=="), None);
        assert_eq!(parse_challenge(""), None);
    }
}
