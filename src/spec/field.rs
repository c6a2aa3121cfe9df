//! The one error type of the spec layer: a refused setting, naming its field.

/// A refused webhook setting: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name as in the API and CLI (`url`, `body_template`, …).
    pub field: String,
    /// What is wrong, with line and column for templates.
    pub message: String,
}

impl FieldError {
    /// A refusal of `field`.
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
