//! The surfaces people and programs drive herald through: the REST API
//! ([`api`]), the web admin ([`web`]), the command line ([`cli`]), and what
//! they share ([`shared`]).

pub mod api;
pub mod cli;
pub mod shared;
pub mod web;
