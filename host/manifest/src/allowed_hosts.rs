//! `allowed_outbound_hosts`, read and enforced as Spin does.
//!
//! An entry is `<scheme>://<host>[:<port>]`:
//! * scheme: a name or `*`;
//! * host: a name or IP address, `*`, `*.example.com` (any subdomain, not
//!   the domain itself), an IP network such as `10.0.0.0/8`, `self` /
//!   `self.alt` (relative requests to this app), or `*.spin.internal` (every
//!   component of the app, for service chaining);
//! * port: a number, `*`, or a range `start..end` (end excluded); when
//!   omitted, the scheme's well-known port, and a scheme without one is an
//!   error.
//!
//! Entries may contain `{{ variable }}` templates; an entry whose variables
//! make it empty (or just `http://` / `https://`) is skipped, so an optional
//! endpoint can be switched off by leaving its variable empty.

mod postgres;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use url::Host;

use crate::manifest::VariableDecl;
use crate::template::{Template, TemplateError};
use crate::variables::VariableResolver;

const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";

/// Why an `allowed_outbound_hosts` list cannot be used. Messages quote the
/// entry as written, never a value substituted into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedHostsError {
    /// Spin 2's escape hatch, refused since Spin 3.
    #[error(
        "'insecure:allow-all' is not allowed; use '*://*:*' if you really want to allow all outbound traffic"
    )]
    InsecureAllowAll,
    /// An entry that is not a valid host pattern.
    #[error("allowed_outbound_hosts entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    /// An entry whose template is malformed or names an undeclared variable.
    #[error("allowed_outbound_hosts entry {entry:?}: {error}")]
    Template { entry: String, error: TemplateError },
}

/// A component's parsed `allowed_outbound_hosts`. An empty list allows
/// nothing.
#[derive(Clone)]
pub struct AllowedHosts {
    /// The entries as written, for `Debug`: resolved entries may carry
    /// variable values.
    entries: Vec<String>,
    rules: Vec<HostRule>,
}

impl fmt::Debug for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AllowedHosts").field(&self.entries).finish()
    }
}

impl AllowedHosts {
    /// Resolves templates with `resolver` and parses every entry; also
    /// expands `*.spin.internal` to the app's components.
    pub fn parse(raw: &[String], resolver: &VariableResolver) -> Result<Self, AllowedHostsError> {
        let mut rules = Vec::with_capacity(raw.len());
        for entry in raw {
            let template = parse_template(entry)?;
            if template.is_literal() {
                rules.push(parse_rule(entry).map_err(|reason| invalid(entry, reason))?);
                continue;
            }
            let resolved =
                resolver
                    .render(&template)
                    .map_err(|error| AllowedHostsError::Template {
                        entry: entry.clone(),
                        error,
                    })?;
            if let Some(rule) = parse_resolved_rule(&resolved)
                .map_err(|reason| invalid(entry, format!("with variables substituted, {reason}")))?
            {
                rules.push(rule);
            }
        }
        let rules = expand_service_chaining(rules, resolver.component_ids());
        Ok(Self {
            entries: raw.to_vec(),
            rules,
        })
    }

    /// Whether a request to this absolute URL is allowed. A URL without a
    /// scheme is read as `https://`, as Spin's outbound HTTP does; an
    /// unparsable URL is denied.
    pub fn allows_url(&self, url: &str) -> bool {
        self.allows_address(url, "https")
    }

    /// Whether a connection to `host` (a name, IPv4 address or bracketed
    /// IPv6 address) is allowed; `port: None` means the scheme's well-known
    /// port.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        self.rules
            .iter()
            .any(|rule| rule.allows(scheme, &host, port))
    }

    /// Whether a Postgres connection string (URL form, `postgres://` or
    /// `postgresql://`, or `key=value` form) names only allowed servers. Like
    /// Spin, each host is checked as `postgres://<host>[:<port>]`, whatever
    /// scheme the string uses, and Unix sockets are refused. Stricter than
    /// Spin: `hostaddr` addresses are checked too, and a string that names
    /// no server at all is refused.
    pub fn allows_postgres_address(&self, address: &str) -> bool {
        match postgres::server_addresses(address) {
            Some(servers) if !servers.is_empty() => servers
                .iter()
                .all(|server| self.allows_address(server, "postgres")),
            _ => false,
        }
    }

    /// Spin's `OutboundUrl::parse` followed by the allow check: the URL is
    /// parsed as is, or with `fallback_scheme://` in front when that fails
    /// or yields no host.
    fn allows_address(&self, address: &str, fallback_scheme: &str) -> bool {
        let address = encode_userinfo(address);
        let parsed = match url::Url::parse(&address) {
            Ok(url) if url.has_host() => Some(url),
            _ => url::Url::parse(&format!("{fallback_scheme}://{address}")).ok(),
        };
        let Some(url) = parsed else { return false };
        let Some(host) = url.host_str() else {
            return false;
        };
        self.allows(url.scheme(), host, url.port())
    }
}

