//! The circuit breaker (`chat_contract::circuit`) as components keep it: in
//! the key-value store, which every instance sees (under `spin up` as well
//! as under chat-host, whose own breaker in front of its pool trips first
//! and answers at once). Each instance remembers the state it last read or
//! wrote for a moment, so a request with the breaker closed opens no store.

use crate::postgres::DbError;
use crate::store::{self, Remembered, Store};
use chat_contract::circuit::{Admission, Circuit};

const KEY: &str = "database-circuit";

static LAST_SEEN: Remembered<Circuit> = Remembered::nothing_yet();

/// Leave to use the database for one unit of work.
pub struct Gate {
    /// The store, when admitting this work needed it.
    store: Option<Store>,
    /// This request is the probe after a cool-down.
    probing: bool,
}

/// Whether the database may be used now: an error while the breaker is open
/// (ephemeral mode), so the request skips the database at once.
pub async fn admit() -> Result<Gate, DbError> {
    let now = store::now_ms();
    let pass = Gate {
        store: None,
        probing: false,
    };
    match LAST_SEEN.trusted(now).map(|circuit| circuit.admit(now)) {
        Some(Admission::Pass) => return Ok(pass),
        Some(Admission::Skip { for_about }) => return Err(DbError::Skipped { for_about }),
        // Only the store decides which request probes.
        Some(Admission::Probe) | None => {}
    }
    let Some(store) = store::open().await else {
        LAST_SEEN.remember(Circuit::Closed, now);
        return Ok(pass);
    };
    let circuit = Circuit::decode(store.get(KEY).await.ok().flatten().as_deref());
    LAST_SEEN.remember(circuit, now);
    match circuit.admit(now) {
        Admission::Pass => Ok(Gate {
            store: Some(store),
            probing: false,
        }),
        Admission::Probe => {
            save(&store, Circuit::probing(now), now).await;
            Ok(Gate {
                store: Some(store),
                probing: true,
            })
        }
        Admission::Skip { for_about } => Err(DbError::Skipped { for_about }),
    }
}

/// Whether the breaker lets work through now without a probe. Read only:
/// background work, which asks this, never probes, opens or closes it.
pub async fn is_closed() -> bool {
    let now = store::now_ms();
    let circuit = match LAST_SEEN.trusted(now) {
        Some(circuit) => circuit,
        None => {
            let Some(store) = store::open().await else {
                return true;
            };
            let circuit = Circuit::decode(store.get(KEY).await.ok().flatten().as_deref());
            LAST_SEEN.remember(circuit, now);
            circuit
        }
    };
    circuit.admit(now) == Admission::Pass
}

impl Gate {
    /// Records what the work found: the database out of reach opens the
    /// breaker; any answer from it closes a breaker this request probed.
    pub async fn record(self, database_unreachable: bool) {
        let now = store::now_ms();
        if database_unreachable {
            let store = match self.store {
                Some(store) => Some(store),
                None => store::open().await,
            };
            let tripped = Circuit::tripped(now);
            match store {
                Some(store) => save(&store, tripped, now).await,
                None => LAST_SEEN.remember(tripped, now),
            }
            if !self.probing {
                crate::log::note(
                    "the database is out of reach: ephemeral mode (requests skip it; \
                     one probes it again after the cool-down)",
                );
            }
        } else if self.probing
            && let Some(store) = self.store
        {
            save(&store, Circuit::Closed, now).await;
            crate::log::note("the database answers again: leaving ephemeral mode");
        }
    }
}

/// Stores the state for every instance and remembers it for this one.
async fn save(store: &Store, circuit: Circuit, now: u64) {
    LAST_SEEN.remember(circuit, now);
    let saved = match circuit.encode() {
        Some(text) => store.set(KEY, text.as_bytes()).await,
        None => store.delete(KEY).await,
    };
    if let Err(error) = saved {
        crate::log::failure("saving the circuit breaker's state", &format!("{error:?}"));
    }
}
