//! Reading what the command line points at: files (or `-` for stdin) and
//! JSON setting flags.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Parses a JSON setting flag, refusing it with the field's name.
pub fn parse_setting<T: serde::de::DeserializeOwned>(
    field: &str,
    text: Option<String>,
) -> anyhow::Result<Option<T>> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
            crate::spec::field::FieldError::new(field, format!("--{field} is not valid: {e}"))
                .into()
        }),
    }
}

/// The text of `path`, or of stdin for `-`.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
