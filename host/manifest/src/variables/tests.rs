use std::path::Path;

use super::*;
use crate::PROJECT_MANIFEST;

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
db_url = { default = "postgres://localhost/chat" }
api_host = { default = "api.example.com" }
api_token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
[component.web.variables]
db_url = "{{ db_url }}"
endpoint = "https://{{api_host}}/v1?token={{  api_token  }}"
greeting = "hello }} world"
[component.other]
source = "other.wasm"
"#;

fn manifest() -> Manifest {
    Manifest::parse(MANIFEST, Path::new("/app")).unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn resolver(env_pairs: &[(&str, &str)], override_pairs: &[(&str, &str)]) -> VariableResolver {
    VariableResolver::new(&manifest(), env(env_pairs), overrides(override_pairs)).unwrap()
}

#[test]
fn env_var_names_are_upper_case() {
    assert_eq!(env_var_name("db_url"), "SPIN_VARIABLE_DB_URL");
}

#[test]
fn defaults_apply_when_nothing_else_is_set() {
    let r = resolver(&[("SPIN_VARIABLE_API_TOKEN", "t0k3n")], &[]);
    assert_eq!(
        r.component_variable("web", "db_url").unwrap(),
        "postgres://localhost/chat"
    );
    assert_eq!(r.app_variable("api_host"), Some("api.example.com"));
}

#[test]
fn environment_beats_default_and_override_beats_both() {
    let environment = [
        ("SPIN_VARIABLE_API_TOKEN", "t0k3n"),
        ("SPIN_VARIABLE_DB_URL", "postgres://env/chat"),
        ("SPIN_VARIABLE_API_HOST", ""),
    ];
    let r = resolver(&environment, &[]);
    assert_eq!(
        r.component_variable("web", "db_url").unwrap(),
        "postgres://env/chat"
    );
    // An empty environment value is a value.
    assert_eq!(r.app_variable("api_host"), Some(""));

    let r = resolver(&environment, &[("db_url", "postgres://managed/chat")]);
    assert_eq!(
        r.component_variable("web", "db_url").unwrap(),
        "postgres://managed/chat"
    );
}

#[test]
fn unrelated_and_lower_case_environment_entries_are_ignored() {
    let r = resolver(
        &[
            ("SPIN_VARIABLE_API_TOKEN", "t"),
            ("spin_variable_db_url", "x"),
            ("DB_URL", "y"),
            ("SPIN_VARIABLE_OTHER", "z"),
        ],
        &[],
    );
    assert_eq!(r.app_variable("db_url"), Some("postgres://localhost/chat"));
    assert_eq!(r.app_variable("other"), None);
}

#[test]
fn templates_mix_literal_text_and_variables() {
    let r = resolver(&[("SPIN_VARIABLE_API_TOKEN", "t0k3n")], &[]);
    assert_eq!(
        r.component_variable("web", "endpoint").unwrap(),
        "https://api.example.com/v1?token=t0k3n"
    );
    assert_eq!(
        r.component_variable("web", "greeting").unwrap(),
        "hello }} world"
    );
}

#[test]
fn a_required_variable_without_value_is_an_error_naming_its_environment_variable() {
    let error = VariableResolver::new(&manifest(), env(&[]), BTreeMap::new()).unwrap_err();
    assert_eq!(
        error,
        VariableError::MissingRequired {
            name: "api_token".into(),
            env_var: "SPIN_VARIABLE_API_TOKEN".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "required variable `api_token` has no value; set SPIN_VARIABLE_API_TOKEN in the environment"
    );
    // An override satisfies it too.
    VariableResolver::new(&manifest(), env(&[]), overrides(&[("api_token", "x")])).unwrap();
}

#[test]
fn overrides_must_be_declared() {
    let error = VariableResolver::new(
        &manifest(),
        env(&[("SPIN_VARIABLE_API_TOKEN", "t")]),
        overrides(&[("nope", "x")]),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot set variable `nope`: it is not declared in [variables]"
    );
}

#[test]
fn undeclared_component_variables_are_undefined() {
    let r = resolver(&[("SPIN_VARIABLE_API_TOKEN", "t")], &[]);
    assert_eq!(
        r.component_variable("web", "api_host"),
        Err(VariableError::Undefined("web".into(), "api_host".into()))
    );
    assert_eq!(
        r.component_variable("other", "db_url"),
        Err(VariableError::Undefined("other".into(), "db_url".into()))
    );
    assert_eq!(
        r.component_variable("no-such-component", "db_url"),
        Err(VariableError::Undefined(
            "no-such-component".into(),
            "db_url".into()
        ))
    );
    // Spin's rule for names at run time is looser than for declarations.
    assert!(matches!(
        r.component_variable("web", "a_1"),
        Err(VariableError::Undefined(..))
    ));
}

#[test]
fn malformed_names_are_invalid() {
    let r = resolver(&[("SPIN_VARIABLE_API_TOKEN", "t")], &[]);
    for name in ["", "DB_URL", "db-url", "1db", "db__url", "db_", "db.url"] {
        assert!(
            matches!(
                r.component_variable("web", name),
                Err(VariableError::InvalidName(..))
            ),
            "{name:?}"
        );
    }
    let error = r.component_variable("web", "DB_URL").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid variable name \"DB_URL\": invalid character 'D'"),
        "{error}"
    );
}

