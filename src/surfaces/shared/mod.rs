//! What the surfaces (REST API, web pages, CLI) share and none of them owns:
//! the operations they all offer, the listener's state, the API's error
//! shape, the in-memory API keys, the session lookup and the failed-login
//! limiter.

pub mod conventions;
pub mod error;
pub mod keys;
pub mod limiter;
pub mod ops;
pub mod session;
pub mod state;

pub use error::ApiError;
pub use state::AppState;
