//! Operations shared by the CLI and the REST API: queueing events and
//! managing webhooks. Each validates whole, then stores in one statement, so
//! a refused change leaves nothing behind.

use crate::event::{NewEvent, ValidEvent};
use crate::render::Warnings;
use crate::store::{self, Store};
use crate::webhook::{FieldError, Webhook, WebhookPatch, WebhookSpec};

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event is malformed.
    #[error(transparent)]
    InvalidEvent(#[from] crate::event::Error),
    /// An event with this uuid is already queued.
    #[error("an event with uuid {0} already exists")]
    DuplicateEvent(String),
    /// A webhook setting is refused.
    #[error(transparent)]
    InvalidWebhook(#[from] FieldError),
    /// The webhook does not exist.
    #[error("webhook {0} not found")]
    WebhookNotFound(i64),
    /// The webhook changed between read and write (another admin, CLI or API).
    #[error("webhook {0} was changed by someone else meanwhile; read it again and redo the change")]
    WebhookConflict(i64),
    /// Storage failed.
    #[error(transparent)]
    Store(store::Error),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e)
    }
}

fn webhook_error(id: i64) -> impl FnOnce(store::Error) -> Error {
    move |e| match e {
        store::Error::NotFound(_) => Error::WebhookNotFound(id),
        store::Error::Conflict(_) => Error::WebhookConflict(id),
        e => Error::Store(e),
    }
}

/// Checks and queues one event. Returns it with its uuid and time filled in.
pub fn queue_event(store: &Store, event: NewEvent) -> Result<ValidEvent, Error> {
    let valid = event.validate()?;
    match store.insert_event(&valid) {
        Ok(_) => Ok(valid),
        Err(store::Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::DuplicateEvent(valid.uuid))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates a webhook from a patch (name, url and events required).
pub fn create_webhook(store: &Store, patch: WebhookPatch) -> Result<(Webhook, Warnings), Error> {
    let mut spec = WebhookSpec::from_patch(patch)?;
    let warnings = spec.check()?;
    Ok((store.insert_webhook(&spec)?, warnings))
}

/// Changes the fields a patch names; the rest keep their values.
pub fn update_webhook(
    store: &Store,
    id: i64,
    patch: WebhookPatch,
) -> Result<(Webhook, Warnings), Error> {
    let current = store.webhook(id).map_err(webhook_error(id))?;
    let mut spec = current.spec;
    spec.apply(patch)?;
    let warnings = spec.check()?;
    Ok((
        store
            .update_webhook(id, &current.updated_at, &spec)
            .map_err(webhook_error(id))?,
        warnings,
    ))
}

/// Saves a copy of webhook `id` with a patch applied (the appliance's "save
/// as copy"); without a new name the copy is called "<name> (copy)".
pub fn copy_webhook(
    store: &Store,
    id: i64,
    patch: WebhookPatch,
) -> Result<(Webhook, Warnings), Error> {
    let mut spec = store.webhook(id).map_err(webhook_error(id))?.spec;
    let renamed = patch.name.is_some();
    spec.apply(patch)?;
    if !renamed {
        spec.name = format!("{} (copy)", spec.name);
    }
    let warnings = spec.check()?;
    Ok((store.insert_webhook(&spec)?, warnings))
}

/// Reads webhook `id`.
pub fn webhook(store: &Store, id: i64) -> Result<Webhook, Error> {
    store.webhook(id).map_err(webhook_error(id))
}

/// Deletes webhook `id` and its pending deliveries.
pub fn delete_webhook(store: &Store, id: i64) -> Result<(), Error> {
    store.delete_webhook(id).map_err(webhook_error(id))
}

/// Enables or disables webhook `id`. New events are not routed to a disabled
/// webhook; deliveries already queued for it wait until it is enabled again.
pub fn set_enabled(store: &Store, id: i64, enabled: bool) -> Result<Webhook, Error> {
    // No template checks: a webhook that no longer passes them (e.g. after
    // an upgrade with stricter checks) can still be switched off.
    store
        .set_webhook_enabled(id, enabled)
        .map_err(webhook_error(id))
}
