//! The admin-schema component: schema status and migration under `/admin`,
//! for operators holding the `admin_token`.

use chat_domain::admin;
use chat_domain::http::routes::no_route;
use chat_guest::request::{Request, allow_only, header_text};
use chat_guest::response::{self, HttpResponse};
use chat_guest::{Db, Failure, config, schema};
use spin_sdk::http::StatusCode;

const ADMIN_TOKEN: &str = "admin_token";

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    response::serve(request, route).await
}

/// Authorises first, so callers without the token learn nothing about routes.
async fn route(request: Request) -> Result<HttpResponse, Failure> {
    let admin_token = config::variable(ADMIN_TOKEN).await?;
    let authorization = header_text(request.headers(), "authorization");
    admin::authorize(authorization, admin_token.as_deref())?;
    match request.uri().path() {
        "/admin/schema" => {
            allow_only(request.method(), "GET")?;
            let status = schema::schema_status(&Db::connect().await?).await?;
            Ok(response::json(StatusCode::OK, &status))
        }
        "/admin/schema/migrate" => {
            allow_only(request.method(), "POST")?;
            let report = schema::migrate(&Db::connect().await?).await?;
            Ok(response::json(StatusCode::OK, &report))
        }
        path => Err(no_route(path).into()),
    }
}
