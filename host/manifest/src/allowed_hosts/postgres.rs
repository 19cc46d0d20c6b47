//! The servers a Postgres connection string points at, read the way
//! tokio-postgres reads it (Spin checks what tokio-postgres would connect
//! to). Only what decides the destination is interpreted: `host`, `port` and
//! `hostaddr`; other options are left for the driver to validate.

use std::net::IpAddr;

use percent_encoding::percent_decode_str;

const DEFAULT_PORT: u16 = 5432;

/// `host[:port]` for every server the string names, or `None` when it is
/// malformed or names a Unix socket (which a component may never use).
pub(super) fn server_addresses(connection_string: &str) -> Option<Vec<String>> {
    let mut servers = Servers::default();
    match ["postgres://", "postgresql://"]
        .iter()
        .find_map(|prefix| connection_string.strip_prefix(prefix))
    {
        Some(url_rest) => servers.read_url(url_rest)?,
        None => servers.read_key_values(connection_string)?,
    }
    servers.addresses()
}

#[derive(Default)]
struct Servers {
    /// `None` for a Unix socket directory.
    hosts: Vec<Option<String>>,
    hostaddrs: Vec<IpAddr>,
    ports: Vec<u16>,
}

impl Servers {
    fn addresses(&self) -> Option<Vec<String>> {
        // A host's port is the one at its index, or the only one given.
        let port_for = |index: usize| {
            let port = self.ports.get(index).or(match self.ports.as_slice() {
                [only] => Some(only),
                _ => None,
            });
            port.map(|port| format!(":{port}")).unwrap_or_default()
        };
        let hosts = self.hosts.iter().enumerate().map(|(index, host)| {
            host.as_ref()
                .map(|host| format!("{host}{}", port_for(index)))
        });
        let hostaddrs = self
            .hostaddrs
            .iter()
            .enumerate()
            .map(|(index, addr)| Some(format!("{addr}{}", port_for(index))));
        hosts.chain(hostaddrs).collect()
    }

    fn add_host(&mut self, host: &str) {
        self.hosts
            .push((!host.starts_with('/')).then(|| host.to_owned()));
    }

    fn add_param(&mut self, key: &str, value: &str) -> Option<()> {
        match key {
            "host" => value.split(',').for_each(|host| self.add_host(host)),
            "hostaddr" => {
                for addr in value.split(',') {
                    self.hostaddrs.push(addr.parse().ok()?);
                }
            }
            "port" => {
                for port in value.split(',') {
                    self.ports.push(if port.is_empty() {
                        DEFAULT_PORT
                    } else {
                        port.parse().ok()?
                    });
                }
            }
            _ => {}
        }
        Some(())
    }

