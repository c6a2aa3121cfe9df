//! Secret values (passwords, tokens, keys, signing secrets) in a type that
//! cannot be printed by accident.

use serde::{Deserialize, Serialize};

/// Shortest secret herald accepts (in bytes): anything shorter could not be
/// scrubbed from logged answers without garbling them, so it is refused at
/// save rather than logged in clear.
pub const MIN_SECRET_LEN: usize = 4;

/// What every API and CLI output shows instead of a secret.
pub const MASK: &str = "***";

/// A secret value (password, token, key, signing secret). Its `Debug` and
/// `Display` print `***`; the value is reached only through [`Secret::expose`].
/// It serialises as its value: only storage serialises it, and every output
/// path masks the settings holding it first (e.g. `Auth::masked`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for use on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Is this the mask sent back by a client meaning "keep the stored value"?
    pub fn is_mask(&self) -> bool {
        self.0 == MASK
    }

    /// The mask itself, standing in for this value in any output.
    pub fn masked(&self) -> Secret {
        Secret(MASK.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// In the OpenAPI document a secret is a string: sent in full, shown as
/// `***` when read back.
impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A secret: sent in full; read back as ***."))
            .into()
    }
}

impl utoipa::ToSchema for Secret {}