#[test]
fn templates_of_a_modified_manifest_are_checked_at_construction() {
    let mut manifest = manifest();
    if let Some(web) = manifest.components.get_mut("web") {
        web.variables
            .insert("broken".into(), "{{ missing }}".into());
    }
    let error = VariableResolver::new(
        &manifest,
        env(&[("SPIN_VARIABLE_API_TOKEN", "t")]),
        BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "component `web` variable `broken`: template refers to `missing`, which is not declared in [variables]"
    );
}

#[test]
fn debug_output_never_shows_values() {
    let r = resolver(
        &[("SPIN_VARIABLE_API_TOKEN", "s3cr3t-t0k3n")],
        &[("db_url", "postgres://u:pw@h/db")],
    );
    let debug = format!("{r:?}");
    for value in ["s3cr3t-t0k3n", "pw@h", "api.example.com"] {
        assert!(!debug.contains(value), "{debug}");
    }
    assert!(
        debug.contains("api_token") && debug.contains("Environment") && debug.contains("Override")
    );
}

#[test]
fn project_manifest_variables() {
    let manifest = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    let r = VariableResolver::new(
        &manifest,
        env(&[("SPIN_VARIABLE_ADMIN_TOKEN", "adm1n"), ("PATH", "/usr/bin")]),
        overrides(&[("db_url", "postgres://chat@127.0.0.1:54321/chat")]),
    )
    .unwrap();
    assert_eq!(
        r.component_variable("history", "db_url").unwrap(),
        "postgres://chat@127.0.0.1:54321/chat"
    );
    assert_eq!(
        r.component_variable("history", "dev_user_email").unwrap(),
        ""
    );
    assert_eq!(
        r.component_variable("admin-schema", "admin_token").unwrap(),
        "adm1n"
    );
    assert!(matches!(
        r.component_variable("history", "admin_token"),
        Err(VariableError::Undefined(..))
    ));
}

#[test]
fn a_live_value_is_read_at_each_use_and_the_resolved_one_stands_in_until_it_has_one() {
    let token = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let current = token.clone();
    let live: LiveValue = std::sync::Arc::new(move || current.lock().unwrap().clone());
    let r = resolver(&[("SPIN_VARIABLE_API_TOKEN", "start")], &[])
        .with_live("api_token", live)
        .unwrap();
    let endpoint = || r.component_variable("web", "endpoint").unwrap();
    assert_eq!(endpoint(), "https://api.example.com/v1?token=start");
    *token.lock().unwrap() = Some("first".to_owned());
    assert_eq!(endpoint(), "https://api.example.com/v1?token=first");
    *token.lock().unwrap() = Some("second".to_owned());
    assert_eq!(endpoint(), "https://api.example.com/v1?token=second");
    let undeclared = resolver(&[("SPIN_VARIABLE_API_TOKEN", "x")], &[])
        .with_live("nope", std::sync::Arc::new(|| None));
    assert!(undeclared.is_err());
}
