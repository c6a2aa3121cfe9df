//! The plain types an admin configures, and their validation: a
//! [`webhook`] with its [`auth`] kind, [`signing`], [`retry`] policy and
//! batch. No HTTP client, no store, no templates engine: a spec can be
//! checked field by field anywhere.

pub mod auth;
pub mod field;
pub mod request;
pub mod retry;
pub mod signing;
pub mod webhook;