    /// `[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`
    fn read_url(&mut self, rest: &str) -> Option<()> {
        // Like libpq, everything up to the first `@` is credentials; the
        // user name must decode.
        let rest = match rest.split_once('@') {
            Some((credentials, after)) => {
                decode(credentials.split(':').next().unwrap_or_default())?;
                after
            }
            None => rest,
        };
        let hosts_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (hosts, after_hosts) = rest.split_at(hosts_end);
        if !hosts.is_empty() {
            for chunk in hosts.split(',') {
                let (host, port) = split_host_port(chunk)?;
                self.add_host(&decode(host)?);
                self.add_param("port", &decode(port.unwrap_or_default())?)?;
            }
        }
        let Some((_, mut query)) = after_hosts.split_once('?') else {
            return Some(());
        };
        while !query.is_empty() {
            let (key, after_key) = query.split_once('=')?;
            let (value, after_value) = after_key.split_once('&').unwrap_or((after_key, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            // A `host` in the query is one host, commas and all.
            if key == "host" {
                self.add_host(&value);
            } else {
                self.add_param(&key, &value)?;
            }
            query = after_value;
        }
        Some(())
    }

    /// `key=value key='quoted value' ...`, backslash escaping any character.
    fn read_key_values(&mut self, text: &str) -> Option<()> {
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
                key.push(c);
            }
            if key.is_empty() {
                // tokio-postgres stops reading here, even before a stray `=`.
                return Some(());
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            chars.next_if_eq(&'=')?;
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let quoted = chars.next_if_eq(&'\'').is_some();
            let mut value = String::new();
            loop {
                match chars.peek() {
                    None if quoted => return None,
                    Some('\'') if quoted => {
                        chars.next();
                        break;
                    }
                    Some(c) if !quoted && c.is_whitespace() => break,
                    None => break,
                    Some('\\') => {
                        chars.next();
                        value.extend(chars.next());
                    }
                    Some(&c) => {
                        chars.next();
                        value.push(c);
                    }
                }
            }
            if value.is_empty() && !quoted {
                return None;
            }
            self.add_param(&key, &value)?;
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(chunk: &str) -> Option<(&str, Option<&str>)> {
    let Some(bracketed) = chunk.strip_prefix('[') else {
        return Some(match chunk.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (chunk, None),
        });
    };
    let (host, after) = bracketed.split_once(']')?;
    match after {
        "" => Some((host, None)),
        _ => Some((host, Some(after.strip_prefix(':')?))),
    }
}

fn decode(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(s: &str) -> Option<Vec<String>> {
        server_addresses(s)
    }

    #[test]
    fn url_form() {
        assert_eq!(
            servers("postgres://u:p@db.example.com:6543/chat?sslmode=require").unwrap(),
            ["db.example.com:6543"]
        );
        assert_eq!(
            servers("postgresql://db.example.com/chat").unwrap(),
            ["db.example.com:5432"]
        );
        assert_eq!(
            servers("postgres://h1,h2:5433/db").unwrap(),
            ["h1:5432", "h2:5433"]
        );
        assert_eq!(servers("postgres://%68ost").unwrap(), ["host:5432"]);
        assert_eq!(servers("postgres://u:p%40ss@h").unwrap(), ["h:5432"]);
        assert_eq!(servers("postgres://[::1]:5000/db").unwrap(), ["::1:5000"]);
        assert_eq!(
            servers("postgres:///db?host=q.example.com&port=7000").unwrap(),
            ["q.example.com:7000"]
        );
        assert_eq!(
            servers("postgres://db/x?hostaddr=10.0.0.1").unwrap(),
            ["db:5432", "10.0.0.1:5432"]
        );
        assert_eq!(servers("postgres:///db").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn key_value_form() {
        assert_eq!(
            servers("host=db.example.com port=6543 user=chat").unwrap(),
            ["db.example.com:6543"]
        );
        assert_eq!(
            servers("  host = 'db.example.com'  dbname=x ").unwrap(),
            ["db.example.com"]
        );
        assert_eq!(servers("host=h1,h2 port=1,2").unwrap(), ["h1:1", "h2:2"]);
        assert_eq!(servers("host=h1,h2 port=1,2,3").unwrap(), ["h1:1", "h2:2"]);
        assert_eq!(servers("host=h1,h2 port=1").unwrap(), ["h1:1", "h2:1"]);
        assert_eq!(servers("password='it\\'s' host=h").unwrap(), ["h"]);
        assert_eq!(
            servers("hostaddr=127.0.0.1 port=5433").unwrap(),
            ["127.0.0.1:5433"]
        );
    }

    #[test]
    fn unix_sockets_and_malformed_strings_name_no_usable_server() {
        for bad in [
            "host=/var/run/postgresql",
            "postgres://%2Fvar%2Frun%2Fpostgresql/db",
            "host=db port=notanumber",
            "host=db port=",
            "host='unterminated",
            "host",
            "hostaddr=db.example.com",
            "postgres://[::1/db",
            "postgres://h/db?sslmode",
        ] {
            assert_eq!(servers(bad), None, "{bad}");
        }
    }
}
