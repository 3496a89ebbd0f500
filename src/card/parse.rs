//! Reading a model card file: JSON, YAML, or a Markdown file (a Hugging Face `README.md`)
//! whose YAML front matter (between a first line `---` and the next `---`) holds the fields.
//!
//! YAML goes through `serde-saphyr` with its default limits (a budget on events, aliases
//! and depth, duplicate keys refused); errors name the line and column.

use std::path::Path;

use serde_json::Value;

/// Largest card file read.
pub const MAX_CARD_FILE: u64 = 1 << 20;

/// How a card file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Json,
    Yaml,
    /// Markdown with YAML front matter.
    FrontMatter,
}

impl Syntax {
    /// By file extension: `.json`, `.md`/`.markdown`, else YAML.
    pub fn of_path(path: &Path) -> Syntax {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Syntax::Json,
            Some("md" | "markdown") => Syntax::FrontMatter,
            _ => Syntax::Yaml,
        }
    }
}

/// Reads at most [`MAX_CARD_FILE`] bytes of `path` as UTF-8 text (a FIFO or device is
/// refused without blocking on it).
pub fn read_text(path: &Path) -> crate::Result<String> {
    let bytes = crate::local_fs::read_capped_with(path, MAX_CARD_FILE, "model card", || crate::Error::LocalFile {
        path: path.to_path_buf(),
        reason: format!("a model card may be at most {MAX_CARD_FILE} bytes"),
    })?;
    String::from_utf8(bytes).map_err(|_| crate::Error::LocalFile {
        path: path.to_path_buf(),
        reason: "a model card must be UTF-8 text".into(),
    })
}

/// Parses card text. `Err` is one line (with a line and column for YAML).
pub fn parse(text: &str, syntax: Syntax) -> Result<Value, String> {
    match syntax {
        Syntax::Json => serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}")),
        Syntax::Yaml => yaml(text, 0),
        Syntax::FrontMatter => {
            let (yaml_text, _) = front_matter(text).ok_or_else(|| {
                "no YAML front matter (a first line `---`, the fields, then a line `---`)".to_string()
            })?;
            // The front matter starts on the second line.
            yaml(yaml_text, 1)
        }
    }
}

/// Parses YAML into JSON values; `line_offset` is added to line numbers in errors.
pub fn yaml(text: &str, line_offset: usize) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let message = one_line(&e.to_string());
        match e.location() {
            Some(loc) => {
                format!("YAML error at line {}, column {}: {message}", loc.line() as usize + line_offset, loc.column())
            }
            None => format!("YAML error: {message}"),
        }
    })
}

/// The parser's message on one line, without its own position (line numbers are given
/// relative to the whole file instead) or advice about the parser's options.
fn one_line(s: &str) -> String {
    let mut s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((message, position)) = s.rsplit_once(" at line ")
        && position.split_once(", column ").is_some_and(|(l, c)| l.parse::<u64>().is_ok() && c.parse::<u64>().is_ok())
    {
        s = message.to_string();
    }
    s.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

/// The front matter of a Markdown text (without its `---` lines) and the text after it.
pub fn front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text.strip_prefix("---").filter(|r| r.starts_with('\n') || r.starts_with("\r\n"))?;
    let body_start = text.len() - rest.len() + if rest.starts_with("\r\n") { 2 } else { 1 };
    let body = &text[body_start..];
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&body[..offset], &body[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn front_matter_is_found() {
        let md = "---\nname: x\nlicense: mit\n---\n# Model\n\n---\nmore\n";
        assert_eq!(front_matter(md), Some(("name: x\nlicense: mit\n", "# Model\n\n---\nmore\n")));
        assert_eq!(parse(md, Syntax::FrontMatter).unwrap(), json!({"name": "x", "license": "mit"}));
        assert_eq!(front_matter("---\r\na: 1\r\n---\r\n"), Some(("a: 1\r\n", "")));
        assert!(front_matter("# no front matter\n---\na: 1\n---\n").is_none());
        assert!(front_matter("---\na: 1\n").is_none(), "unterminated");
        assert!(parse("# Model\n", Syntax::FrontMatter).unwrap_err().contains("no YAML front matter"));
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let e = parse("name: a\nname: b\n", Syntax::Yaml).unwrap_err();
        assert_eq!(e, "YAML error at line 2, column 1: duplicate mapping key: name");
        let e = parse("---\nname: a\nbad: [\n---\n", Syntax::FrontMatter).unwrap_err();
        assert!(e.starts_with("YAML error at line 3, column 6: unclosed bracket"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(parse("{\"a\": }", Syntax::Json).unwrap_err().starts_with("not valid JSON"));
    }

    #[test]
    fn yaml_values() {
        let v = parse("name: tiny\nversion: '1.10'\nsecurity:\n  sensitive-data: none\nlist: [a, 1]\n", Syntax::Yaml)
            .unwrap();
        assert_eq!(
            v,
            json!({"name": "tiny", "version": "1.10", "security": {"sensitive-data": "none"}, "list": ["a", 1]})
        );
        assert_eq!(parse("", Syntax::Yaml).unwrap(), json!({}));
    }
}
