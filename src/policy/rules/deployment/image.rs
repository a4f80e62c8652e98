//! Image references and the label-safe version derived from them.
//!
//! A reference is `[registry[:port]/]repository[:tag][@algorithm:hex]`. The tag is whatever
//! follows the last `:` of the part before `@`, but only when that `:` comes after the last `/`:
//! in `localhost:5000/app` the `:5000` is the registry's port, not a tag.

/// The parts of an image reference the version label needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry and repository, without tag or digest.
    pub repository: &'a str,
    /// The tag, if any.
    pub tag: Option<&'a str>,
    /// The digest (`sha256:...`), if any.
    pub digest: Option<&'a str>,
}

/// Splits an image reference into repository, tag and digest. Never fails: an odd reference
/// simply has no tag or digest.
pub fn parse(image: &str) -> ImageRef<'_> {
    let image = image.trim();
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) if !digest.is_empty() => (name, Some(digest)),
        Some((name, _)) => (name, None),
        None => (image, None),
    };
    let last_slash = name.rfind('/');
    let tag_colon = name
        .rfind(':')
        .filter(|colon| last_slash.is_none_or(|slash| *colon > slash));
    match tag_colon {
        Some(colon) if colon + 1 < name.len() => ImageRef {
            repository: &name[..colon],
            tag: Some(&name[colon + 1..]),
            digest,
        },
        Some(colon) => ImageRef {
            repository: &name[..colon],
            tag: None,
            digest,
        },
        None => ImageRef {
            repository: name,
            tag: None,
            digest,
        },
    }
}

/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// Turns any text into a valid label value: `[A-Za-z0-9._-]` only (others become `-`), at most
/// 63 characters, alphanumeric at both ends. `None` when nothing valid is left.
pub fn sanitize_label_value(raw: &str) -> Option<String> {
    let replaced: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Trim before and after cutting: the cut may leave a `-` or `.` at the end.
    let trimmed = replaced.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut: String = trimmed.chars().take(MAX_LABEL_VALUE).collect();
    let cut = cut.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// The version an image reference carries, as a label value: the tag when there is one
/// (`repo:1.2@sha256:...` → `1.2`), else a short digest (`sha256-<first digest_chars hex>`),
/// else `None` (the image floats: no version can be derived).
pub fn version(image: &str, digest_chars: usize) -> Option<String> {
    let reference = parse(image);
    if let Some(tag) = reference.tag {
        return sanitize_label_value(tag);
    }
    let digest = reference.digest?;
    let (algorithm, hex) = digest.split_once(':')?;
    let short: String = hex.chars().take(digest_chars.max(1)).collect();
    sanitize_label_value(&format!("{algorithm}-{short}"))
}

/// Whether a tag names a version. A tag with no digit does not (`latest`, `alpine`, `stable`,
/// `main`, `edge`, `lts`, `master`: they move with every push, so a label naming them says
/// nothing about what runs); nor does one matching a pattern of the policy's `nonVersionTags`
/// (globs, compared case-insensitively, e.g. `nightly-*`).
pub fn is_version_tag<S: AsRef<str>>(tag: &str, non_version: &[S]) -> bool {
    let lower = tag.to_ascii_lowercase();
    tag.chars().any(|c| c.is_ascii_digit())
        && !non_version
            .iter()
            .any(|p| crate::policy::glob::glob_match(&p.as_ref().to_ascii_lowercase(), &lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            ("nginx", "nginx", None, None),
            ("nginx:1.25.3", "nginx", Some("1.25.3"), None),
            (
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx",
                Some("1.25"),
                None,
            ),
            (
                "localhost:5000/app:1.2",
                "localhost:5000/app",
                Some("1.2"),
                None,
            ),
            ("localhost:5000/app", "localhost:5000/app", None, None),
            (
                "registry:5000/team/app",
                "registry:5000/team/app",
                None,
                None,
            ),
            (
                "ghcr.io/org/app:v2@sha256:0123456789abcdef",
                "ghcr.io/org/app",
                Some("v2"),
                Some("sha256:0123456789abcdef"),
            ),
            (
                "ghcr.io/org/app@sha256:0123456789abcdef",
                "ghcr.io/org/app",
                None,
                Some("sha256:0123456789abcdef"),
            ),
            (
                "localhost:5000/app@sha256:ab",
                "localhost:5000/app",
                None,
                Some("sha256:ab"),
            ),
            ("app:", "app", None, None),
            ("", "", None, None),
        ];
        for (image, repository, tag, digest) in cases {
            let got = parse(image);
            assert_eq!(got.repository, *repository, "{image}");
            assert_eq!(got.tag, *tag, "{image}");
            assert_eq!(got.digest, *digest, "{image}");
        }
    }

    #[test]
    fn derives_versions() {
        let digest = "sha256:8f1d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
        let cases: &[(String, usize, Option<&str>)] = &[
            ("nginx:1.25.3".into(), 12, Some("1.25.3")),
            (format!("nginx:1.25.3@{digest}"), 12, Some("1.25.3")),
            (format!("nginx@{digest}"), 12, Some("sha256-8f1d4e5a6b7c")),
            (format!("nginx@{digest}"), 7, Some("sha256-8f1d4e5")),
            ("localhost:5000/app:1.2".into(), 12, Some("1.2")),
            ("localhost:5000/app".into(), 12, None),
            ("nginx".into(), 12, None),
            ("app:_build_".into(), 12, Some("build")),
        ];
        for (image, chars, expected) in cases {
            assert_eq!(version(image, *chars).as_deref(), *expected, "{image}");
        }
    }

    #[test]
    fn sanitizes_label_values() {
        let long = "a".repeat(70);
        let cut_on_dash = format!("{}-{}", "b".repeat(62), "c".repeat(5));
        let cases: &[(&str, Option<&str>)] = &[
            ("1.25.3", Some("1.25.3")),
            ("v1+build.7", Some("v1-build.7")),
            ("-rc.1-", Some("rc.1")),
            ("__", None),
            ("", None),
            ("Ünïcode", Some("n-code")),
            (&long, Some(&long[..63])),
            (&cut_on_dash, Some(&cut_on_dash[..62])),
        ];
        for (raw, expected) in cases {
            let got = sanitize_label_value(raw);
            assert_eq!(got.as_deref(), *expected, "{raw}");
            if let Some(value) = got {
                assert!(value.len() <= MAX_LABEL_VALUE);
            }
        }
    }
}
