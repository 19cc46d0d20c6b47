//! The body of every error answer, whether a component or chat-host itself
//! refuses the request: `{"error": "<sentence>"}`, the shape the seed's
//! client reads.

/// `message` as the JSON error body.
pub fn json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_is_the_only_field_and_is_escaped() {
        assert_eq!(json(r#"No "x"."#), r#"{"error":"No \"x\"."}"#);
    }
}
