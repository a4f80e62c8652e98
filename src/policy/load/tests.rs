use super::*;
use crate::policy::config::RolloutPolicy;

fn source(name: &str, text: &str) -> Source {
    Source {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn errors_of(text: &str) -> Vec<String> {
    match parse_sources(&[source("p.yaml", text)]) {
        Ok(_) => Vec::new(),
        Err(PolicyErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

const HEADER: &str =
    "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: p\n";

#[test]
fn embedded_default_is_the_repository_file_and_valid() {
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.yaml"
    ))
    .unwrap();
    assert_eq!(EMBEDDED_DEFAULT, file);
    let set = parse_sources(&[source("default.yaml", &file)]).expect("default policy is valid");
    assert_eq!(embedded_default().policies(), set.policies());
    assert!(set.governing("default").is_some());
    for excluded in ["kube-system", "kube-public", "kube-node-lease"] {
        assert!(set.governing(excluded).is_none(), "{excluded}");
    }
}

/// The default file documents every parameter: parsing it gives exactly the code's defaults, and
/// every field the defaults serialise is written out in the file (not just implied).
#[test]
fn default_file_spells_out_every_default() {
    let set = parse_sources(&[source("default.yaml", EMBEDDED_DEFAULT)]).unwrap();
    let policy = &set.policies()[0];
    assert_eq!(policy.spec.rules, Rules::default());
    assert_eq!(policy.spec.r#match, Default::default());
    assert_eq!(policy.spec.opt_out, Default::default());

    let written: serde_yaml::Value = serde_yaml::from_str(EMBEDDED_DEFAULT).unwrap();
    let defaults = serde_yaml::to_value(Rules::default()).unwrap();
    fn leaves(value: &serde_yaml::Value, path: String, out: &mut Vec<String>) {
        match value.as_mapping() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let key = key.as_str().unwrap_or_default();
                    leaves(child, format!("{path}.{key}"), out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut paths = Vec::new();
    leaves(&defaults, "spec.rules".to_owned(), &mut paths);
    for path in paths {
        let mut node = &written;
        for key in path.split('.') {
            node = node
                .get(key)
                .unwrap_or_else(|| panic!("policies/default.yaml does not spell out {path}"));
        }
    }
    // Comments as one line of words, so a list may wrap across comment lines.
    let comments = EMBEDDED_DEFAULT
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix('#'))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    for rule in RULE_CATALOG {
        let checks = format!("Checks: {}.", rule.checks.join(", "));
        assert!(
            comments.contains(&checks),
            "policies/default.yaml should list the checks of {} as `{checks}`",
            rule.name
        );
    }
}

/// The catalog knows every rule section of `Rules` (a new section without a catalog line fails
/// here) and every rule the engine runs.
#[test]
fn catalog_covers_every_rule() {
    let sections = serde_json::to_value(Rules::default()).unwrap();
    let sections: Vec<&str> = sections
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut catalog = rule_names();
    catalog.sort_unstable();
    let mut sorted = sections.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, catalog,
        "every section of Rules needs a RuleInfo line in RULE_CATALOG (src/policy/load.rs)"
    );
    for rule in crate::policy::rules::deployment::RULES {
        assert!(
            rule_info(rule.name).is_some(),
            "{} not in RULE_CATALOG",
            rule.name
        );
    }
}

#[test]
fn a_rule_that_cannot_mutate_rejects_mode_mutate() {
    let rule = RuleInfo {
        name: "blueGreen",
        checks: &["selectorSwitch"],
        can_mutate: false,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.change_cause },
        validate: |_, _| {},
    };
    let mut settings = crate::policy::config::ChangeCauseRule::default();
    settings
        .checks
        .insert("selectorSwitch".into(), Mode::Mutate);
    settings.checks.insert("other".into(), Mode::Warn);
    let mut problems = Problems::default();
    validate_rule_settings(&rule, &settings, &mut problems);
    let found: Vec<String> = problems
        .found
        .iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("mode: rule blueGreen cannot change objects"));
    assert!(found[1].starts_with("checks.other: unknown check \"other\""));
    assert!(found[2].starts_with("checks.selectorSwitch: rule blueGreen cannot change"));
}

#[test]
fn errors_carry_file_line_and_field() {
    let text = format!("{HEADER}spec:\n  rules:\n    rollingUpdate:\n      mode: enforced\n");
    assert_eq!(
        errors_of(&text),
        ["p.yaml:8: spec.rules.rollingUpdate.mode: unknown variant \"enforced\", expected one of off, warn, mutate, reportOnly, enforce"]
    );
}

#[test]
fn structural_errors_are_all_reported() {
    let text = format!(
        "{HEADER}spec:\n  priority: high\n  rules:\n    versionLabel:\n      labelKey: v\n      digestChars: 300\n    rollingUpdate:\n      maxSurge: [1]\n"
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with("p.yaml:6: spec.priority: invalid type: string \"high\""));
    assert!(errors[1].starts_with(
        "p.yaml:9: spec.rules.versionLabel.labelKey: unknown field \"labelKey\", expected one of"
    ));
    assert!(errors[2].starts_with("p.yaml:10: spec.rules.versionLabel.digestChars: invalid value"));
    assert!(errors[3]
        .starts_with("p.yaml:12: spec.rules.rollingUpdate.maxSurge: expected a number of pods"));
}

#[test]
fn empty_sources_are_an_error() {
    for sources in [vec![], vec![source("a.yaml", "# nothing\n---\n")]] {
        let Err(PolicyErrors(errors)) = parse_sources(&sources) else {
            panic!("accepted no documents");
        };
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("no policy documents"));
    }
}

#[test]
fn names_are_unique_across_files() {
    let a = source("a.yaml", &format!("{HEADER}spec: {{}}\n"));
    let b = source("b.yaml", &format!("# other\n{HEADER}spec: {{}}\n"));
    let Err(PolicyErrors(errors)) = parse_sources(&[a, b]) else {
        panic!("duplicate names accepted");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "b.yaml:5: metadata.name: duplicate policy name \"p\" (also defined at a.yaml:4); names must be unique across the directory"
    );
}

#[test]
fn digest_ignores_the_directory() {
    let text = format!("{HEADER}spec: {{}}\n");
    assert_eq!(
        digest(&[source("policies/a.yaml", &text)]),
        digest(&[source("/etc/rollout-guard/a.yaml", &text)])
    );
    assert_ne!(
        digest(&[source("a.yaml", &text)]),
        digest(&[source("a.yaml", &format!("{text}# edit\n"))])
    );
}

#[test]
fn line_index_table() {
    let text = "\
apiVersion: v
metadata:
  name: x
  annotations: {a: b}
spec:
  description: |
    name: not a key
    rules: nor this
  match:
    namespaces:
    - team-a
    - \"prod-*\"
    excludeNamespaces:
      - kube-system
  rules:
    # comment: ignored
    'versionLabel':
      labelKeys: [a, b]
      container:
        name: app
    changeCause: {format: x}
  priority: 3
";
    let index = LineIndex::build(text, 10);
    let cases: &[(&[&str], Option<usize>, usize)] = &[
        (&["apiVersion"], None, 10),
        (&["metadata", "name"], None, 12),
        // Inside a flow mapping: the enclosing key's line.
        (&["metadata", "annotations", "a"], None, 13),
        (&["spec", "rules"], None, 24),
        (&["spec", "match", "namespaces"], Some(1), 21),
        (&["spec", "match", "namespaces"], Some(0), 20),
        (&["spec", "match", "excludeNamespaces"], Some(0), 23),
        (
            &["spec", "rules", "versionLabel", "container", "name"],
            None,
            29,
        ),
        (&["spec", "rules", "changeCause", "format"], None, 30),
        (&["spec", "priority"], None, 31),
        // Block scalar content is not mistaken for keys.
        (&["spec", "name"], None, 14),
        // Unknown paths fall back to the nearest known ancestor, then to the first line.
        (&["spec", "rules", "rollingUpdate", "mode"], None, 24),
        (&["nothing"], None, 10),
    ];
    for (keys, item, expected) in cases {
        let mut path = FieldPath::keys(keys);
        if let Some(item) = item {
            path = path.index(*item);
        }
        assert_eq!(index.line_of(&path), *expected, "{path}");
    }
}

#[test]
fn sequences_of_mappings_are_indexed() {
    let text = "items:\n- name: a\n  image: x\n- name: b\n  ports:\n    - 80\n    - 81\nafter: 1\n";
    let index = LineIndex::build(text, 1);
    let at = |path: FieldPath| index.line_of(&path);
    assert_eq!(at(FieldPath::keys(&["items"]).index(0).key("image")), 3);
    assert_eq!(at(FieldPath::keys(&["items"]).index(1).key("name")), 4);
    assert_eq!(
        at(FieldPath::keys(&["items"]).index(1).key("ports").index(1)),
        7
    );
    assert_eq!(at(FieldPath::keys(&["after"])), 8);
}

#[test]
fn split_key_table() {
    let cases = [
        ("key: value", Some(("key", "value"))),
        ("key:", Some(("key", ""))),
        ("\"a: b\": 1", Some(("a: b", "1"))),
        ("'q': x", Some(("q", "x"))),
        (
            "format: \"{change}: {user}\"",
            Some(("format", "\"{change}: {user}\"")),
        ),
        ("url: http://x", Some(("url", "http://x"))),
        ("http://x", None),
        ("{a: 1}", None),
        ("plain text", None),
    ];
    for (content, expected) in cases {
        let got = split_key(content);
        assert_eq!(
            got.as_ref().map(|(k, v)| (k.as_str(), *v)),
            expected,
            "{content}"
        );
    }
}

#[test]
fn qualified_names() {
    let valid = [
        "version",
        "app.kubernetes.io/version",
        "a",
        "A_b.c-D",
        "example.com/x1",
    ];
    let invalid = [
        "",
        "bad key",
        "-start",
        "end-",
        "UPPER.example/x",
        "a/",
        "/x",
        "a/b/c",
        &"x".repeat(64),
    ];
    for name in valid {
        assert!(check_qualified_name(name).is_ok(), "{name}");
    }
    for name in invalid {
        assert!(check_qualified_name(name).is_err(), "{name:?}");
    }
    let long_prefix = format!("{}/x", "a".repeat(254));
    assert!(check_qualified_name(&long_prefix).is_err());
}

#[test]
fn int_or_percent_table() {
    let cases = [
        (IntOrPercent::Int(0), Ok(0)),
        (IntOrPercent::Int(3), Ok(3)),
        (IntOrPercent::Int(-1), Err(())),
        (IntOrPercent::Percent("25%".into()), Ok(25)),
        (IntOrPercent::Percent("0%".into()), Ok(0)),
        (IntOrPercent::Percent("100%".into()), Ok(100)),
        (IntOrPercent::Percent("101%".into()), Err(())),
        (IntOrPercent::Percent("25".into()), Err(())),
        (IntOrPercent::Percent("%".into()), Err(())),
        (IntOrPercent::Percent("2.5%".into()), Err(())),
        (IntOrPercent::Percent("-5%".into()), Err(())),
        (
            IntOrPercent::Percent("99999999999999999999%".into()),
            Err(()),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            parse_int_or_percent(&value).map_err(|_| ()),
            expected,
            "{value:?}"
        );
    }
}

#[test]
fn serde_messages_are_tidied() {
    assert_eq!(
        tidy_serde_message("unknown variant `enforced`, expected one of `off`, `warn`"),
        "unknown variant \"enforced\", expected one of off, warn"
    );
    assert_eq!(
        tidy_serde_message("invalid type: integer `7`, expected a string"),
        "invalid type: integer 7, expected a string"
    );
}

#[test]
fn documents_start_where_they_start() {
    let docs = split_documents("a: 1\n---\n# c\nb: 2\n--- {c: 3}\n...\n");
    let starts: Vec<usize> = docs.iter().map(|(line, _)| *line).collect();
    assert_eq!(starts, [1, 3, 5, 7]);
    assert_eq!(docs[2].1, "{c: 3}\n");
}

#[test]
fn yaml_merge_keys_are_applied() {
    let text = format!(
        "{HEADER}spec:\n  rules:\n    rollingUpdate:\n      <<: {{mode: warn}}\n      maxSurge: 1\n"
    );
    let set = parse_sources(&[source("m.yaml", &text)]).unwrap();
    let policy: &RolloutPolicy = &set.policies()[0];
    assert_eq!(policy.spec.rules.rolling_update.mode, Mode::Warn);
}

#[test]
fn syntax_errors_point_at_file_lines() {
    let text = format!(
        "{HEADER}spec: {{}}\n---\n{HEADER}spec:\n  match:\n    namespaces: [a, b\n  rules: {{}}\n"
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    // Noticed on line 14 (`rules:`), the unclosed list began on line 13.
    assert!(
        errors[0].starts_with("p.yaml:14: invalid YAML: "),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("at line 14 column"), "{}", errors[0]);
    assert!(errors[0].contains("at line 13 column"), "{}", errors[0]);
}

/// serde_yaml follows YAML 1.2, where a bare `off` is a string; YAML 1.1 tools disagree, which
/// is why the docs quote it, but both spellings must load.
#[test]
fn bare_and_quoted_off_are_both_the_mode() {
    for off in ["off", "\"off\""] {
        let text = format!("{HEADER}spec:\n  rules:\n    changeCause:\n      mode: {off}\n");
        let set = parse_sources(&[source("o.yaml", &text)]).unwrap();
        assert_eq!(set.policies()[0].spec.rules.change_cause.mode, Mode::Off);
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: errors or a set, never a panic or a hang.
        #[test]
        fn on_any_text(text in "(?s).{0,400}") {
            let _ = parse_sources(&[source("x.yaml", &text)]);
        }

        /// The default file with a slice cut out or replaced: realistic broken edits.
        #[test]
        fn on_damaged_default(start in 0usize..EMBEDDED_DEFAULT.len(), len in 0usize..80, with in "[ -~\n]{0,12}") {
            let mut text = EMBEDDED_DEFAULT.to_owned();
            let start = (0..=start).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(start..end, &with);
            if let Err(PolicyErrors(errors)) = parse_sources(&[source("d.yaml", &text)]) {
                let lines = text.lines().count() + 1;
                for error in errors {
                    prop_assert!(error.line <= lines, "{error} beyond {lines} lines");
                }
            }
        }
    }
}

/// Found by the policy_loader fuzz target (fuzz/): with serde_yaml's multi-document iterator a
/// syntax error made the loader yield the same error forever until memory ran out. Now the
/// syntax error is reported once, on its line, and the next document is still read.
#[test]
fn syntax_error_is_reported_once_and_loading_ends() {
    let text = format!("{HEADER}spec:apiVe {{}}\n---\n{HEADER}spec: {{}}\n");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    // libyaml notices the missing `:` at the start of the following line.
    assert!(
        errors[0].starts_with("p.yaml:6: invalid YAML"),
        "{errors:?}"
    );
}

#[test]
fn ingress_canary_namespace_pairs_and_controllers_are_validated() {
    let text = format!(
        "{HEADER}spec:\n  rules:\n    ingressCanary:\n      controllers: [\"\"]\n      crossNamespace:\n        - canaryNamespaces: []\n          mainNamespaces: [Shop]\n"
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0]
        .starts_with("p.yaml:8: spec.rules.ingressCanary.controllers[0]: a controller name"));
    assert!(errors[1].starts_with(
        "p.yaml:10: spec.rules.ingressCanary.crossNamespace[0].canaryNamespaces: list at least one"
    ));
    assert!(errors[2].starts_with(
        "p.yaml:11: spec.rules.ingressCanary.crossNamespace[0].mainNamespaces[0]: invalid namespace pattern \"Shop\""
    ));
    let valid = format!(
        "{HEADER}spec:\n  rules:\n    ingressCanary:\n      crossNamespace:\n        - canaryNamespaces: [release-*]\n          mainNamespaces: [shop]\n"
    );
    let set = parse_sources(&[source("p.yaml", &valid)]).unwrap();
    let rule = &set.policies()[0].spec.rules.ingress_canary;
    assert!(rule.allows_cross_namespace("release-shop", "shop"));
    assert!(rule.allows_cross_namespace("shop", "shop"));
    assert!(!rule.allows_cross_namespace("other-team", "shop"));
    assert!(!rule.allows_cross_namespace("shop", "release-shop"));
}
