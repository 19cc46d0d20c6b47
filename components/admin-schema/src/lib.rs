//! The admin-schema component: schema status and migration under `/admin`,
//! for operators holding the `admin_token`.

use chat_domain::admin;
use chat_domain::http::routes::{AdminHandler, Found, Handler};
use chat_guest::request::{Request, header_text};
use chat_guest::response::{self, HttpResponse};
use chat_guest::router;
use chat_guest::{Db, Failure, config, schema};
use spin_sdk::http::StatusCode;

const ADMIN_TOKEN: &str = "admin_token";

/// Authorises before routing, so callers without the token learn nothing
/// about routes.
#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Admin(handler) => Some(handler),
        _ => None,
    };
    router::serve_guarded(request, authorize, own, route).await
}

async fn authorize(request: &Request) -> Result<(), Failure> {
    let admin_token = config::variable(ADMIN_TOKEN).await?;
    let authorization = header_text(request.headers(), "authorization");
    Ok(admin::authorize(authorization, admin_token.as_deref())?)
}

async fn route(_: Request, found: Found<AdminHandler>) -> Result<HttpResponse, Failure> {
    match found.handler {
        AdminHandler::SchemaStatus => {
            let status = schema::schema_status(&Db::connect().await?).await?;
            Ok(response::json(StatusCode::OK, &status))
        }
        AdminHandler::Migrate => {
            let report = schema::migrate(&Db::connect().await?).await?;
            Ok(response::json(StatusCode::OK, &report))
        }
    }
}
