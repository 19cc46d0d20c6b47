use std::path::Path;

use super::*;
use crate::PROJECT_MANIFEST;
use crate::manifest::Manifest;

/// An app with components `web` and `history` and a few variables.
const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
db_host = { default = "db.example.com" }
db_port = { default = "6543" }
api_host = { default = "api.example.com" }
optional_host = { default = "" }
optional_url = { default = "" }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
[component.history]
source = "history.wasm"
"#;

fn resolver_with_env(env: &[(&str, &str)]) -> VariableResolver {
    let manifest = Manifest::parse(MANIFEST, Path::new("/app")).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    VariableResolver::new(&manifest, env, BTreeMap::new()).unwrap()
}

fn try_hosts(entries: &[&str]) -> Result<AllowedHosts, AllowedHostsError> {
    let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    AllowedHosts::parse(&entries, &resolver_with_env(&[]))
}

fn hosts(entries: &[&str]) -> AllowedHosts {
    try_hosts(entries).unwrap()
}

#[track_caller]
fn assert_allows(allowed: &AllowedHosts, urls: &[&str]) {
    for url in urls {
        assert!(allowed.allows_url(url), "{allowed:?} should allow {url}");
    }
}

#[track_caller]
fn assert_denies(allowed: &AllowedHosts, urls: &[&str]) {
    for url in urls {
        assert!(!allowed.allows_url(url), "{allowed:?} should deny {url}");
    }
}

#[test]
fn an_empty_list_allows_nothing() {
    let none = hosts(&[]);
    assert_denies(&none, &["https://example.com", "http://localhost:3000"]);
    assert!(!none.allows("https", "example.com", None));
    assert!(!none.allows_postgres_address("postgres://db.example.com/chat"));
}

#[test]
fn exact_entries() {
    let allowed = hosts(&["https://example.com"]);
    assert_allows(
        &allowed,
        &[
            "https://example.com",
            "https://example.com/a/b?c=d",
            "https://example.com:443/",
        ],
    );
    assert_denies(
        &allowed,
        &[
            "http://example.com",
            "https://example.com:8443",
            "https://sub.example.com",
            "https://example.org",
        ],
    );
}

#[test]
fn hosts_compare_case_insensitively() {
    assert_allows(
        &hosts(&["https://Example.COM"]),
        &["https://example.com", "https://EXAMPLE.com/x"],
    );
    assert_allows(
        &hosts(&["http://*.Example.COM"]),
        &["http://foo.example.com"],
    );
}

#[test]
fn omitted_ports_are_the_schemes_well_known_ports() {
    for (entry, allowed, denied) in [
        (
            "http://example.com",
            "http://example.com:80",
            "http://example.com:8080",
        ),
        (
            "https://example.com",
            "https://example.com:443",
            "https://example.com:80",
        ),
        ("postgres://db", "postgres://db:5432", "postgres://db:5433"),
        ("redis://cache", "redis://cache:6379", "redis://cache:6380"),
        ("mysql://db", "mysql://db:3306", "mysql://db:3307"),
        ("mqtt://broker", "mqtt://broker:1883", "mqtt://broker:1884"),
    ] {
        let rules = hosts(&[entry]);
        assert!(rules.allows_url(allowed), "{entry} allows {allowed}");
        assert!(!rules.allows_url(denied), "{entry} denies {denied}");
    }
    assert!(hosts(&["postgres://db"]).allows("postgres", "db", None));
    assert!(hosts(&["postgres://db"]).allows("postgres", "db", Some(5432)));
}

