//! What turns a webhook's settings into a request and decides about its
//! answer: templates ([`render`]), outgoing authentication and the token
//! flow ([`auth`]), signatures ([`sign`]), retry timing ([`retry`]), the one
//! HTTP client ([`http`]), e-mail alerts ([`mail`]) and secret masking
//! ([`mask`]); plus password and
//! key hashing ([`access`]). Engines import the spec and base layers, never
//! the store or the pipeline.

pub mod access;
pub mod auth;
pub mod check;
pub mod http;
pub mod mail;
pub mod mask;
pub mod render;
pub mod retry;
pub mod sign;
