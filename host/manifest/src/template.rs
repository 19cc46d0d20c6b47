//! `{{ name }}` templates, as Spin's expressions crate reads them: text
//! outside braces is literal, `{{ ... }}` names an application variable
//! (surrounding whitespace ignored), and there is no escape syntax — a `{{`
//! always opens an expression, while a stray `}}` is plain text.

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without its closing `}}`.
    #[error("unmatched '{{{{' in template")]
    UnmatchedBraces,
    /// An expression naming something that is not an application variable.
    #[error("template refers to `{0}`, which is not declared in [variables]")]
    UndeclaredVariable(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let (expression, after_close) = after_open
                    .split_once("}}")
                    .ok_or(TemplateError::UnmatchedBraces)?;
                parts.push(Part::Variable(expression.trim().to_owned()));
                rest = after_close;
            } else {
                let literal_end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..literal_end].to_owned()));
                rest = &rest[literal_end..];
            }
        }
        Ok(Self { parts })
    }

    /// True when the template has no `{{ }}` expressions.
    pub(crate) fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The variable names the template refers to, in order.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Substitutes every expression with `value_of(name)`; `None` means the
    /// name is not a declared variable.
    pub(crate) fn render<'v>(
        &self,
        mut value_of: impl FnMut(&str) -> Option<&'v str>,
    ) -> Result<String, TemplateError> {
        let mut rendered = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => rendered.push_str(text),
                Part::Variable(name) => rendered.push_str(
                    value_of(name)
                        .ok_or_else(|| TemplateError::UndeclaredVariable(name.clone()))?,
                ),
            }
        }
        Ok(rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str) -> Result<String, TemplateError> {
        Template::parse(template)?.render(|name| match name {
            "host" => Some("db.example.com"),
            "port" => Some("5432"),
            _ => None,
        })
    }

    #[test]
    fn literal_text_is_kept() {
        assert_eq!(render("").unwrap(), "");
        assert_eq!(render("plain").unwrap(), "plain");
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn expressions_are_substituted_with_whitespace_ignored() {
        assert_eq!(render("{{host}}").unwrap(), "db.example.com");
        assert_eq!(render("{{  host\t}}").unwrap(), "db.example.com");
        assert_eq!(
            render("postgres://{{ host }}:{{ port }}/db").unwrap(),
            "postgres://db.example.com:5432/db"
        );
        assert_eq!(
            render("{{ host }}{{ port }}").unwrap(),
            "db.example.com5432"
        );
    }

    #[test]
    fn stray_closing_braces_are_literal() {
        assert_eq!(render("a }} b").unwrap(), "a }} b");
    }

    #[test]
    fn unmatched_opening_braces_are_an_error() {
        assert_eq!(
            render("{{ host }} {{ port"),
            Err(TemplateError::UnmatchedBraces)
        );
        assert_eq!(
            TemplateError::UnmatchedBraces.to_string(),
            "unmatched '{{' in template"
        );
    }

    #[test]
    fn unknown_and_empty_names_are_undeclared() {
        assert_eq!(
            render("{{ nope }}"),
            Err(TemplateError::UndeclaredVariable("nope".into()))
        );
        assert_eq!(
            render("{{}}"),
            Err(TemplateError::UndeclaredVariable(String::new()))
        );
    }

    #[test]
    fn variables_are_listed_in_order() {
        let template = Template::parse("{{ b }}-{{ a }}").unwrap();
        assert_eq!(template.variables().collect::<Vec<_>>(), ["b", "a"]);
    }
}
