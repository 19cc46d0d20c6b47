use super::*;
use crate::PROJECT_MANIFEST;

/// Test support for every module's tests: manifest text without a file.
impl Manifest {
    /// Validates `toml_text` as if it were `<base_dir>/spin.toml`, which
    /// errors name as the file.
    pub(crate) fn parse(toml_text: &str, base_dir: &Path) -> Result<Self, ManifestError> {
        Self::parse_file(toml_text, base_dir).map_err(|kind| ManifestError {
            file: base_dir.join("spin.toml"),
            kind,
        })
    }
}

const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
"#;

fn parse(text: &str) -> Result<Manifest, String> {
    Manifest::parse(text, Path::new("/app")).map_err(|e| e.to_string())
}

/// The error for `MINIMAL` with `extra` appended.
fn error_with(extra: &str) -> String {
    parse(&format!("{MINIMAL}{extra}")).expect_err("manifest should be rejected")
}

#[test]
fn project_manifest_is_read_completely() {
    let manifest = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    assert_eq!(manifest.base_dir, Path::new("/srv/chat"));
    assert_eq!(manifest.application.name, "chat-history");
    assert_eq!(manifest.application.version, "0.1.0");

    assert_eq!(
        manifest.variables.keys().collect::<Vec<_>>(),
        [
            "admin_token",
            "db_url",
            "dev_user_email",
            "gateway_secret",
            "gateway_secret_header",
            "mlflow_origin",
            "mlflow_trace_wait_seconds",
            "retention_days",
            "serving_endpoint_api",
            "serving_endpoint_name",
            "serving_endpoint_origin",
            "serving_endpoint_url",
            "serving_timeout_seconds",
            "serving_token"
        ]
    );
    assert!(manifest.variables["serving_token"].secret);
    assert!(manifest.variables["gateway_secret"].secret);
    let admin_token = &manifest.variables["admin_token"];
    assert!(admin_token.secret);
    assert_eq!(admin_token.default.as_deref(), Some(""));
    assert!(!manifest.variables["db_url"].secret);

    assert_eq!(
        manifest.components.keys().collect::<Vec<_>>(),
        [
            "admin-schema",
            "chat-stream",
            "demo-agent",
            "feedback",
            "history",
            "messages",
            "transfer",
            "ui"
        ]
    );
    assert_eq!(
        manifest.components["chat-stream"].allowed_outbound_hosts,
        ["postgres://*:*", "{{ serving_endpoint_origin }}"]
    );
    assert_eq!(
        manifest.components["feedback"].allowed_outbound_hosts,
        [
            "postgres://*:*",
            "{{ serving_endpoint_origin }}",
            "{{ mlflow_origin }}"
        ]
    );
    let demo_agent = &manifest.components["demo-agent"];
    assert!(demo_agent.allowed_outbound_hosts.is_empty());
    assert_eq!(demo_agent.key_value_stores, ["default"]);
    let history = &manifest.components["history"];
    assert_eq!(
        history.source,
        Path::new("/srv/chat/target/wasm32-wasip2/release/history.wasm")
    );
    assert_eq!(
        history.allowed_outbound_hosts,
        ["postgres://*:*", "http://feedback.spin.internal"]
    );
    assert_eq!(history.variables["db_url"], "{{ db_url }}");
    assert_eq!(history.variables["dev_user_email"], "{{ dev_user_email }}");
    assert_eq!(history.key_value_stores, ["default"]);
    assert!(history.environment.is_empty());
    let build = history.build.as_ref().unwrap();
    assert_eq!(
        build.commands,
        ["cargo build --target wasm32-wasip2 --release -p history"]
    );
    assert_eq!(build.workdir, Path::new("/srv/chat"));

    let admin = &manifest.components["admin-schema"];
    assert_eq!(
        admin.source,
        Path::new("/srv/chat/target/wasm32-wasip2/release/admin_schema.wasm")
    );
    assert_eq!(
        admin.variables.keys().collect::<Vec<_>>(),
        ["admin_token", "db_url"]
    );

    let routes: Vec<_> = manifest
        .http_triggers
        .iter()
        .map(|t| (t.route.clone(), t.component.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            (HttpRoute::Path("/api/session".into()), "history"),
            (HttpRoute::Path("/api/history".into()), "history"),
            (HttpRoute::Path("/api/history/...".into()), "history"),
            (HttpRoute::Path("/api/chat".into()), "chat-stream"),
            (
                HttpRoute::Path("/api/chat/:chat_id/stop".into()),
                "chat-stream"
            ),
            (
                HttpRoute::Path("/api/chat/:chat_id/regenerate".into()),
                "chat-stream"
            ),
            (
                HttpRoute::Path("/api/chat/:chat_id/stream".into()),
                "chat-stream"
            ),
            (HttpRoute::Path("/api/export".into()), "transfer"),
            (
                HttpRoute::Path("/api/chat/:chat_id/export".into()),
                "transfer"
            ),
            (HttpRoute::Path("/api/import".into()), "transfer"),
            (HttpRoute::Path("/api/folders".into()), "history"),
            (HttpRoute::Path("/api/folders/...".into()), "history"),
            (HttpRoute::Path("/api/chat/...".into()), "history"),
            (HttpRoute::Path("/api/messages/...".into()), "messages"),
            (HttpRoute::Path("/api/feedback".into()), "feedback"),
            (HttpRoute::Path("/api/feedback/...".into()), "feedback"),
            (HttpRoute::Path("/admin/...".into()), "admin-schema"),
            (HttpRoute::Path("/".into()), "ui"),
            (HttpRoute::Path("/chat/...".into()), "ui"),
            (HttpRoute::Path("/assets/...".into()), "ui"),
            (HttpRoute::Path("/...".into()), "ui"),
            (HttpRoute::Private, "demo-agent"),
        ]
    );
}

