//! Canonical JSON as TUF signs it (OLPC canonical JSON, as securesystemslib writes it):
//! object keys sorted by their UTF-8 bytes, no whitespace, only `"` and `\` escaped in
//! strings, integers only (a float, which TUF metadata never holds, is refused).

use serde_json::Value;

/// The canonical bytes of `value`, or why it has none (a non-integer number).
pub fn to_vec(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(format!("the number {n} is not an integer (canonical JSON has none)"));
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in s.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_compact_and_minimally_escaped() {
        let v: Value = serde_json::from_str(r#"{"b": [1, -2, true, null], "a": "x\"\\\n\u00e9", "B": {}}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            "{\"B\":{},\"a\":\"x\\\"\\\\\n\u{e9}\",\"b\":[1,-2,true,null]}"
        );
        assert!(to_vec(&serde_json::json!({"f": 1.5})).is_err());
    }
}
