//! Database passwords that change while the app runs (Lakebase hands out
//! OAuth tokens that last about an hour): read from a file, printed by a
//! command, or asked of whoever issues them (the Databricks workspace),
//! again for every new connection, so a rotated password is used from the
//! next connection on and open connections keep working.

use deadpool_postgres::Connect;
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long the password command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// The file's content, without its final line break.
    File(PathBuf),
    /// What the command (run by `sh -c`) prints, without its final line break.
    Command(String),
    /// A credential from its issuer, such as a Lakebase credential from the
    /// workspace.
    Issued(Arc<dyn PasswordIssuer>),
}

/// Hands out short-lived database passwords; the issuer decides how long it
/// keeps one before asking for the next.
pub trait PasswordIssuer: std::fmt::Debug + Send + Sync {
    /// The password for a new connection.
    fn password(&self) -> BoxFuture<'_, anyhow::Result<String>>;
}

impl PasswordSource {
    pub async fn read(&self) -> Result<String, String> {
        let text = match self {
            Self::File(path) => tokio::fs::read_to_string(path).await.map_err(|error| {
                format!(
                    "cannot read the database password from {}: {error}",
                    path.display()
                )
            })?,
            Self::Command(command) => run(command).await?,
            Self::Issued(issuer) => {
                return issuer
                    .password()
                    .await
                    .map_err(|error| format!("{error:#}"));
            }
        };
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    }
}

async fn run(command: &str) -> Result<String, String> {
    let output = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, output)
        .await
        .map_err(|_| {
            format!("the database password command did not finish within {COMMAND_TIMEOUT:?}")
        })?
        .map_err(|error| format!("cannot run the database password command: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "the database password command failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| "the database password command printed something that is not UTF-8".to_owned())
}

/// Connects each new pool connection with the password its source gives
/// at that moment.
pub struct RotatingPassword {
    pub source: PasswordSource,
    pub tls: MakeRustlsConnect,
}

impl Connect for RotatingPassword {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let mut config = config.clone();
        Box::pin(async move {
            match self.source.read().await {
                Ok(password) => {
                    config.password(password);
                }
                // tokio-postgres errors cannot be made here: the server's
                // refusal of the connection then says what went wrong.
                Err(error) => tracing::error!("{error}; connecting without a password"),
            }
            let (client, connection) = config.connect(self.tls.clone()).await?;
            let task = tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!("database connection ended: {error}");
                }
            });
            Ok((client, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_or_a_command_gives_the_password_read_anew_each_time() {
        let file = std::env::temp_dir().join(format!("pw-{}", rand::random::<u64>()));
        std::fs::write(&file, "first\n").unwrap();
        let from_file = PasswordSource::File(file.clone());
        let from_command = PasswordSource::Command(format!("cat '{}'", file.display()));
        assert_eq!(from_file.read().await.unwrap(), "first");
        std::fs::write(&file, "second\r\n").unwrap();
        assert_eq!(from_file.read().await.unwrap(), "second");
        assert_eq!(from_command.read().await.unwrap(), "second");
        std::fs::remove_file(&file).unwrap();
        assert!(from_file.read().await.unwrap_err().contains("cannot read"));
        let failing = PasswordSource::Command("echo nope >&2; exit 3".to_owned());
        let error = failing.read().await.unwrap_err();
        assert!(error.contains("nope"), "{error}");
    }
}