#[test]
fn project_manifest_routes_requests() {
    let manifest = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    let router = Router::build(&manifest.http_triggers).unwrap();
    assert!(router.warnings().is_empty());

    let route = |path: &str| {
        router
            .route(path)
            .map(|m| (m.component_id().to_owned(), m.path_info().to_owned()))
    };
    assert_eq!(
        route("/api/history"),
        Some(("history".into(), String::new()))
    );
    assert_eq!(
        route("/api/session"),
        Some(("history".into(), String::new()))
    );
    assert_eq!(
        route("/admin/schema"),
        Some(("admin-schema".into(), "/schema".into()))
    );
    assert_eq!(
        route("/api/feedback"),
        Some(("feedback".into(), String::new()))
    );
    assert_eq!(
        route("/api/feedback/a/b"),
        Some(("feedback".into(), "/a/b".into()))
    );
    assert_eq!(
        route("/admin/schema/migrate"),
        Some(("admin-schema".into(), "/schema/migrate".into()))
    );
    assert_eq!(
        route("/admin"),
        Some(("admin-schema".into(), String::new()))
    );
    let chat = "123e4567-e89b-12d3-a456-426614174000";
    assert_eq!(
        route(&format!("/api/chat/{chat}/visibility")),
        Some(("history".into(), format!("/{chat}/visibility")))
    );
    // A parameter outranks the wildcard: a stop is chat-stream's.
    assert_eq!(
        route(&format!("/api/chat/{chat}/stop")),
        Some(("chat-stream".into(), String::new()))
    );
    assert_eq!(
        route(&format!("/api/chat/{chat}/regenerate")),
        Some(("chat-stream".into(), String::new()))
    );
    assert_eq!(
        route(&format!("/api/chat/{chat}/stream")),
        Some(("chat-stream".into(), String::new()))
    );
    assert_eq!(
        route(&format!("/api/chat/{chat}/export")),
        Some(("transfer".into(), String::new()))
    );
    assert_eq!(
        route(&format!("/api/chat/{chat}/title")),
        Some(("history".into(), format!("/{chat}/title")))
    );
    // The exact route outranks the wildcard, which would take the bare prefix.
    assert_eq!(
        route("/api/chat"),
        Some(("chat-stream".into(), String::new()))
    );
    assert_eq!(
        route(&format!("/api/messages/{chat}")),
        Some(("messages".into(), format!("/{chat}")))
    );
    // The web UI: the page at `/` and its deep links, and its files.
    assert_eq!(route("/"), Some(("ui".into(), String::new())));
    assert_eq!(
        route(&format!("/chat/{chat}")),
        Some(("ui".into(), format!("/{chat}")))
    );
    assert_eq!(
        route("/assets/app.js"),
        Some(("ui".into(), "/app.js".into()))
    );
    // Paths nothing else claims go to the ui component's catch-all, which
    // answers the API's JSON 404.
    for unclaimed in ["/nope", "/api/historyx", "/administrator"] {
        assert_eq!(
            route(unclaimed),
            Some(("ui".into(), unclaimed.into())),
            "{unclaimed}"
        );
    }
}

