//! App variables, read per request through `spin:variables` (they are cheap host
//! calls, and reading them per request keeps no configuration in globals).

use spin_sdk::variables;

pub const DB_URL: &str = "db_url";
pub const DEV_USER_EMAIL: &str = "dev_user_email";

/// A variable that exists but could not be read.
#[derive(Debug, thiserror::Error)]
#[error("could not read the {name} variable: {detail}")]
pub struct ConfigError {
    name: String,
    detail: String,
}

/// The variable's value, trimmed; `None` when it is empty or blank, or not
/// declared for this component (both mean "not set").
pub async fn variable(name: &str) -> Result<Option<String>, ConfigError> {
    match variables::get(name).await {
        Ok(value) => {
            let value = value.trim();
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(error) => Err(ConfigError {
            name: name.to_owned(),
            detail: format!("{error:?}"),
        }),
    }
}
