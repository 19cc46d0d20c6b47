//! The identifier rules Spin enforces, so that a name chat-host accepts is one
//! `spin up` accepts too. Each check returns the reason a name is refused.

/// A component id: words of ASCII letters and digits joined by `-`
/// (Spin's `KebabId`).
pub(crate) fn check_kebab_case(id: &str) -> Result<(), String> {
    check_words(id, '-', false)
}

/// An application or component variable name: lower-case words joined by `_`
/// (Spin's `LowerSnakeId`).
pub(crate) fn check_lower_snake_case(id: &str) -> Result<(), String> {
    check_words(id, '_', true)
}

/// A key-value store label: kebab-case or `snake_case`.
pub(crate) fn check_store_label(label: &str) -> Result<(), String> {
    check_kebab_case(label)
        .or_else(|_| check_words(label, '_', false))
        .map_err(|_| "expected kebab-case or snake_case".to_owned())
}

/// A variable name as a guest asks for it at run time (Spin's expression
/// `Key`). Looser than [`check_lower_snake_case`]: `a_1` passes here.
pub(crate) fn check_variable_key(key: &str) -> Result<(), String> {
    let Some(first) = key.bytes().next() else {
        return Err("must not be empty".to_owned());
    };
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {bad:?}; variable names may contain only lower-case letters, digits and underscores"
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lower-case ASCII letter".to_owned());
    }
    if key.ends_with('_') {
        return Err("must end with a lower-case ASCII letter or digit".to_owned());
    }
    if key.contains("__") {
        return Err("must not contain consecutive underscores".to_owned());
    }
    Ok(())
}

fn check_words(id: &str, delimiter: char, lower_case_only: bool) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // The usual mistake is the other separator; say so rather than "bad character".
    let other = if delimiter == '-' { '_' } else { '-' };
    if id.contains(other) {
        return Err(format!(
            "words must be separated with {delimiter:?}, not {other:?}"
        ));
    }
    for word in id.split(delimiter) {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err(format!("{delimiter:?}-separated words must not be empty"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "{delimiter:?}-separated words must start with an ASCII letter; got {first:?}"
            ));
        }
        let upper_case_word = first.is_ascii_uppercase();
        for ch in chars {
            if ch.is_ascii_digit() {
                continue;
            }
            if !ch.is_ascii_alphanumeric() {
                return Err(format!(
                    "{delimiter:?}-separated words may only contain alphanumeric ASCII; got {ch:?}"
                ));
            }
            if ch.is_ascii_uppercase() != upper_case_word {
                return Err(format!(
                    "{delimiter:?}-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                ));
            }
        }
        if lower_case_only && upper_case_word {
            return Err(format!("must be all lowercase; got {id:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_ids() {
        for good in ["history", "admin-schema", "a1-b2", "API-gateway"] {
            assert_eq!(check_kebab_case(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("", "must not be empty"),
            ("bad_id", "words must be separated with '-', not '_'"),
            (
                "1-2-3",
                "'-'-separated words must start with an ASCII letter; got '1'",
            ),
            ("a--b", "'-'-separated words must not be empty"),
            ("a-", "'-'-separated words must not be empty"),
            (
                "Mixed",
                "'-'-separated words must be all lowercase or all UPPERCASE; got \"Mixed\"",
            ),
            (
                "a.b",
                "'-'-separated words may only contain alphanumeric ASCII; got '.'",
            ),
        ] {
            assert_eq!(check_kebab_case(bad), Err(reason.to_owned()), "{bad}");
        }
    }

    #[test]
    fn lower_snake_case_names() {
        for good in ["db_url", "a", "a1_b2"] {
            assert_eq!(check_lower_snake_case(good), Ok(()), "{good}");
        }
        for bad in ["DB_URL", "db-url", "a_1", "_a", "a__b", "bad+name"] {
            assert!(check_lower_snake_case(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn store_labels() {
        for good in ["default", "my-store", "my_store", "CACHE"] {
            assert_eq!(check_store_label(good), Ok(()), "{good}");
        }
        for bad in ["", "my store", "my-store_x", "1st", "Cache"] {
            assert!(check_store_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn runtime_variable_keys() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            assert_eq!(check_variable_key(good), Ok(()), "{good}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(check_variable_key(bad).is_err(), "{bad}");
        }
    }
}
