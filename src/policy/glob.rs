//! Namespace globs: `*` matches any run of characters, `?` exactly one. Namespaces are DNS labels,
//! so nothing fancier is needed, and a hand-written matcher keeps the dependency list short.

/// True when `name` matches `pattern`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Every admission review asks which policy governs its namespace, once per pattern: the
    // common patterns (`*`, exact names, ASCII globs) are matched without allocating.
    if pattern == "*" {
        return true;
    }
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    if pattern.is_ascii() && name.is_ascii() {
        return match_units(pattern.as_bytes(), name.as_bytes(), b'*', b'?');
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    match_units(&p, &n, '*', '?')
}

/// Classic two-pointer match with backtracking to the last `*`, over bytes (ASCII) or chars.
fn match_units<T: PartialEq + Copy>(p: &[T], n: &[T], any_run: T, any_one: T) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == any_one || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == any_run {
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
    p[pi..].iter().all(|c| *c == any_run)
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
            ("", "", true),
            ("", "a", false),
            ("**", "", true),
            ("a*", "a", true),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("?", "", false),
            // Non-ASCII patterns or names match by character, not by byte.
            ("ä?", "äö", true),
            ("?", "ö", true),
            ("*ö", "aö", true),
            ("ä*", "a", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} vs {name}");
        }
    }
}