/// Checks a component's entries when the manifest is loaded: every literal
/// entry must parse, every template must name declared variables, and a
/// templated entry whose variables all have defaults must parse with them.
pub(crate) fn validate(
    raw: &[String],
    variables: &BTreeMap<String, VariableDecl>,
) -> Result<(), AllowedHostsError> {
    for entry in raw {
        let template = parse_template(entry)?;
        if template.is_literal() {
            parse_rule(entry).map_err(|reason| invalid(entry, reason))?;
            continue;
        }
        let mut all_have_defaults = true;
        let with_defaults = template.render(|name| {
            let declared = variables.get(name)?;
            all_have_defaults &= declared.default.is_some();
            Some(declared.default.as_deref().unwrap_or(""))
        });
        let with_defaults = with_defaults.map_err(|error| AllowedHostsError::Template {
            entry: entry.clone(),
            error,
        })?;
        // A required variable's value is only known at start-up.
        if all_have_defaults {
            parse_resolved_rule(&with_defaults).map_err(|reason| {
                invalid(
                    entry,
                    format!("with the variables' default values, {reason}"),
                )
            })?;
        }
    }
    Ok(())
}

/// The component a service-chaining URL (`http://<component>.spin.internal/...`)
/// is addressed to, if it is one.
pub fn service_chaining_target(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.authority()?.host().trim();
    let (component, domain) = host.split_once('.')?;
    (domain == SERVICE_CHAINING_DOMAIN).then(|| component.to_owned())
}

fn parse_template(entry: &str) -> Result<Template, AllowedHostsError> {
    if entry.trim() == "insecure:allow-all" {
        return Err(AllowedHostsError::InsecureAllowAll);
    }
    Template::parse(entry).map_err(|error| AllowedHostsError::Template {
        entry: entry.to_owned(),
        error,
    })
}

fn invalid(entry: &str, reason: String) -> AllowedHostsError {
    AllowedHostsError::Invalid {
        entry: entry.to_owned(),
        reason,
    }
}

/// A templated entry after substitution: empty ones are skipped.
fn parse_resolved_rule(resolved: &str) -> Result<Option<HostRule>, String> {
    if matches!(resolved, "" | "http://" | "https://") {
        return Ok(None);
    }
    parse_rule(resolved).map(Some)
}

#[derive(Debug, Clone)]
struct HostRule {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone)]
enum SchemePattern {
    Any,
    Exactly(String),
}

#[derive(Debug, Clone)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    AnySubdomainOf(String),
    /// `self` / `self.alt`: only relative requests, never a URL host.
    ToSelf,
    Exactly(Host),
    Network(IpNetwork),
}

#[derive(Debug, Clone)]
enum PortPattern {
    Any,
    Exactly(u16),
    /// `start..end`, end excluded as in Spin.
    Range(u16, u16),
}

impl HostRule {
    fn allows(&self, scheme: &str, host: &Host, port: Option<u16>) -> bool {
        self.scheme.allows(scheme) && self.host.allows(host) && self.port.allows(port, scheme)
    }
}

impl SchemePattern {
    fn allows(&self, scheme: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exactly(allowed) => allowed == scheme,
        }
    }
}

impl HostPattern {
    fn allows(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::AnySubdomainOf(suffix), Host::Domain(domain)) => {
                domain.ends_with(suffix.as_str())
            }
            (Self::Exactly(allowed), host) => allowed == host,
            (Self::Network(network), Host::Ipv4(ip)) => network.contains(IpAddr::V4(*ip)),
            (Self::Network(network), Host::Ipv6(ip)) => network.contains(IpAddr::V6(*ip)),
            (Self::AnySubdomainOf(_) | Self::Network(_) | Self::ToSelf, _) => false,
        }
    }
}

impl PortPattern {
    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self, Self::Any);
        };
        match *self {
            Self::Any => true,
            Self::Exactly(allowed) => allowed == port,
            Self::Range(start, end) => (start..end).contains(&port),
        }
    }
}

/// The ports Spin assumes when an entry or URL gives none.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Parses one entry. Reasons describe the problem without quoting the
/// entry, which may hold substituted values.
fn parse_rule(entry: &str) -> Result<HostRule, String> {
    let entry = entry.trim();
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(if matches!(entry, "*" | ":" | "" | "?") {
            "hosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed \
             for each; '*://*:*' allows all outbound networking"
                .to_owned()
        } else {
            "has no scheme (such as 'https://' or '*://')".to_owned()
        });
    };
    // Split off the port, unless the colon belongs to the host (IPv6).
    let (host, port) = match rest.rsplit_once(':') {
        None => (rest, ""),
        Some((host, "")) => (host, ""),
        Some(_) if parse_host(rest).is_ok() => (rest, ""),
        Some((host, tail)) => match tail.split_once('/') {
            Some((_, path)) if !path.is_empty() => return Err("must not include a path".to_owned()),
            Some((port, _)) => (host, port),
            None => (host, tail),
        },
    };
    let port = parse_port(port, scheme)?;
    let scheme = parse_scheme(scheme)?;
    let host = parse_host(host)?;
    Ok(HostRule { scheme, host, port })
}

