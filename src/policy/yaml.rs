//! Multi-document YAML as both readers of it (policy files and manifests) need it: split into
//! documents with the file line each starts on, and parser messages shifted to file lines.
//!
//! serde_yaml's own multi-document reader repeats a syntax error forever, and its line numbers
//! count from the document it was given, so documents are split here, one parse each.

/// `(first line, text)` of each `---`-separated document. A document marker at column 0 ends a
/// document in YAML whatever precedes it, so splitting by lines agrees with the parser.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator || line == "..." {
            documents.push((start, std::mem::take(&mut current)));
            start = index + 2;
            let rest = line.trim_start_matches('-').trim();
            if is_separator && !rest.is_empty() && !rest.starts_with('#') {
                // `--- {inline: document}`: keep it, starting on this line.
                current.push_str(rest);
                current.push('\n');
                start = index + 1;
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.push((start, current));
    documents
}

/// The line of a document's first content (skipping leading blank and comment lines), for
/// pointing users at the object rather than at a header comment.
pub fn first_content_line(first_line: usize, text: &str) -> usize {
    let skipped = text
        .lines()
        .take_while(|line| {
            let trimmed = line.trim();
            trimmed.is_empty() || trimmed.starts_with('#')
        })
        .count();
    if skipped == text.lines().count() {
        first_line
    } else {
        first_line + skipped
    }
}

/// serde_yaml's syntax messages say "at line L column C" (sometimes twice: where the problem
/// was noticed and where the construct began) counting from the document it was given; shift
/// those lines to lines of the file.
pub fn shift_message_lines(message: &str, first_line: usize) -> String {
    const MARK: &str = "at line ";
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(MARK) {
        let digits_start = start + MARK.len();
        let digits_len = rest[digits_start..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        out.push_str(&rest[..digits_start]);
        match rest[digits_start..digits_start + digits_len].parse::<usize>() {
            Ok(line) => out.push_str(&(first_line + line.saturating_sub(1)).to_string()),
            Err(_) => out.push_str(&rest[digits_start..digits_start + digits_len]),
        }
        rest = &rest[digits_start + digits_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lines() {
        let text = "# header\na: 1\n---\n\n# about b\nb: 2\n--- {c: 3}\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].0, 1);
        assert_eq!(first_content_line(docs[0].0, &docs[0].1), 2);
        assert_eq!(docs[1].0, 4);
        assert_eq!(first_content_line(docs[1].0, &docs[1].1), 6);
        assert_eq!(docs[2], (7, "{c: 3}\n".to_owned()));
    }

    #[test]
    fn message_lines_are_shifted() {
        assert_eq!(
            shift_message_lines(
                "did not find ',' at line 2 column 8, while parsing at line 1 column 3",
                10
            ),
            "did not find ',' at line 11 column 8, while parsing at line 10 column 3"
        );
    }
}