#[test]
fn a_scheme_without_well_known_port_needs_one() {
    let error = try_hosts(&["ftp://files.example.com"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "allowed_outbound_hosts entry \"ftp://files.example.com\": no port is given and the scheme has \
         no well-known port; add ':<port>' or ':*'"
    );
    assert!(try_hosts(&["*://example.com"]).is_err());
    let ftp = hosts(&["ftp://files.example.com:21"]);
    assert!(ftp.allows("ftp", "files.example.com", Some(21)));
    // The URL parser drops ftp's default port and Spin has no default for it.
    assert!(!ftp.allows_url("ftp://files.example.com:21/x"));
}

#[test]
fn wildcard_ports_hosts_and_schemes() {
    let any_port = hosts(&["https://example.com:*"]);
    assert_allows(
        &any_port,
        &["https://example.com", "https://example.com:8443"],
    );
    assert_denies(&any_port, &["http://example.com:8443"]);

    let any_host = hosts(&["https://*"]);
    assert_allows(&any_host, &["https://example.com", "https://10.1.2.3/x"]);
    assert_denies(
        &any_host,
        &["https://example.com:8443", "http://example.com"],
    );

    let any_scheme = hosts(&["*://example.com:8080"]);
    assert_allows(
        &any_scheme,
        &[
            "http://example.com:8080",
            "https://example.com:8080",
            "redis://example.com:8080",
        ],
    );
    assert_denies(&any_scheme, &["http://example.com"]);

    let everything = hosts(&["*://*:*"]);
    assert_allows(
        &everything,
        &["http://a.b", "tcp://127.0.0.1:1", "ftp://files.example.com"],
    );
    assert!(everything.allows_postgres_address("postgres://anywhere:1/db"));
}

#[test]
fn subdomain_wildcards_exclude_the_domain_itself() {
    let allowed = hosts(&["http://*.example.com", "http://*.example2.com:8383"]);
    assert_allows(
        &allowed,
        &[
            "http://a.example.com/foo",
            "http://a.b.example.com",
            "http://a.b.example2.com:8383/x",
        ],
    );
    assert_denies(
        &allowed,
        &[
            "http://example.com",
            "http://myexample.com",
            "http://a.b.example2.com",
            "http://example.com:8383",
        ],
    );
}

#[test]
fn port_ranges_exclude_their_end() {
    let allowed = hosts(&["http://localhost:8000..8005"]);
    assert_allows(
        &allowed,
        &["http://localhost:8000", "http://localhost:8004"],
    );
    assert_denies(
        &allowed,
        &[
            "http://localhost:8005",
            "http://localhost:7999",
            "http://localhost",
        ],
    );
}

#[test]
fn ip_addresses_and_networks() {
    let allowed = hosts(&[
        "http://127.0.0.1:3000",
        "*://10.0.0.0/8:*",
        "http://[::1]",
        "https://2001:db8::/32",
    ]);
    assert_allows(
        &allowed,
        &[
            "http://127.0.0.1:3000",
            "redis://10.200.0.1",
            "http://10.1.2.3:9999",
            "http://[::1]/x",
            "https://[2001:db8:abcd::1]",
        ],
    );
    assert_denies(
        &allowed,
        &[
            "http://127.0.0.1:3001",
            "http://11.0.0.1",
            "http://[::2]",
            "http://[::1]:81",
            "https://[2001:db9::1]",
        ],
    );
    // Host bits of a network are ignored; a network never matches a name.
    let network = hosts(&["*://127.0.0.1/24:63551"]);
    assert_allows(&network, &["tcp://127.0.0.200:63551"]);
    assert_denies(&network, &["tcp://localhost:63551"]);
}

#[test]
fn trailing_slashes_are_allowed_but_paths_are_not() {
    assert_allows(
        &hosts(&["https://my.api.com/"]),
        &["https://my.api.com", "https://my.api.com/"],
    );
    assert_allows(&hosts(&["http://[::1]:8080/"]), &["http://[::1]:8080"]);
    let error = try_hosts(&["https://example.com:443/api"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "allowed_outbound_hosts entry \"https://example.com:443/api\": must not include a path"
    );
}

#[test]
fn passwords_with_special_characters_do_not_hide_the_host() {
    let allowed = hosts(&["mysql://xyz.com"]);
    assert_allows(
        &allowed,
        &[
            "mysql://user:pass#word@xyz.com",
            "mysql://user%3Apass%23word@xyz.com",
        ],
    );
    assert_denies(&allowed, &["mysql://user:pass@evil.com#@xyz.com"]);
}

#[test]
fn urls_without_scheme_are_read_as_https_and_garbage_is_denied() {
    let allowed = hosts(&["https://example.com"]);
    assert!(allowed.allows_url("example.com"));
    assert!(allowed.allows_url("example.com:443/x"));
    assert_denies(&allowed, &["", "not a url", "https://exa mple.com"]);
}

#[test]
fn malformed_entries_are_rejected() {
    for bad in [
        "http://example.com:notaport",
        "http://example.com:8080..70000",
        "http://example.com:99999",
        "http://self:notaport",
        "http://*:notaport",
        "http://[::1]:notaport",
        "http://*.example.com:8080..",
        "http://example.com:8080/p",
        "http://*.example.com/p",
        "http://127.0.0.0/24/p",
        "http://[::1junk",
        "http://*.",
        "http://*.:8080",
        "example.com:8080",
        "http://example%.com",
        "http://exa[mple.com",
        r"http://exa\mple.com",
        "http://example.com:80:90",
        "http://[vG.example]",
        "http://example.com//",
        "http://self//",
        "http://*.127.0.0.1",
        "http://*.[::1]",
        "http://a.*.example.com",
        "http://ex*ample.com",
        "h2c://example.com:80",
        "{http,https}://example.com",
        "http://{a,b}.com",
        "http://example.com:{80,443}",
        "*",
        "",
        "[::1]:8080",
    ] {
        assert!(parse_rule(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn ipv6_and_network_entries_parse_like_spin() {
    for good in [
        "http://[::1]",
        "http://[2001:db8::1]:443",
        "http://[::1]:*",
        "http://[::1]:8000..9000",
        "*://[::1]:80",
        "http://ff00::/8",
        "http://::1/128",
        "http://10.0.0.0/8",
        "http://2001:db8::/32:443",
        "http://self",
        "http://self.alt",
    ] {
        assert!(parse_rule(good).is_ok(), "{good:?} should parse");
    }
}

#[test]
fn insecure_allow_all_is_refused_as_in_spin_3() {
    let error = try_hosts(&["insecure:allow-all"]).unwrap_err();
    assert_eq!(error, AllowedHostsError::InsecureAllowAll);
    assert!(error.to_string().contains("use '*://*:*'"));
}

#[test]
fn self_allows_no_url_host() {
    // `self` is for relative requests, never a host named `self`.
    let allowed = hosts(&["http://self", "https://self.alt"]);
    assert_denies(
        &allowed,
        &[
            "http://self/x",
            "http://self.alt/x",
            "https://self.alt/x",
            "http://localhost",
        ],
    );
}

#[test]
fn postgres_connection_strings() {
    let allowed = hosts(&["postgres://db.example.com"]);
    for address in [
        "postgres://chat:secret@db.example.com/chat",
        "postgresql://db.example.com:5432/chat?sslmode=require",
        "postgres://u:p%40ss@db.example.com",
        "host=db.example.com port=5432 user=chat password='a b'",
        "host=db.example.com dbname=chat",
        "postgres:///chat?host=db.example.com",
    ] {
        assert!(allowed.allows_postgres_address(address), "{address}");
    }
    for address in [
        "postgres://db.example.com:5433/chat",
        "postgres://other.example.com/chat",
        "postgres://db.example.com,evil.example.com/chat",
        "host=db.example.com port=6000",
        "host=/var/run/postgresql",
        "host=db.example.com hostaddr=10.9.9.9",
        "postgres:///chat",
        "user=chat",
        "host='unterminated",
        "postgres://db.example.com:notaport/chat",
    ] {
        assert!(!allowed.allows_postgres_address(address), "{address}");
    }
}

#[test]
fn postgres_hosts_are_checked_with_the_postgres_scheme() {
    // Whatever scheme the string uses, Spin checks it as postgres://.
    assert!(!hosts(&["postgresql://db:5432"]).allows_postgres_address("postgresql://db/chat"));
    assert!(hosts(&["postgres://db"]).allows_postgres_address("postgresql://db/chat"));
    // An IP network entry covers addresses.
    assert!(hosts(&["postgres://10.0.0.0/8"]).allows_postgres_address("host=10.1.1.1"));
}

#[test]
fn project_manifest_allows_any_postgres_server_and_nothing_else() {
    let manifest = Manifest::parse(PROJECT_MANIFEST, Path::new("/srv/chat")).unwrap();
    let resolver = VariableResolver::new(&manifest, Vec::new(), BTreeMap::new()).unwrap();
    let history = AllowedHosts::parse(
        &manifest.components["history"].allowed_outbound_hosts,
        &resolver,
    )
    .unwrap();
    assert!(history.allows_postgres_address("postgres://chat:pw@127.0.0.1:54321/chat"));
    assert!(history.allows_postgres_address(
        "host=instance.database.cloud.databricks.com port=5432 sslmode=require"
    ));
    assert!(!history.allows_postgres_address("host=/tmp"));
    assert_denies(
        &history,
        &["https://example.com", "http://admin-schema.spin.internal"],
    );
}

#[test]
fn templated_entries_use_variable_values() {
    let allowed = hosts(&[
        "postgres://{{ db_host }}:{{ db_port }}",
        "https://{{api_host}}",
    ]);
    assert!(allowed.allows_postgres_address("postgres://db.example.com:6543/chat"));
    assert!(!allowed.allows_postgres_address("postgres://db.example.com/chat"));
    assert_allows(&allowed, &["https://api.example.com/v1"]);

    let resolver = resolver_with_env(&[("SPIN_VARIABLE_API_HOST", "api.internal")]);
    let allowed = AllowedHosts::parse(&["https://{{ api_host }}".to_owned()], &resolver).unwrap();
    assert_allows(&allowed, &["https://api.internal"]);
    assert_denies(&allowed, &["https://api.example.com"]);
    // Debug shows the entries as written, not their values.
    assert_eq!(
        format!("{allowed:?}"),
        "AllowedHosts([\"https://{{ api_host }}\"])"
    );
}

#[test]
fn entries_made_empty_by_variables_are_skipped() {
    let allowed = hosts(&[
        "https://{{ optional_host }}",
        "{{ optional_url }}",
        "https://example.com",
    ]);
    assert_allows(&allowed, &["https://example.com"]);
    // A non-HTTP scheme with an empty host is an error, as in Spin.
    let error = try_hosts(&["postgres://{{ optional_host }}"]).unwrap_err();
    assert!(error.to_string().starts_with("allowed_outbound_hosts entry \"postgres://{{ optional_host }}\": with variables substituted, invalid host"), "{error}");
}

#[test]
fn substituted_values_stay_out_of_error_messages() {
    let resolver = resolver_with_env(&[("SPIN_VARIABLE_API_HOST", "s3cret host")]);
    let error = AllowedHosts::parse(&["https://{{ api_host }}".to_owned()], &resolver).unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn templates_must_name_declared_variables() {
    assert_eq!(
        try_hosts(&["https://{{ nope }}"]).unwrap_err(),
        AllowedHostsError::Template {
            entry: "https://{{ nope }}".into(),
            error: TemplateError::UndeclaredVariable("nope".into()),
        }
    );
}

#[test]
fn service_chaining_wildcard_means_the_apps_components() {
    let allowed = hosts(&["http://*.spin.internal"]);
    assert_allows(
        &allowed,
        &["http://web.spin.internal/x", "http://history.spin.internal"],
    );
    assert_denies(
        &allowed,
        &[
            "http://nope.spin.internal",
            "http://a.web.spin.internal",
            "https://web.spin.internal",
            "http://spin.internal",
        ],
    );
    let one = hosts(&["http://history.spin.internal"]);
    assert_allows(&one, &["http://history.spin.internal/api/history"]);
    assert_denies(&one, &["http://web.spin.internal"]);
}

#[test]
fn service_chaining_targets() {
    assert_eq!(
        service_chaining_target("http://history.spin.internal/api/history").as_deref(),
        Some("history")
    );
    assert_eq!(
        service_chaining_target("http://admin-schema.spin.internal:8080/x").as_deref(),
        Some("admin-schema")
    );
    assert_eq!(service_chaining_target("http://a.b.spin.internal/"), None);
    assert_eq!(service_chaining_target("http://example.com/"), None);
    assert_eq!(service_chaining_target("/relative"), None);
    assert_eq!(service_chaining_target("not a url"), None);
}
