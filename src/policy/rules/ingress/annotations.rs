//! Reading `nginx.ingress.kubernetes.io/canary*` annotations exactly as ingress-nginx does.
//!
//! ingress-nginx never rejects a bad canary annotation: `internal/ingress/annotations/canary`
//! `Parse` swallows every parse or validation error and falls back to a default (`false`, `0`,
//! `100`, `""`), so a typo silently changes where traffic goes. This module reproduces those
//! parsers (Go `strconv.ParseBool`/`strconv.Atoi`, the `parser.ValidateRegex` character sets,
//! `normalizeString`) and reports every value whose effective meaning differs from what was
//! written, with what the controller will actually do.

use crate::policy::objects::Labels;

use crate::policy::finding::Severity;

/// `canary`: turns an Ingress into a canary.
pub const CANARY: &str = "canary";
/// `canary-weight`.
pub const WEIGHT: &str = "canary-weight";
/// `canary-weight-total`.
pub const WEIGHT_TOTAL: &str = "canary-weight-total";
/// `canary-by-header`.
pub const BY_HEADER: &str = "canary-by-header";
/// `canary-by-header-value`.
pub const BY_HEADER_VALUE: &str = "canary-by-header-value";
/// `canary-by-header-pattern`.
pub const BY_HEADER_PATTERN: &str = "canary-by-header-pattern";
/// `canary-by-cookie`.
pub const BY_COOKIE: &str = "canary-by-cookie";

/// Every annotation the canary parser reads (`CanaryAnnotations` in canary/main.go).
pub const CANARY_KEYS: [&str; 7] = [
    CANARY,
    WEIGHT,
    WEIGHT_TOTAL,
    BY_HEADER,
    BY_HEADER_VALUE,
    BY_HEADER_PATTERN,
    BY_COOKIE,
];

/// Annotations that still act on a canary: ingress-nginx builds the canary's own upstream from
/// them (`createUpstreams`: upstream-hash-by*, load-balance, service-upstream) and reads the
/// affinity canary behaviour from the canary Ingress in `mergeAlternativeBackend`. Everything
/// else configures locations or servers, which a canary never gets (`createServers` and
/// `getBackendServers` skip canary Ingresses and NoServer upstreams).
pub const HONOURED_ON_CANARY: [&str; 6] = [
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "load-balance",
    "service-upstream",
    "affinity-canary-behavior",
];