fn parse_scheme(scheme: &str) -> Result<SchemePattern, String> {
    if scheme == "*" {
        return Ok(SchemePattern::Any);
    }
    if scheme.starts_with('{') {
        return Err("scheme lists are not supported".to_owned());
    }
    if !scheme.chars().all(char::is_alphabetic) {
        return Err("the scheme may contain only letters, or be '*'".to_owned());
    }
    Ok(SchemePattern::Exactly(scheme.to_owned()))
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    let host = host.trim();
    match host {
        "*" => return Ok(HostPattern::Any),
        "self" | "self.alt" => return Ok(HostPattern::ToSelf),
        _ if host.starts_with('{') => return Err("host lists are not supported".to_owned()),
        _ => {}
    }
    if let Some(network) = IpNetwork::parse(host) {
        return Ok(HostPattern::Network(network));
    }
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.contains('/') {
        return Err("must not include a path".to_owned());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err("wildcards are allowed only as a leading '*.'".to_owned());
        }
        return match Host::parse(domain) {
            Ok(Host::Domain(domain)) => Ok(HostPattern::AnySubdomainOf(format!(".{domain}"))),
            Ok(_) => Err("a '*.' wildcard must be followed by a domain name".to_owned()),
            Err(error) => Err(format!("invalid host: {error}")),
        };
    }
    if host.contains('*') {
        return Err("wildcards are allowed only as a leading '*.'".to_owned());
    }
    Host::parse(host)
        .map(HostPattern::Exactly)
        .map_err(|error| format!("invalid host: {error}"))
}

fn parse_port(port: &str, scheme: &str) -> Result<PortPattern, String> {
    match port {
        "" => well_known_port(scheme)
            .map(PortPattern::Exactly)
            .ok_or_else(|| {
                "no port is given and the scheme has no well-known port; add ':<port>' or ':*'"
                    .to_owned()
            }),
        "*" => Ok(PortPattern::Any),
        _ if port.starts_with('{') => Err("port lists are not supported".to_owned()),
        _ => {
            let number = |text: &str| {
                text.parse::<u16>()
                    .map_err(|_| "the port must be a number, a range or '*'".to_owned())
            };
            match port.split_once("..") {
                Some((start, end)) => Ok(PortPattern::Range(number(start)?, number(end)?)),
                None => Ok(PortPattern::Exactly(number(port)?)),
            }
        }
    }
}

/// `*.spin.internal` means each component of the app, not any name.
fn expand_service_chaining(rules: Vec<HostRule>, component_ids: &[String]) -> Vec<HostRule> {
    let wildcard_suffix = format!(".{SERVICE_CHAINING_DOMAIN}");
    rules
        .into_iter()
        .flat_map(|rule| match &rule.host {
            HostPattern::AnySubdomainOf(suffix) if *suffix == wildcard_suffix => component_ids
                .iter()
                .map(|id| HostRule {
                    host: HostPattern::Exactly(Host::Domain(format!("{id}{wildcard_suffix}"))),
                    ..rule.clone()
                })
                .collect(),
            _ => vec![rule],
        })
        .collect()
}

/// An IP network in CIDR notation; host bits are ignored (`10.1.2.3/8` is
/// `10.0.0.0/8`).
#[derive(Debug, Clone, Copy)]
struct IpNetwork {
    address: IpAddr,
    prefix_len: u8,
}

impl IpNetwork {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix_len) = text.split_once('/')?;
        let address: IpAddr = address.parse().ok()?;
        let prefix_len: u8 = prefix_len.parse().ok()?;
        let max_len = if address.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max_len).then_some(Self {
            address,
            prefix_len,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Percent-encodes the user-info part of a URL so that passwords with `#`,
/// `/` or `@` do not confuse the URL parser (only the host matters here).
fn encode_userinfo(url: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let Some(at) = url.find('@') else {
        return url.to_owned();
    };
    let userinfo_start = url.find("://").map_or(0, |index| index + 3);
    let path_start = url[userinfo_start..]
        .find('/')
        .map_or(usize::MAX, |index| index + userinfo_start);
    if at < userinfo_start || at >= path_start {
        return url.to_owned();
    }
    let userinfo = percent_encoding::utf8_percent_encode(&url[userinfo_start..at], UNRESERVED);
    format!("{}{userinfo}{}", &url[..userinfo_start], &url[at..])
}

#[cfg(test)]
mod tests;
