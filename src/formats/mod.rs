//! Report formats for CI: SARIF 2.1.0 (code-scanning annotations on the pull request) and JUnit
//! XML (test reports), shared by `check` and `test`. Both are written with serde_json and plain
//! string building: the shapes are small and fixed, and tests validate them with independent
//! tools (Microsoft's SARIF validator, junitparser).

pub mod junit;
pub mod sarif;

use std::path::Path;

/// A path as a SARIF artifact URI: relative paths stay relative (code scanning resolves them
/// against the repository root) with `/` separators; characters outside RFC 3986's unreserved
/// set and `/` are percent-encoded.
pub fn artifact_uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let text = text.strip_prefix("./").unwrap_or(&text);
    let mut uri = String::with_capacity(text.len());
    if path.is_absolute() {
        uri.push_str("file://");
    }
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(byte));
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris() {
        for (path, uri) in [
            (
                "examples/manifests/web-app.yaml",
                "examples/manifests/web-app.yaml",
            ),
            ("./a b/c#1.yaml", "a%20b/c%231.yaml"),
            ("/tmp/x.yaml", "file:///tmp/x.yaml"),
        ] {
            assert_eq!(artifact_uri(Path::new(path)), uri);
        }
    }
}