#[test]
fn load_resolves_paths_against_the_manifest_directory() {
    let dir = std::env::temp_dir().join(format!("chat-manifest-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let manifest = Manifest::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(manifest.base_dir, dir);
    assert_eq!(manifest.components["web"].source, dir.join("web.wasm"));
}

#[test]
fn load_names_a_missing_file() {
    let error = Manifest::load(Path::new("/nonexistent/spin.toml")).unwrap_err();
    assert!(matches!(error.kind, ManifestErrorKind::Io(_)));
    assert!(
        error.to_string().starts_with("/nonexistent/spin.toml: "),
        "{error}"
    );
}

#[test]
fn relative_base_dirs_become_absolute() {
    let manifest = Manifest::parse(MINIMAL, Path::new("apps/x")).unwrap();
    assert!(manifest.base_dir.is_absolute());
    assert!(
        manifest.components["web"]
            .source
            .ends_with("apps/x/web.wasm")
    );
}

#[test]
fn optional_features_are_read() {
    let manifest = parse(
        r#"
spin_manifest_version = 2
[application]
name = "app"
authors = ["a@example.com"]
targets = ["spin-up:3.3"]
[application.trigger.http]
base = "/"
[application.tool.lint]
level = "high"
[variables]
token = { required = true, secret = true, description = "API token" }
[[trigger.http]]
id = "internal"
route = { private = true }
component = "web"
executor = { type = "http" }
[component.web]
source = "web.wasm"
description = "The web UI"
key_value_stores = ["default", "my-store", "my_store"]
environment = { RUST_LOG = "info" }
files = []
exclude_files = ["static/secret"]
variables = { api_url = "https://{{ token }}@api.example.com" }
dependencies_inherit_configuration = false
[component.web.build]
command = ["npm ci", "npm run build"]
workdir = "ui"
[component.web.tool.clean]
command = "rm -rf dist"
[component.web.profile.debug]
source = "web-debug.wasm"
"#,
    )
    .unwrap();
    assert_eq!(manifest.application.authors, ["a@example.com"]);
    assert_eq!(
        manifest.variables["token"].description.as_deref(),
        Some("API token")
    );
    assert_eq!(manifest.variables["token"].default, None);
    assert_eq!(manifest.http_triggers[0].route, HttpRoute::Private);
    let web = &manifest.components["web"];
    assert_eq!(web.description, "The web UI");
    assert_eq!(web.key_value_stores, ["default", "my-store", "my_store"]);
    assert_eq!(web.environment["RUST_LOG"], "info");
    let build = web.build.as_ref().unwrap();
    assert_eq!(build.commands, ["npm ci", "npm run build"]);
    assert_eq!(build.workdir, Path::new("/app/ui"));
}

#[test]
fn files_are_refused_because_chat_host_mounts_none() {
    for files in [
        r#"["assets/**"]"#,
        r#"[{ source = "assets", destination = "/assets" }]"#,
    ] {
        assert_eq!(
            error_with(&format!(
                "[component.other]\nsource = \"o.wasm\"\nfiles = {files}\n"
            )),
            "/app/spin.toml: component `other`: `files` is not supported: chat-host does not \
             mount files into the guest (`spin up` does); embed them in the component or run \
             the app with `spin up`"
        );
    }
    // The same through `load`, for the component `web`.
    let dir = std::env::temp_dir().join(format!("chat-manifest-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, format!("{MINIMAL}files = [\"assets/**\"]\n")).unwrap();
    let error = Manifest::load(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        error
            .to_string()
            .ends_with("component `web`: `files` is not supported: chat-host does not mount files into the guest (`spin up` does); embed them in the component or run the app with `spin up`"),
        "{error}"
    );
}

#[test]
fn an_empty_files_list_is_accepted() {
    let manifest = parse(&format!(
        "{MINIMAL}files = []\nexclude_files = [\"assets/secret\"]\n"
    ));
    assert!(manifest.is_ok(), "{manifest:?}");
}

#[test]
fn secret_defaults_stay_out_of_debug_output() {
    let manifest = parse(&format!(
        "{MINIMAL}[variables]\ntoken = {{ default = \"hunter2\", secret = true }}\n"
    ))
    .unwrap();
    let debug = format!("{manifest:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<secret>"));
}

#[test]
fn manifest_version_must_be_2() {
    let body = MINIMAL.replace("spin_manifest_version = 2", "");
    assert_eq!(
        parse(&format!("spin_manifest_version = 3\n{body}")).unwrap_err(),
        "/app/spin.toml: unsupported manifest version 3; expected `spin_manifest_version = 2`"
    );
    assert_eq!(
        parse(&format!("spin_manifest_version = \"1\"\n{body}")).unwrap_err(),
        "/app/spin.toml: this is a version 1 manifest; chat-host reads only \
         `spin_manifest_version = 2` (`spin doctor` can upgrade it)"
    );
    assert!(
        parse(&body)
            .unwrap_err()
            .contains("missing field `spin_manifest_version`")
    );
    assert!(
        parse("")
            .unwrap_err()
            .contains("missing field `spin_manifest_version`")
    );
}

#[test]
fn toml_errors_point_at_the_line() {
    let error = parse("spin_manifest_version = 2\n[application\n").unwrap_err();
    assert!(
        error.starts_with("/app/spin.toml: TOML parse error at line 2"),
        "{error}"
    );
}

#[test]
fn unknown_keys_are_rejected_as_spin_does() {
    for (extra, unknown) in [
        ("colour = \"blue\"\n", "colour"),
        (
            "[component.other]\nsource = \"o.wasm\"\nallowed_hosts = []\n",
            "allowed_hosts",
        ),
        (
            "[variables]\nx = { default = \"\", secret = true, hidden = true }\n",
            "hidden",
        ),
    ] {
        let error = error_with(extra);
        assert!(
            error.contains(&format!("unknown field `{unknown}`")),
            "{error}"
        );
    }
    let error =
        parse(&MINIMAL.replace("[application]\n", "[application]\nowner = \"me\"\n")).unwrap_err();
    assert!(error.contains("unknown field `owner`"), "{error}");
    let error = parse(&MINIMAL.replace("route = \"/...\"", "route = \"/...\"\nmethod = \"GET\""))
        .unwrap_err();
    assert!(
        error.contains("[[trigger.http]] entry 1: unknown field `method`"),
        "{error}"
    );
}

#[test]
fn a_trigger_table_is_required() {
    let error = parse("spin_manifest_version = 2\n[application]\nname = \"app\"\n").unwrap_err();
    assert!(error.contains("missing field `trigger`"), "{error}");
}

#[test]
fn names_follow_spins_rules() {
    let error = error_with("[component.bad_id]\nsource = \"x.wasm\"\n");
    assert!(
        error.contains("words must be separated with '-', not '_'"),
        "{error}"
    );
    assert!(
        error.contains("[component.bad_id]"),
        "the TOML error shows the line: {error}"
    );

    let error = error_with("[variables]\n\"bad+name\" = { required = true }\n");
    assert!(
        error.contains("'_'-separated words may only contain alphanumeric ASCII; got '+'"),
        "{error}"
    );

    let error = error_with("[variables]\nDB_URL = { required = true }\n");
    assert!(error.contains("must be all lowercase"), "{error}");

    let error = error_with("[component.other]\nsource = \"o.wasm\"\nvariables = { Bad = \"x\" }\n");
    assert!(error.contains("must be all lowercase"), "{error}");

    let error =
        error_with("[component.other]\nsource = \"o.wasm\"\nkey_value_stores = [\"my store\"]\n");
    assert!(
        error.contains("expected kebab-case or snake_case"),
        "{error}"
    );

    let error =
        parse(&MINIMAL.replace("component = \"web\"", "component = \"1-2-3\"")).unwrap_err();
    assert_eq!(
        error,
        "/app/spin.toml: [[trigger.http]] entry 1: component \"1-2-3\": \
         '-'-separated words must start with an ASCII letter; got '1'"
    );
}

#[test]
fn variables_need_exactly_one_of_required_and_default() {
    assert_eq!(
        error_with("[variables]\ndb_url = { required = true, default = \"x\" }\n"),
        "/app/spin.toml: variable `db_url`: must be `required` OR have a `default`, not both"
    );
    assert_eq!(
        error_with("[variables]\ndb_url = { secret = true }\n"),
        "/app/spin.toml: variable `db_url`: must be `required` OR have a `default`"
    );
}

#[test]
fn triggers_must_name_a_defined_component() {
    let error = parse(&MINIMAL.replace("component = \"web\"", "component = \"api\"")).unwrap_err();
    assert_eq!(
        error,
        "/app/spin.toml: [[trigger.http]] entry 1: component `api` is not defined (no [component.api] table)"
    );
    let error = parse(&MINIMAL.replace("component = \"web\"\n", "")).unwrap_err();
    assert!(
        error.ends_with("[[trigger.http]] entry 1: missing `component`"),
        "{error}"
    );
}

#[test]
fn unsupported_spin_features_are_refused_clearly() {
    let inline = MINIMAL.replace(
        "component = \"web\"",
        "component = { source = \"inline.wasm\" }",
    );
    assert!(parse(&inline).unwrap_err().ends_with(
        "[[trigger.http]] entry 1: inline components are not supported by chat-host; define the \
         component in a [component.<id>] table and name it in `component`"
    ));

    let url_source = MINIMAL.replace(
        "source = \"web.wasm\"",
        "source = { url = \"https://example.com/web.wasm\", digest = \"sha256:abc\" }",
    );
    assert!(
        parse(&url_source)
            .unwrap_err()
            .contains("component `web`: URL sources are not supported by chat-host")
    );

    let registry_source = MINIMAL.replace(
        "source = \"web.wasm\"",
        "source = { package = \"a:b\", version = \"1.0.0\" }",
    );
    assert!(
        parse(&registry_source)
            .unwrap_err()
            .contains("registry sources are not supported")
    );

    for (extra, feature) in [
        (
            "sqlite_databases = [\"default\"]\n",
            "`sqlite_databases` is not supported",
        ),
        (
            "ai_models = [\"llama2-chat\"]\n",
            "`ai_models` is not supported",
        ),
        (
            "allowed_http_hosts = [\"example.com\"]\n",
            "`allowed_http_hosts` is deprecated",
        ),
        (
            "dependencies = { \"a:b/c\" = \"1.0.0\" }\n",
            "`dependencies` is not supported",
        ),
    ] {
        let error = error_with(&format!("[component.other]\nsource = \"o.wasm\"\n{extra}"));
        assert!(
            error.contains(&format!("component `other`: {feature}")),
            "{error}"
        );
    }

    let redis = "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"web\"\n";
    assert_eq!(
        error_with(redis),
        "/app/spin.toml: [[trigger.redis]]: chat-host runs only HTTP triggers"
    );

    for (trigger_extra, message) in [
        (
            "static_response = { body = \"hi\" }",
            "`static_response` is not supported by chat-host",
        ),
        (
            "executor = { type = \"wagi\" }",
            "the `wagi` executor is not supported by chat-host",
        ),
    ] {
        let text = MINIMAL.replace(
            "component = \"web\"",
            &format!("component = \"web\"\n{trigger_extra}"),
        );
        assert!(parse(&text).unwrap_err().ends_with(message));
    }

    let base = MINIMAL.replace(
        "name = \"app\"",
        "name = \"app\"\n[application.trigger.http]\nbase = \"/api\"",
    );
    assert!(
        parse(&base)
            .unwrap_err()
            .contains("[application]: the deprecated trigger `base` is not supported")
    );
}

#[test]
fn private_routes_must_be_private() {
    let text = MINIMAL.replace("route = \"/...\"", "route = { private = false }");
    assert_eq!(
        parse(&text).unwrap_err(),
        "/app/spin.toml: [[trigger.http]] entry 1: route must be a string pattern or \
         '{ private = true }': 'web' has { private = false }"
    );
    let text = MINIMAL.replace("route = \"/...\"", "route = 42");
    assert!(
        parse(&text)
            .unwrap_err()
            .ends_with("route must be a string pattern or '{ private = true }'")
    );
}

#[test]
fn bad_routes_are_found_at_load() {
    let text = MINIMAL.replace("route = \"/...\"", "route = \"/files/*name\"");
    let error = parse(&text).unwrap_err();
    assert!(
        error.starts_with("/app/spin.toml: route \"/files/*name\" of component `web` is invalid:"),
        "{error}"
    );
}

#[test]
fn component_variable_templates_must_use_declared_variables() {
    let error = error_with(
        "[variables]\ndb_url = { default = \"\" }\n\
         [component.other]\nsource = \"o.wasm\"\nvariables = { db_url = \"{{ db_host }}\" }\n",
    );
    assert_eq!(
        error,
        "/app/spin.toml: component `other`: variable `db_url`: template refers to `db_host`, \
         which is not declared in [variables]"
    );
    let error =
        error_with("[component.other]\nsource = \"o.wasm\"\nvariables = { x = \"{{ oops\" }\n");
    assert!(
        error.ends_with("component `other`: variable `x`: unmatched '{{' in template"),
        "{error}"
    );
}

#[test]
fn allowed_outbound_hosts_are_checked_at_load() {
    for (hosts, message) in [
        (
            r#"["ftp://files.example.com"]"#,
            r#"allowed_outbound_hosts entry "ftp://files.example.com": no port is given"#,
        ),
        (r#"["example.com"]"#, "has no scheme"),
        (
            r#"["insecure:allow-all"]"#,
            "'insecure:allow-all' is not allowed; use '*://*:*'",
        ),
        (
            r#"["https://{{ api_host }}"]"#,
            "template refers to `api_host`, which is not declared",
        ),
        (
            r#"["https://{{ bad_default }}"]"#,
            "with the variables' default values, invalid host",
        ),
    ] {
        let error = error_with(&format!(
            "[variables]\nbad_default = {{ default = \"not a host\" }}\n\
             [component.other]\nsource = \"o.wasm\"\nallowed_outbound_hosts = {hosts}\n"
        ));
        assert!(error.contains("component `other`: "), "{error}");
        assert!(error.contains(message), "{error}");
        assert!(
            !error.contains("not a host"),
            "values stay out of messages: {error}"
        );
    }
    // Templates over required variables can only be checked at start-up.
    parse(&format!(
        "{MINIMAL}[variables]\napi_host = {{ required = true }}\n\
         [component.other]\nsource = \"o.wasm\"\nallowed_outbound_hosts = [\"https://{{{{ api_host }}}}\"]\n"
    ))
    .unwrap();
}

#[test]
fn build_workdir_must_be_relative() {
    let error = error_with(
        "[component.other]\nsource = \"o.wasm\"\nbuild = { command = \"make\", workdir = \"/abs\" }\n",
    );
    assert!(error.ends_with(
        "component `other`: the build `workdir` must be relative to the manifest directory"
    ));
}

#[test]
fn chat_host_reads_its_own_tool_table_and_leaves_the_others() {
    let manifest = parse(&format!(
        "{MINIMAL}[component.web.tool.chat-host]\n\
         background_work = {{ path = \"/internal/work\", interval_seconds = 5 }}\n\
         [component.web.tool.other]\nanything = 1\n"
    ))
    .unwrap();
    assert_eq!(
        manifest.components["web"].background_work,
        Some(BackgroundWork {
            path: "/internal/work".to_owned(),
            interval: std::time::Duration::from_secs(5),
        })
    );
    assert_eq!(
        parse(MINIMAL).unwrap().components["web"].background_work,
        None
    );
    let project = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    assert!(project.components["feedback"].background_work.is_some());
}

#[test]
fn the_app_declares_the_counts_chat_hosts_metrics_report() {
    let manifest = parse(&format!(
        "{MINIMAL}[component.web.tool.chat-host]\n\
         gauges = [{{ name = \"queue_depth\", help = \"Waiting\", count = \"SELECT count(*) FROM q\" }}]\n"
    ))
    .unwrap();
    assert_eq!(
        manifest.components["web"].gauges,
        [Gauge {
            name: "queue_depth".to_owned(),
            help: "Waiting".to_owned(),
            count: "SELECT count(*) FROM q".to_owned(),
        }]
    );
    assert!(parse(MINIMAL).unwrap().components["web"].gauges.is_empty());
    let project = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    assert_eq!(
        project.components["feedback"]
            .gauges
            .iter()
            .map(|gauge| gauge.name.as_str())
            .collect::<Vec<_>>(),
        ["feedback_outbox_depth"]
    );
}

#[test]
fn a_malformed_chat_host_tool_table_is_refused_with_the_reason() {
    for (table, expected) in [
        ("typo = 1", "unknown field `typo`"),
        (
            "background_work = { path = \"internal\", interval_seconds = 5 }",
            "must start with '/'",
        ),
        (
            "background_work = { path = \"/w\", interval_seconds = 0 }",
            "`interval_seconds` must be from 1 to 3600",
        ),
        (
            "background_work = { path = \"/w\" }",
            "missing field `interval_seconds`",
        ),
        (
            "gauges = [{ name = \"Depth\", help = \"\", count = \"SELECT 1\" }]",
            "a name is lower-case letters",
        ),
        (
            "gauges = [{ name = \"depth\", help = \"\", count = \" \" }]",
            "depth has no `count` statement",
        ),
        (
            "gauges = [{ name = \"depth\", count = \"SELECT 1\" }]",
            "missing field `help`",
        ),
    ] {
        let error = error_with(&format!("[component.web.tool.chat-host]\n{table}\n"));
        assert!(error.contains("component `web`"), "{error}");
        assert!(error.contains(expected), "{table}: {error}");
    }
}
