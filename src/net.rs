//! What every HTTP client in the crate (registries, Sigstore services, TUF repositories)
//! needs alike: a transport error's cause in one short line a person can act on, and a
//! response body read up to a cap, so an endless or oversized answer costs at most the cap.

/// Longest cause text kept in a message.
const MAX_CAUSE_TEXT: usize = 200;

/// The innermost cause of an error, which is what a person can act on
/// ("Connection refused (os error 111)" rather than "error sending request"),
/// on one line and at most [`MAX_CAUSE_TEXT`] bytes.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = err;
    let mut last_useful = err.to_string();
    while let Some(next) = cause.source() {
        cause = next;
        let text = cause.to_string();
        if !text.is_empty() {
            last_useful = text;
        }
    }
    shorten(&one_line(&last_useful), MAX_CAUSE_TEXT)
}

/// [`root_cause`] of a request's failure, or "timed out" when a timeout ended it.
pub(crate) fn request_cause(err: &reqwest::Error) -> String {
    if err.is_timeout() { "timed out".into() } else { root_cause(err) }
}

/// `s` with every run of whitespace (newlines included) made one space.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Why [`read_capped`] stopped.
pub(crate) enum ReadFailure {
    /// The body (or its announced `Content-Length`) is longer than the cap.
    TooLarge,
    /// The transfer failed; its [`request_cause`].
    Transport(String),
}

/// Reads `response`'s body whole, refusing it as soon as it is known to exceed `cap` bytes.
pub(crate) async fn read_capped(response: &mut reqwest::Response, cap: u64) -> Result<Vec<u8>, ReadFailure> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(ReadFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ReadFailure::Transport(request_cause(&e)))? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(ReadFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_one_short_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        assert_eq!(shorten("héllo", 2), "h…");
        assert_eq!(shorten("abc", 3), "abc");
        let long = std::io::Error::other("x\n".repeat(500));
        let cause = root_cause(&long);
        assert!(!cause.contains('\n') && cause.len() <= MAX_CAUSE_TEXT + '…'.len_utf8(), "{cause}");
    }
}
