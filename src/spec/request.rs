//! The shape of an outgoing request that a webhook and a token flow both
//! configure: its HTTP method and its body format.

use serde::{Deserialize, Serialize};

use crate::spec::field::FieldError;

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// POST (the default).
    Post,
    /// GET.
    Get,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method name as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "POST" => Ok(Method::Post),
            "GET" => Ok(Method::Get),
            "PUT" => Ok(Method::Put),
            "DELETE" => Ok(Method::Delete),
            _ => Err(FieldError::new(
                "method",
                format!("{s:?} is not one of POST, GET, PUT, DELETE"),
            )),
        }
    }
}

/// The body's format, which decides its escaping and `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum BodyFormat {
    /// `application/json`.
    #[serde(rename = "application/json")]
    Json,
    /// `application/xml`.
    #[serde(rename = "application/xml")]
    Xml,
}

impl BodyFormat {
    /// The MIME type sent as `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Xml => "application/xml",
        }
    }
}

impl std::str::FromStr for BodyFormat {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "application/json" | "json" => Ok(BodyFormat::Json),
            "application/xml" | "xml" | "text/xml" => Ok(BodyFormat::Xml),
            _ => Err(FieldError::new(
                "body_mime",
                format!("{s:?} is not application/json or application/xml"),
            )),
        }
    }
}
