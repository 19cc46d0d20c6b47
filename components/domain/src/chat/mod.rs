//! The chat: `POST /api/chat` and the routes around a streaming reply. The
//! request body (`request`), what is written and when (`conversation`),
//! what the model is asked with (`context`), the model-serving endpoint's
//! wire format (`serving`), relaying its stream (`relay`), following
//! (`follow`) or stopping (`stop`) a reply being written, and chats that
//! keep nothing (`temporary`).

pub mod context;
pub mod conversation;
pub mod follow;
pub mod relay;
pub mod request;
pub mod serving;
pub mod stop;
pub mod temporary;
