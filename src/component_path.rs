//! Which relative paths a model component may have: the check every writer of a component
//! or an archive entry makes before it touches the file system (`ops::components` for
//! layers, `unpack` for entries inside archive layers). A leaf below both, so that neither
//! imports the other.

/// The folder, under a pull's output folder, that holds downloads in progress: no
/// component may be written inside it.
pub const PARTIAL_DIR: &str = ".modelsign-partial";

/// The longest file or folder name most file systems take (`NAME_MAX`), in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a relative path may not be written, if it may not.
pub fn unsafe_path_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("empty path")
    } else if path.contains('\0') {
        Some("contains a NUL byte")
    } else if path.contains('\\') {
        Some("contains a backslash")
    } else if path.starts_with('/') {
        Some("absolute path")
    } else if path.len() >= 2 && path.as_bytes()[1] == b':' && path.as_bytes()[0].is_ascii_alphabetic() {
        Some("drive-letter path")
    } else if path.split('/').any(|c| c == "..") {
        Some("contains `..`")
    } else if path.split('/').any(|c| c.is_empty() || c == ".") {
        Some("empty or `.` path component")
    } else if path.split('/').next() == Some(PARTIAL_DIR) {
        Some("inside the resume folder `.modelsign-partial`, where pull keeps downloads in progress")
    } else if path.split('/').any(|c| c.len() > MAX_NAME_BYTES) {
        Some("a file or folder name longer than 255 bytes")
    } else {
        None
    }
}
