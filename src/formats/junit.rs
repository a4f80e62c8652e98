//! JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters): `<testsuites>` of
//! `<testsuite>`s of `<testcase>`s, each passed, failed, in error or skipped.

use std::fmt::Write as _;

/// How a test case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong.
    Passed,
    /// The thing tested is wrong (a denial, an expectation not met).
    Failure {
        /// One line.
        message: String,
        /// What kind of failure (`ingressCanary.missingMain`, `expectation`).
        kind: String,
        /// Everything else.
        detail: String,
    },
    /// The case could not be run (unreadable input).
    Error {
        /// One line.
        message: String,
        /// Everything else.
        detail: String,
    },
    /// Not looked at.
    Skipped {
        /// Why.
        message: String,
    },
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// What is tested (`Deployment shop/api`).
    pub name: String,
    /// Where it comes from (the file).
    pub classname: String,
    /// The file, for reporters that link to it.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// How it ended.
    pub outcome: Outcome,
    /// Extra output (warnings), one line each.
    pub output: Vec<String>,
}

/// One suite of cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// Its name (the file).
    pub name: String,
    /// Its cases.
    pub cases: Vec<Case>,
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

fn counts<'a>(cases: impl Iterator<Item = &'a Case>) -> Counts {
    let mut counts = Counts::default();
    for case in cases {
        counts.tests += 1;
        match case.outcome {
            Outcome::Passed => {}
            Outcome::Failure { .. } => counts.failures += 1,
            Outcome::Error { .. } => counts.errors += 1,
            Outcome::Skipped { .. } => counts.skipped += 1,
        }
    }
    counts
}

/// The XML document.
pub fn render(name: &str, suites: &[Suite]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = counts(suites.iter().flat_map(|s| s.cases.iter()));
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"0\">",
        escape(name),
        total.tests,
        total.failures,
        total.errors,
        total.skipped
    );
    for (id, suite) in suites.iter().enumerate() {
        let count = counts(suite.cases.iter());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" id=\"{id}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"0\">",
            escape(&suite.name),
            count.tests,
            count.failures,
            count.errors,
            count.skipped
        );
        for case in &suite.cases {
            let line = case
                .line
                .map(|line| format!(" line=\"{line}\""))
                .unwrap_or_default();
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"{line} time=\"0\"",
                escape(&case.name),
                escape(&case.classname),
                escape(&case.file)
            );
            if case.outcome == Outcome::Passed && case.output.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            match &case.outcome {
                Outcome::Passed => {}
                Outcome::Failure {
                    message,
                    kind,
                    detail,
                } => {
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(message),
                        escape(kind),
                        escape(detail)
                    );
                }
                Outcome::Error { message, detail } => {
                    let _ = writeln!(
                        out,
                        "      <error message=\"{}\" type=\"error\">{}</error>",
                        escape(message),
                        escape(detail)
                    );
                }
                Outcome::Skipped { message } => {
                    let _ = writeln!(out, "      <skipped message=\"{}\"/>", escape(message));
                }
            }
            if !case.output.is_empty() {
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    escape(&case.output.join("\n"))
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text for an XML attribute or element: markup escaped, characters XML 1.0 forbids dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_escapes() {
        let xml = render(
            "rollout-guard check",
            &[Suite {
                name: "a&b.yaml".into(),
                cases: vec![
                    Case {
                        name: "Service shop/web".into(),
                        classname: "a&b.yaml".into(),
                        file: "a&b.yaml".into(),
                        line: Some(3),
                        outcome: Outcome::Passed,
                        output: vec![],
                    },
                    Case {
                        name: "Ingress shop/<canary>".into(),
                        classname: "a&b.yaml".into(),
                        file: "a&b.yaml".into(),
                        line: None,
                        outcome: Outcome::Failure {
                            message: "denied \"x\"\u{1}".into(),
                            kind: "ingressCanary.missingMain".into(),
                            detail: "line one\nline two".into(),
                        },
                        output: vec!["warning".into()],
                    },
                ],
            }],
        );
        assert!(xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""));
        assert!(xml.contains("name=\"Ingress shop/&lt;canary&gt;\""));
        assert!(xml.contains("message=\"denied &quot;x&quot;\""));
        assert!(xml.contains("<system-out>warning</system-out>"));
        assert!(xml.contains(" line=\"3\""));
    }
}
