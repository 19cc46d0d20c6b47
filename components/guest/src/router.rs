//! Serving a request by the route table (`chat_domain::http::routes`): the
//! one place a request is refused for its path, its method or a malformed
//! id, before any handler of the component runs.

use crate::failure::Failure;
use crate::request::Request;
use crate::response::{self, HttpResponse};
use chat_domain::http::routes::{self, Found, Handler};

/// Answers `request` with `handle`, given the route the table finds for it
/// among this component's handlers (`own` keeps them). A route of another
/// component is a 404 here: `spin.toml` sent this component a path it does
/// not serve, or an internal route was asked for from outside.
pub async fn serve<Own, Handle>(
    request: spin_sdk::http::Request,
    own: impl Fn(Handler) -> Option<Own>,
    handle: Handle,
) -> HttpResponse
where
    Handle: AsyncFnOnce(Request, Found<Own>) -> Result<HttpResponse, Failure>,
{
    serve_guarded(request, async |_| Ok(()), own, handle).await
}

/// [`serve`], with `guard` deciding first whether the caller may learn
/// anything at all, even which paths exist (the admin routes' token).
pub async fn serve_guarded<Own, Handle>(
    request: spin_sdk::http::Request,
    guard: impl AsyncFnOnce(&Request) -> Result<(), Failure>,
    own: impl Fn(Handler) -> Option<Own>,
    handle: Handle,
) -> HttpResponse
where
    Handle: AsyncFnOnce(Request, Found<Own>) -> Result<HttpResponse, Failure>,
{
    response::serve(request, async |request: Request| {
        guard(&request).await?;
        let found = routes::find(request.method().as_str(), request.uri().path(), own)?;
        handle(request, found).await
    })
    .await
}