/// Go's `strconv.ParseBool`: the only spellings ingress-nginx accepts.
pub fn go_parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi` on a 64-bit platform: an optional sign and ASCII digits, nothing else
/// (no spaces, `%`, `.`, `_` or `0x`). Rust's `i64::from_str` accepts exactly that language.
pub fn go_atoi(value: &str) -> Option<i64> {
    value.parse::<i64>().ok()
}

/// `parser.normalizeString`: trims every line; an empty result counts as unset.
fn normalize(value: &str) -> String {
    value
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `alphaNumericChars` of parser/validators.go, the base of `BasicCharsRegex`.
fn is_basic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/' | ':')
}

/// `ValidateRegex(BasicCharsRegex, true)`: spaces are removed, then only basic characters.
fn valid_basic(value: &str) -> bool {
    value.chars().filter(|c| *c != ' ').all(is_basic_char)
}

/// `ValidateRegex(IsValidRegex, false)`: basic characters plus `^$[](){}*+?|&=\`.
fn valid_regex_chars(value: &str) -> bool {
    value
        .chars()
        .all(|c| is_basic_char(c) || "^$[](){}*+?|&=\\".contains(c))
}

/// The canary configuration ingress-nginx derives (`canary.Config`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CanaryConfig {
    /// `Enabled`.
    pub enabled: bool,
    /// `Weight` (0 when unset or invalid).
    pub weight: i64,
    /// `WeightTotal` as parsed (100 when unset or invalid).
    pub weight_total: i64,
    /// `Header` ("" when unset or rejected).
    pub header: String,
    /// `HeaderValue`.
    pub header_value: String,
    /// `HeaderPattern`.
    pub header_pattern: String,
    /// `Cookie`.
    pub cookie: String,
}

impl CanaryConfig {
    /// The total the Lua balancer divides by: `weightTotal` only counts above 100
    /// (`route_to_alternative_balancer` in rootfs/etc/nginx/lua/balancer.lua).
    pub fn effective_total(&self) -> i64 {
        self.weight_total.max(100)
    }

    /// Percentage of requests (without header or cookie decision) the canary receives:
    /// `math.random(total) <= weight`.
    pub fn weighted_percent(&self) -> f64 {
        let total = self.effective_total();
        let weight = self.weight.clamp(0, total);
        // Both are small integers here; the conversion is exact for anything a human writes.
        weight as f64 * 100.0 / total as f64
    }

    /// Whether any rule can send a request to the canary.
    pub fn routes_anything(&self) -> bool {
        self.weight > 0 || !self.header.is_empty() || !self.cookie.is_empty()
    }
}

/// A value whose effect differs from what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationIssue {
    /// Check name (a key of `checks` in the policy).
    pub check: &'static str,
    /// Deny or warn.
    pub severity: Severity,
    /// What was written, what ingress-nginx does, how to fix it.
    pub message: String,
}

/// Canary annotations of one Ingress, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedCanary {
    /// What the controller will use.
    pub config: CanaryConfig,
    /// Whether any canary-* annotation (other than `canary`) is present.
    pub has_canary_settings: bool,
    /// Problems found while reading.
    pub issues: Vec<AnnotationIssue>,
}

/// How messages name an annotation: without the `nginx.ingress.kubernetes.io/` prefix, so
/// warnings stay under the API server's length limit.
fn full(name: &str) -> &str {
    name
}

/// Reads the canary annotations (`nginx_annotations` keyed without the prefix) the way
/// `canary.Parse` does, collecting what ingress-nginx would silently change.
pub fn parse(annotations: &Labels) -> ParsedCanary {
    let mut issues = Vec::new();
    let get = |key: &str| annotations.get(key);
    let has_canary_settings = CANARY_KEYS[1..]
        .iter()
        .any(|key| get(key).is_some_and(|v| !v.trim().is_empty()));

    // GetBoolAnnotation: ValidateBool (strconv.ParseBool) then parseBool; any error → false.
    let enabled = match get(CANARY) {
        None => false,
        Some(raw) => match go_parse_bool(raw) {
            Some(value) => value,
            None => {
                issues.push(AnnotationIssue {
                    check: "canaryValue",
                    severity: Severity::Deny,
                    message: format!(
                        "{} is {raw:?}, which Go's strconv.ParseBool rejects, so ingress-nginx \
                         treats this Ingress as NOT a canary: its canary-* annotations are dropped \
                         and it serves its hosts/paths as a main Ingress; write \"true\"",
                        full(CANARY)
                    ),
                });
                false
            }
        },
    };

    // GetIntAnnotation: ValidateInt (strconv.Atoi); any error → 0.
    let weight = match get(WEIGHT) {
        None => 0,
        Some(raw) => match go_atoi(raw) {
            Some(value) => value,
            None => {
                if enabled {
                    let number = raw.trim().trim_end_matches('%');
                    let hint = if number.contains('.') {
                        "; for fractions raise canary-weight-total (e.g. weight 5 of total 1000 \
                         is 0.5%)"
                            .to_owned()
                    } else if go_atoi(number).is_some() {
                        format!("; write {number:?} (a share of canary-weight-total, default 100)")
                    } else {
                        "; write a base-10 integer".to_owned()
                    };
                    issues.push(AnnotationIssue {
                        check: "weight",
                        severity: Severity::Deny,
                        message: format!(
                            "ingress-nginx reads {} {raw:?} as 0 (it must be a base-10 integer for \
                             strconv.Atoi): this canary receives no weighted traffic{hint}",
                            full(WEIGHT)
                        ),
                    });
                }
                0
            }
        },
    };

    let (weight_total, total_written) = match get(WEIGHT_TOTAL) {
        None => (100, None),
        Some(raw) => match go_atoi(raw) {
            Some(value) => (value, Some(value)),
            None => {
                if enabled {
                    let share = CanaryConfig {
                        weight,
                        weight_total: 100,
                        ..CanaryConfig::default()
                    }
                    .weighted_percent();
                    issues.push(AnnotationIssue {
                        check: "weightTotal",
                        severity: Severity::Deny,
                        message: format!(
                            "ingress-nginx reads {} {raw:?} as 100 (it must be a base-10 integer): \
                             this canary receives {weight}/100 = {share:.1}% of requests instead of \
                             what you meant; write a plain integer",
                            full(WEIGHT_TOTAL)
                        ),
                    });
                }
                (100, None)
            }
        },
    };

    // GetStringAnnotation: validator on the raw value (empty values are not validated), then
    // normalizeString; a rejected or empty value becomes "".
    let string_value = |key: &str, valid: fn(&str) -> bool| -> (String, Option<String>) {
        match get(key) {
            None => (String::new(), None),
            Some(raw) if !raw.is_empty() && !valid(raw) => (String::new(), Some(raw.to_owned())),
            Some(raw) => (normalize(raw), None),
        }
    };
    let (header, header_rejected) = string_value(BY_HEADER, valid_basic);
    let (header_value, value_rejected) = string_value(BY_HEADER_VALUE, valid_basic);
    let (header_pattern, pattern_rejected) = string_value(BY_HEADER_PATTERN, valid_regex_chars);
    let (cookie, cookie_rejected) = string_value(BY_COOKIE, valid_basic);

    let config = CanaryConfig {
        enabled,
        weight,
        weight_total,
        header,
        header_value,
        header_pattern,
        cookie,
    };
    if enabled {
        weight_issues(&config, total_written, &mut issues);
        header_issues(
            &config,
            [header_rejected, value_rejected, pattern_rejected],
            &mut issues,
        );
        if let Some(raw) = cookie_rejected {
            issues.push(AnnotationIssue {
                check: "cookie",
                severity: Severity::Deny,
                message: format!(
                    "ingress-nginx rejects {} {raw:?} (only letters, digits and - . _ ~ / : are \
                     accepted) and treats it as unset: no request is routed by cookie",
                    full(BY_COOKIE)
                ),
            });
        }
    }
    ParsedCanary {
        config,
        has_canary_settings,
        issues,
    }
}

fn weight_issues(
    config: &CanaryConfig,
    total_written: Option<i64>,
    issues: &mut Vec<AnnotationIssue>,
) {
    let total = config.effective_total();
    if config.weight < 0 {
        issues.push(AnnotationIssue {
            check: "weight",
            severity: Severity::Deny,
            message: format!(
                "{} is {}: the balancer sends a request to the canary when math.random({total}) \
                 <= weight, which never holds, so this canary receives no weighted traffic; use 0 \
                 to {total}",
                full(WEIGHT),
                config.weight
            ),
        });
    } else if config.weight >= total {
        issues.push(AnnotationIssue {
            check: "weight",
            severity: Severity::Warn,
            message: format!(
                "{} {} is at least the total {total}: ingress-nginx sends every request to this \
                 canary (a full cut-over, not a split)",
                full(WEIGHT),
                config.weight
            ),
        });
    }
    if let Some(written) = total_written.filter(|t| *t < 100) {
        let meant = if written > 0 && config.weight >= 0 {
            format!(" (you may have meant {}/{written})", config.weight)
        } else {
            String::new()
        };
        issues.push(AnnotationIssue {
            check: "weightTotal",
            severity: Severity::Warn,
            message: format!(
                "{} {written} is below 100, which the Lua balancer ignores (it only uses totals \
                 above 100): this canary receives {}/100 = {:.1}% of requests{meant}",
                full(WEIGHT_TOTAL),
                config.weight.clamp(0, 100),
                config.weighted_percent()
            ),
        });
    }
}

fn header_issues(
    config: &CanaryConfig,
    [header_rejected, value_rejected, pattern_rejected]: [Option<String>; 3],
    issues: &mut Vec<AnnotationIssue>,
) {
    let mut deny = |message: String| {
        issues.push(AnnotationIssue {
            check: "header",
            severity: Severity::Deny,
            message,
        })
    };
    if let Some(raw) = header_rejected {
        deny(format!(
            "ingress-nginx rejects {} {raw:?} (only letters, digits and - . _ ~ / : are \
             accepted) and treats it as unset: no request is routed by header",
            full(BY_HEADER)
        ));
    }
    if let Some(raw) = &value_rejected {
        deny(format!(
            "ingress-nginx rejects {} {raw:?} (only letters, digits and - . _ ~ / : are \
             accepted) and treats it as unset: the header then only routes on the values \
             \"always\" and \"never\"",
            full(BY_HEADER_VALUE)
        ));
    }
    if let Some(raw) = &pattern_rejected {
        deny(format!(
            "ingress-nginx rejects {} {raw:?} (it allows only letters, digits, - . _ ~ / : and \
             ^$[](){{}}*+?|&=\\) and treats it as unset: the header then only routes on \
             \"always\" and \"never\"",
            full(BY_HEADER_PATTERN)
        ));
    }
    let has_value = !config.header_value.is_empty() || value_rejected.is_some();
    let has_pattern = !config.header_pattern.is_empty() || pattern_rejected.is_some();
    if config.header.is_empty() && (has_value || has_pattern) {
        let which = if has_value {
            BY_HEADER_VALUE
        } else {
            BY_HEADER_PATTERN
        };
        deny(format!(
            "{} is set without {}: the balancer looks for a header with an empty name, so no \
             request is ever routed by header; add {}",
            full(which),
            full(BY_HEADER),
            full(BY_HEADER)
        ));
    }
    if !config.header_pattern.is_empty() {
        if !config.header_value.is_empty() {
            issues.push(AnnotationIssue {
                check: "header",
                severity: Severity::Warn,
                message: format!(
                    "both {} and {} are set: ingress-nginx compares the value and never \
                     evaluates the pattern; remove one",
                    full(BY_HEADER_VALUE),
                    full(BY_HEADER_PATTERN)
                ),
            });
        } else if let Err(error) = regex::Regex::new(&config.header_pattern) {
            let text = error.to_string();
            // The balancer uses PCRE (ngx.re.match); the regex crate, like RE2, lacks
            // look-around and backreferences, which PCRE accepts.
            if text.contains("look-around") || text.contains("backreferences") {
                issues.push(AnnotationIssue {
                    check: "header",
                    severity: Severity::Warn,
                    message: format!(
                        "{} {:?} uses look-around or backreferences, which this checker cannot \
                         verify; ingress-nginx uses PCRE: if PCRE rejects it, requests with the \
                         header skip the canary",
                        full(BY_HEADER_PATTERN),
                        config.header_pattern
                    ),
                });
            } else {
                deny(format!(
                    "{} {:?} is not a valid regular expression: ngx.re.match fails for every \
                     request carrying header {:?}, and ingress-nginx then routes it to the main \
                     backend without looking at cookie or weight",
                    full(BY_HEADER_PATTERN),
                    config.header_pattern,
                    config.header
                ));
            }
        }
    }
    if let Some(message) = pasted_header(&config.header) {
        issues.push(AnnotationIssue {
            check: "header",
            severity: Severity::Deny,
            message,
        });
    } else if let Some(bad) = config.header.chars().find(|c| matches!(c, '/' | '.' | '~')) {
        issues.push(AnnotationIssue {
            check: "header",
            severity: Severity::Warn,
            message: format!(
                "{} {:?} contains {bad:?}: nginx drops request headers whose names are not \
                 letters, digits and '-' (ignore-invalid-headers, on by default), so no request \
                 can match it; use letters, digits and '-'",
                full(BY_HEADER),
                config.header
            ),
        });
    }
    if config.header.contains('_') {
        issues.push(AnnotationIssue {
            check: "header",
            severity: Severity::Warn,
            message: format!(
                "{} {:?} contains '_': nginx drops request headers with underscores unless \
                 underscores-in-headers is enabled, so no request can match it; use '-'",
                full(BY_HEADER),
                config.header
            ),
        });
    }
}

/// A `canary-by-header` value that holds a header line rather than a name (`X-Canary: always`):
/// ingress-nginx accepts it (spaces are not validated, ':' is a basic character) and the Lua
/// balancer then looks up the variable `http_X_Canary: always`, which no request has. ':' and
/// whitespace cannot appear in an HTTP field name, so this never matches. Returns the message.
fn pasted_header(header: &str) -> Option<String> {
    if !header.contains(':') && !header.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, value) = match header.split_once(':') {
        Some((name, value)) => (name.trim(), value.trim()),
        None => header
            .split_once(char::is_whitespace)
            .map_or((header.trim(), ""), |(n, v)| (n.trim(), v.trim())),
    };
    let fix = match value {
        "" => format!("write {}: {name:?}", full(BY_HEADER)),
        "always" | "never" => format!(
            "write {}: {name:?} (the values always and never need no {})",
            full(BY_HEADER),
            full(BY_HEADER_VALUE)
        ),
        _ => format!(
            "write {}: {name:?} and {}: {value:?}",
            full(BY_HEADER),
            full(BY_HEADER_VALUE)
        ),
    };
    Some(format!(
        "{} {header:?} is not a header name (':' and spaces cannot appear in one), so no request \
         is ever routed by header; {fix}",
        full(BY_HEADER)
    ))
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Annotation keys that look like a canary annotation but are not one ingress-nginx reads,
/// with the key they were probably meant to be.
pub fn misspelled_keys(annotations: &Labels) -> Vec<(String, &'static str)> {
    annotations
        .keys()
        .filter(|key| !CANARY_KEYS.contains(key))
        .filter_map(|key| {
            let (nearest, distance) = CANARY_KEYS
                .iter()
                .map(|known| (*known, edit_distance(key, known)))
                .min_by_key(|(_, distance)| *distance)?;
            let looks_like_canary = key.starts_with("canary") || key.starts_with("cannary");
            (looks_like_canary || distance <= 2).then(|| (key.to_owned(), nearest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    fn checks(parsed: &ParsedCanary) -> Vec<(&'static str, Severity)> {
        parsed
            .issues
            .iter()
            .map(|i| (i.check, i.severity))
            .collect()
    }

    #[test]
    fn canary_flag_follows_go_parse_bool() {
        for (value, enabled, issue) in [
            ("true", true, false),
            ("True", true, false),
            ("TRUE", true, false),
            ("1", true, false),
            ("t", true, false),
            ("false", false, false),
            ("yes", false, true),
            ("on", false, true),
            ("tRuE", false, true),
            (" true", false, true),
        ] {
            let parsed = parse(&annotations(&[("canary", value)]));
            assert_eq!(parsed.config.enabled, enabled, "{value:?}");
            assert_eq!(!parsed.issues.is_empty(), issue, "{value:?}");
        }
    }

    /// Annotations, expected weight, expected percentage, expected (check, severity) issues.
    type WeightCase = (
        &'static [(&'static str, &'static str)],
        i64,
        f64,
        &'static [(&'static str, Severity)],
    );

    #[test]
    fn weights_follow_atoi_and_the_lua_total() {
        let cases: &[WeightCase] = &[
            (&[("canary-weight", "10")], 10, 10.0, &[]),
            (&[("canary-weight", "+10")], 10, 10.0, &[]),
            (
                &[("canary-weight", "10%")],
                0,
                0.0,
                &[("weight", Severity::Deny)],
            ),
            (
                &[("canary-weight", "0.5")],
                0,
                0.0,
                &[("weight", Severity::Deny)],
            ),
            (
                &[("canary-weight", " 10")],
                0,
                0.0,
                &[("weight", Severity::Deny)],
            ),
            (
                &[("canary-weight", "-5")],
                -5,
                0.0,
                &[("weight", Severity::Deny)],
            ),
            (
                &[("canary-weight", "150")],
                150,
                100.0,
                &[("weight", Severity::Warn)],
            ),
            (
                &[("canary-weight", "5"), ("canary-weight-total", "1000")],
                5,
                0.5,
                &[],
            ),
            // A total below 100 is ignored: 5 of 100, not 5 of 10.
            (
                &[("canary-weight", "5"), ("canary-weight-total", "10")],
                5,
                5.0,
                &[("weightTotal", Severity::Warn)],
            ),
            (
                &[("canary-weight", "50"), ("canary-weight-total", "1k")],
                50,
                50.0,
                &[("weightTotal", Severity::Deny)],
            ),
        ];
        for (pairs, weight, percent, expected) in cases {
            let all = annotations(&[pairs, &[("canary", "true")][..]].concat());
            let parsed = parse(&all);
            assert_eq!(parsed.config.weight, *weight, "{pairs:?}");
            assert!(
                (parsed.config.weighted_percent() - percent).abs() < 1e-9,
                "{pairs:?}: {}",
                parsed.config.weighted_percent()
            );
            let expected: Vec<(&str, Severity)> = expected.to_vec();
            assert_eq!(checks(&parsed), expected, "{pairs:?}");
        }
    }

    #[test]
    fn header_rules_follow_the_validators_and_the_balancer() {
        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header-value", "beta"),
        ]));
        assert_eq!(checks(&parsed), vec![("header", Severity::Deny)]);

        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-pattern", "^(beta|qa"),
        ]));
        assert_eq!(checks(&parsed), vec![("header", Severity::Deny)]);

        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-pattern", "^(beta|qa)$"),
        ]));
        assert!(parsed.issues.is_empty());
        assert_eq!(parsed.config.header_pattern, "^(beta|qa)$");

        // ',' is outside IsValidRegex: the pattern is dropped.
        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-pattern", "a{1,2}"),
        ]));
        assert_eq!(parsed.config.header_pattern, "");
        assert_eq!(checks(&parsed), vec![("header", Severity::Deny)]);

        // '=' is outside BasicChars: the value is dropped.
        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-value", "a=b"),
        ]));
        assert_eq!(parsed.config.header_value, "");
        assert_eq!(checks(&parsed), vec![("header", Severity::Deny)]);

        let parsed = parse(&annotations(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-pattern", "^(?=beta)"),
        ]));
        assert_eq!(checks(&parsed), vec![("header", Severity::Warn)]);
    }

    #[test]
    fn a_header_line_pasted_as_the_name_never_matches() {
        for (header, expected, suggestion) in [
            (
                "X-Canary: always",
                Some(Severity::Deny),
                "(the values always and never",
            ),
            (
                "X-Canary: beta",
                Some(Severity::Deny),
                "canary-by-header-value: \"beta\"",
            ),
            (
                "X-Canary beta",
                Some(Severity::Deny),
                "canary-by-header-value",
            ),
            (
                "X-Canary:",
                Some(Severity::Deny),
                "write canary-by-header: \"X-Canary\"",
            ),
            ("X.Canary", Some(Severity::Warn), "ignore-invalid-headers"),
            ("X-Canary", None, ""),
        ] {
            let parsed = parse(&annotations(&[
                ("canary", "true"),
                ("canary-by-header", header),
            ]));
            let found: Vec<&AnnotationIssue> = parsed
                .issues
                .iter()
                .filter(|i| i.check == "header")
                .collect();
            assert_eq!(
                found.first().map(|i| i.severity),
                expected,
                "{header:?}: {found:?}"
            );
            if expected.is_some() {
                assert!(
                    found[0].message.contains(suggestion),
                    "{}",
                    found[0].message
                );
            }
        }
    }

    #[test]
    fn misspellings_suggest_the_nearest_key() {
        let found = misspelled_keys(&annotations(&[
            ("canary-weigth", "10"),
            ("canary-by-heder", "X"),
            ("canary-weight", "10"),
            ("rewrite-target", "/"),
        ]));
        assert_eq!(
            found,
            vec![
                ("canary-by-heder".to_owned(), BY_HEADER),
                ("canary-weigth".to_owned(), WEIGHT),
            ]
        );
    }
}
