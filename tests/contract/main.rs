//! The black-box contract suite: `openapi.yaml` checked against real answers.
//!
//! By default it starts `chat-host` itself (no `dev_user_email`) on a fresh
//! database per test. To point it at another deployment of the app, such as
//! `spin up` or a deployed app:
//!
//! ```sh
//! CHAT_BASE_URL=http://127.0.0.1:3000 \
//! CHAT_DB_URL=postgres://user:password@host:5432/database \
//! CHAT_ADMIN_TOKEN=... \
//! cargo test -p chat-tests --test contract
//! ```
//!
//! `CHAT_DB_URL` (the database that app uses) is required there: the suite
//! seeds chats through SQL and checks what requests did to them. One test
//! posts a chat message, so the app's model is called once.
//! `CHAT_ADMIN_TOKEN` is needed by the admin routes' success cases. The
//! database-down and admin-disabled cases always run on local hosts started
//! with that configuration. `CHAT_FUZZ_SEED` replays a fuzz run and
//! `CHAT_FUZZ_REQUESTS` changes its size. Every answer any test receives is
//! validated against the description (see `chat_tests::contract::client`).

mod authorization;
mod database_down;
mod document;
mod fuzz;
mod routes;
mod support;
mod transport;
