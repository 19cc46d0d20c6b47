//! Request bodies that are one JSON object with a fixed set of fields.
//!
//! Every failure is a 400 saying what is wrong and, where one is at fault,
//! naming the field: not JSON, not an object, a field given twice, a field the
//! route does not know (refused rather than ignored, so a misspelt field is
//! never silently dropped), or a required field that is missing.

use crate::ApiError;
use crate::http::validate::abbreviate;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The fields of a JSON object body, in the order they were sent.
#[derive(Debug)]
pub struct JsonObject {
    fields: Vec<(String, Value)>,
}

impl JsonObject {
    /// Parses `body` as one JSON object whose field names are all in `known`.
    /// `example` is a valid body, shown in the errors.
    pub fn parse(body: &[u8], known: &[&str], example: &str) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(format!(
                "The request body is empty; send a JSON object such as {example}."
            )));
        }
        let fields = match serde_json::from_slice::<Fields>(body) {
            Ok(Fields(fields)) => fields,
            // Fields reads any JSON value inside the object, so the only data
            // error left is a body that is JSON but not an object.
            Err(error) if error.is_data() => {
                return Err(ApiError::bad_request(format!(
                    "The request body must be a JSON object such as {example}."
                )));
            }
            Err(error) => {
                return Err(ApiError::bad_request(format!(
                    "The request body is not valid JSON ({error}); send an object such as {example}."
                )));
            }
        };
        for (index, (name, _)) in fields.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Unknown field `{}`: this request accepts only {}.",
                    abbreviate(name),
                    list(known)
                )));
            }
            if fields[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(ApiError::bad_request(format!(
                    "The field `{name}` is given more than once; give it once."
                )));
            }
        }
        Ok(Self { fields })
    }

    /// Takes the value of a field the request must have.
    pub fn take_required(&mut self, name: &str) -> Result<Value, ApiError> {
        self.take(name)
            .ok_or_else(|| ApiError::bad_request(format!("The field `{name}` is missing.")))
    }

    /// Takes the value of an optional field.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let index = self.fields.iter().position(|(field, _)| field == name)?;
        Some(self.fields.swap_remove(index).1)
    }
}

/// `a`, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// An object's entries, duplicates included (a map would keep one silently).
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            fields.push(entry);
        }
        Ok(Fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"{"name":"x"}"#;

    fn parse(body: &str, known: &[&str]) -> Result<JsonObject, ApiError> {
        JsonObject::parse(body.as_bytes(), known, EXAMPLE)
    }

    fn message(body: &str, known: &[&str]) -> String {
        let error = parse(body, known).unwrap_err();
        assert_eq!(error.status, 400, "{body}");
        error.message
    }

    #[test]
    fn takes_known_fields() {
        let mut object = parse(
            r#" {"name": "x", "size": [1, {"a": null}]} "#,
            &["name", "size"],
        )
        .unwrap();
        assert_eq!(
            object.take_required("size").unwrap(),
            json!([1, {"a": null}])
        );
        assert_eq!(object.take_required("name").unwrap(), json!("x"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut object = parse("{}", &["name"]).unwrap();
        let error = object.take_required("name").unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.message, "The field `name` is missing.");
    }

    #[test]
    fn empty_bodies_are_refused_with_an_example() {
        for body in ["", "  \n"] {
            assert_eq!(
                message(body, &["name"]),
                format!("The request body is empty; send a JSON object such as {EXAMPLE}.")
            );
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        for body in [
            "{",
            "{\"name\": }",
            "{'name': 'x'}",
            "{\"name\": \"x\"} trailing",
            "{\"name\": \"x\",}",
            "\u{feff}{}",
            "nul",
        ] {
            assert!(
                message(body, &["name"]).starts_with("The request body is not valid JSON ("),
                "{body}"
            );
        }
        let bytes = b"{\"name\": \"\xff\"}";
        let error = JsonObject::parse(bytes, &["name"], EXAMPLE).unwrap_err();
        assert!(
            error
                .message
                .starts_with("The request body is not valid JSON")
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let body = format!(
            "{{\"name\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(message(&body, &["name"]).starts_with("The request body is not valid JSON"));
    }

    #[test]
    fn other_json_values_are_not_objects() {
        for body in ["null", "1", "\"name\"", "[]", "[{\"name\":\"x\"}]", "true"] {
            assert_eq!(
                message(body, &["name"]),
                format!("The request body must be a JSON object such as {EXAMPLE}."),
                "{body}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        assert_eq!(
            message(r#"{"name":"x","nmae":"y"}"#, &["name"]),
            "Unknown field `nmae`: this request accepts only `name`."
        );
        assert_eq!(
            message(r#"{"x":1}"#, &["a", "b", "c"]),
            "Unknown field `x`: this request accepts only `a`, `b` or `c`."
        );
    }

    #[test]
    fn a_huge_unknown_field_name_is_cut_short_in_the_answer() {
        let body = format!("{{\"{}\": 1}}", "k".repeat(100_000));
        assert!(message(&body, &["name"]).len() < 200);
    }

    #[test]
    fn a_duplicate_field_is_refused() {
        assert_eq!(
            message(r#"{"name":"x","name":"y"}"#, &["name"]),
            "The field `name` is given more than once; give it once."
        );
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(list(&["a"]), "`a`");
        assert_eq!(list(&["a", "b"]), "`a` or `b`");
        assert_eq!(list(&[]), "");
    }
}
