//! Namespace globs: `*` matches any run of characters, `?` exactly one. Namespaces are DNS labels,
//! so nothing fancier is needed, and a hand-written matcher keeps the dependency list short.

/// True when `name` matches `pattern`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((star_p, star_n)) = star {
            pi = star_p + 1;
            ni = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// True when any pattern matches.
pub fn any_match<S: AsRef<str>>(patterns: &[S], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p.as_ref(), name))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn table() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("prod-*", "prod-eu", true),
            ("prod-*", "staging", false),
            ("team-?", "team-a", true),
            ("team-?", "team-ab", false),
            ("*-system", "kube-system", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} vs {name}");
        }
    }
}
