//! The `GET /api/session` answer.

use crate::identity::Identity;
use serde::Serialize;

/// `{"user":{"id","email","name"},"authenticated":bool}`; `name` is `null`
/// when the gateway sent no preferred username.
#[derive(Debug, Serialize)]
pub struct SessionView<'a> {
    pub user: SessionUser<'a>,
    pub authenticated: bool,
}

#[derive(Debug, Serialize)]
pub struct SessionUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
}

impl<'a> From<&'a Identity> for SessionView<'a> {
    fn from(identity: &'a Identity) -> Self {
        Self {
            user: SessionUser {
                id: &identity.user_id,
                email: &identity.email,
                name: identity.name.as_deref(),
            },
            authenticated: identity.authenticated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_the_seed_shape_without_the_token() {
        let identity = Identity {
            user_id: "ada@example.com".into(),
            email: "ada@example.com".into(),
            name: Some("ada".into()),
            authenticated: true,
            access_token: Some("secret".into()),
        };
        assert_eq!(
            serde_json::to_value(SessionView::from(&identity)).unwrap(),
            serde_json::json!({
                "user": {"id": "ada@example.com", "email": "ada@example.com", "name": "ada"},
                "authenticated": true
            })
        );
    }

    #[test]
    fn missing_name_is_null() {
        let identity = Identity {
            user_id: "dev@example.com".into(),
            email: "dev@example.com".into(),
            name: None,
            authenticated: false,
            access_token: None,
        };
        let json = serde_json::to_value(SessionView::from(&identity)).unwrap();
        assert_eq!(json["user"]["name"], serde_json::Value::Null);
        assert_eq!(json["authenticated"], false);
    }
}
