//! Trusting the gateway. Identity comes from the gateway's `x-forwarded-*`
//! headers as sent, so anyone who can reach the app without passing through
//! the gateway could claim to be anyone. A deployment that cannot guarantee
//! that the gateway is the only way in configures a shared secret: the
//! gateway adds a header with the secret to every request, and the app
//! refuses (401, no identity) every request to an identity-bearing route
//! without it. Routes that need no identity (the web UI's files) stay open.

use crate::ApiError;

/// The app variables that configure the check.
pub mod variables {
    /// The name of the header the gateway sends the secret in.
    pub const HEADER: &str = "gateway_secret_header";
    /// The secret itself.
    pub const SECRET: &str = "gateway_secret";
}

/// A configured shared secret: the header that carries it and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewaySecret {
    header: String,
    secret: String,
}

impl std::fmt::Debug for GatewaySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySecret")
            .field("header", &self.header)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl GatewaySecret {
    /// The check the two variables configure: none when both are unset, an
    /// error when only one is (a half-configured check fails closed rather
    /// than letting everyone in).
    pub fn from_settings(
        header: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Option<Self>, ApiError> {
        match (header, secret) {
            (None, None) => Ok(None),
            (Some(header), Some(secret)) => Ok(Some(Self {
                header: header.to_ascii_lowercase(),
                secret: secret.to_owned(),
            })),
            (Some(_), None) | (None, Some(_)) => Err(ApiError::internal(format!(
                "The server is misconfigured: set both {} and {}, or neither.",
                variables::HEADER,
                variables::SECRET
            ))),
        }
    }

    /// The header's name, lower-case.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// 401 unless `sent` (the configured header's value) is the secret. The
    /// comparison takes the same time wherever the first difference is.
    pub fn verify(&self, sent: Option<&str>) -> Result<(), ApiError> {
        let matches =
            sent.is_some_and(|sent| constant_time_eq(sent.as_bytes(), self.secret.as_bytes()));
        if matches {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "Authentication required: this request did not come through the gateway.",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> GatewaySecret {
        GatewaySecret::from_settings(Some("X-Gateway-Secret"), Some("s3cret"))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn unset_means_no_check() {
        assert_eq!(GatewaySecret::from_settings(None, None), Ok(None));
    }

    #[test]
    fn half_configured_fails_closed() {
        for (header, secret) in [(Some("x-gateway-secret"), None), (None, Some("s3cret"))] {
            let error = GatewaySecret::from_settings(header, secret).unwrap_err();
            assert_eq!(error.status, 500);
            assert!(
                error.message.contains(variables::HEADER),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn the_header_name_is_lower_case() {
        assert_eq!(configured().header(), "x-gateway-secret");
    }

    #[test]
    fn only_the_exact_secret_passes() {
        let check = configured();
        assert_eq!(check.verify(Some("s3cret")), Ok(()));
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret "),
            Some("S3CRET"),
            Some("s3cret2"),
        ] {
            assert_eq!(check.verify(wrong).unwrap_err().status, 401, "{wrong:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", configured());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
