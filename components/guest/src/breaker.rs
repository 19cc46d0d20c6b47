//! The circuit breaker as components keep it: in the key-value store, which
//! every instance sees (under `spin up` as well as under chat-host, whose own
//! breaker in front of its pool trips first and answers at once).

use crate::postgres::DbError;
use crate::store;
use chat_domain::circuit::{Admission, Circuit};
use spin_sdk::key_value::Store;

const KEY: &str = "database-circuit";

/// Leave to use the database for one unit of work.
pub struct Gate {
    store: Option<Store>,
    /// This request is the probe after a cool-down.
    probing: bool,
}

/// Whether the database may be used now: an error while the breaker is open
/// (ephemeral mode), so the request skips the database at once.
pub async fn admit() -> Result<Gate, DbError> {
    let Some(store) = store::open().await else {
        return Ok(Gate {
            store: None,
            probing: false,
        });
    };
    let stored = store.get(KEY).await.ok().flatten();
    let now = store::now_ms();
    match Circuit::decode(stored.as_deref()).admit(now) {
        Admission::Pass => Ok(Gate {
            store: Some(store),
            probing: false,
        }),
        Admission::Probe => {
            save(&store, Circuit::probing(now)).await;
            Ok(Gate {
                store: Some(store),
                probing: true,
            })
        }
        Admission::Skip { for_about } => Err(DbError::Skipped { for_about }),
    }
}

impl Gate {
    /// The key-value store this gate read the breaker from, for the rest of
    /// the work (one open per request).
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Records what the work found: the database out of reach opens the
    /// breaker; any answer from it closes a breaker this request probed.
    pub async fn record(self, database_unreachable: bool) {
        let Some(store) = self.store else { return };
        if database_unreachable {
            save(&store, Circuit::tripped(store::now_ms())).await;
            if !self.probing {
                crate::log::note(
                    "the database is out of reach: ephemeral mode (requests skip it; \
                     one probes it again after the cool-down)",
                );
            }
        } else if self.probing {
            save(&store, Circuit::Closed).await;
            crate::log::note("the database answers again: leaving ephemeral mode");
        }
    }
}

async fn save(store: &Store, circuit: Circuit) {
    let saved = match circuit.encode() {
        Some(text) => store.set(KEY, text.as_bytes()).await,
        None => store.delete(KEY).await,
    };
    if let Err(error) = saved {
        crate::log::failure("saving the circuit breaker's state", &format!("{error:?}"));
    }
}
