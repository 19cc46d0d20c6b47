//! The docs name what exists: every file or folder docs/architecture.md
//! names (in backticks) is in the repository, so the page cannot drift from
//! the layout unnoticed.

use std::path::Path;

/// `components/{a,b}` names `components/a` and `components/b`.
fn expand_braces(quoted: &str) -> Vec<String> {
    match (quoted.find('{'), quoted.find('}')) {
        (Some(open), Some(close)) if open < close => quoted[open + 1..close]
            .split(',')
            .flat_map(|choice| {
                expand_braces(&format!(
                    "{}{choice}{}",
                    &quoted[..open],
                    &quoted[close + 1..]
                ))
            })
            .collect(),
        _ => vec![quoted.to_owned()],
    }
}

/// A repository path, as opposed to a route (`/api/...`), a request
/// (`GET /api/history`), a crate's name or a table of spin.toml.
fn names_a_path(text: &str) -> bool {
    let file_like = [".rs", ".md", ".toml", ".yaml", ".wit", ".sh"]
        .iter()
        .any(|extension| text.ends_with(extension));
    !text.starts_with('/')
        && !text.contains([' ', '<', '[', ':', '('])
        && (text.contains('/') || file_like)
}

#[test]
fn every_path_the_architecture_page_names_exists() {
    let root = chat_tests::repo_root();
    let page = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let named: Vec<String> = page
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(expand_braces)
        .filter(|text| names_a_path(text))
        .collect();
    assert!(
        named.len() >= 30,
        "the page names only {} paths: {named:?}",
        named.len()
    );
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| !root.join(Path::new(path.trim_end_matches('/'))).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md names {missing:?}, which do not exist"
    );
}

#[test]
fn a_brace_names_each_of_its_choices() {
    assert_eq!(expand_braces("a/{b,c}/d"), ["a/b/d", "a/c/d"]);
    assert!(names_a_path("host/src/app.rs") && names_a_path("spin.toml"));
    assert!(!names_a_path("GET /api/history") && !names_a_path("spin:postgres"));
    assert!(!names_a_path("/api/chat") && !names_a_path("chat-guest"));
}
