//! Other products' ways of saying what a webhook is, accepted as they are:
//! LubeLogger's `discord://host/path` (a Discord webhook at
//! `https://host/path`), and RCManager's create call `{url, events,
//! description}` without a name.

use crate::spec::webhook::{WebhookPatch, WebhookSpec};

/// The scheme LubeLogger uses to say "this URL is a Discord webhook".
const DISCORD_SCHEME: &str = "discord://";

/// A new webhook without a name is named after its URL's host (`hooks.example.com`),
/// or `webhook` when the URL has none. A name given empty stays empty (and
/// is refused by the check): only a missing one is filled in.
pub fn default_name(patch: &mut WebhookPatch) {
    if patch.name.is_some() {
        return;
    }
    let Some(url) = patch.url.as_deref() else {
        return;
    };
    let url = url.trim();
    let readable = url
        .strip_prefix(DISCORD_SCHEME)
        .map(|rest| format!("https://{rest}"))
        .unwrap_or_else(|| url.to_owned());
    let host = reqwest::Url::parse(&readable)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    patch.name = Some(host.unwrap_or_else(|| "webhook".into()));
}

/// A `discord://host/path` URL becomes `https://host/path`, and an empty
/// body the Discord preset. Returns what was changed, for the save's
/// warnings (the admin should know the stored URL is not what was typed).
pub fn discord_url(spec: &mut WebhookSpec) -> Option<String> {
    let url = spec.url.trim();
    let rest = url
        .get(..DISCORD_SCHEME.len())
        .filter(|s| s.eq_ignore_ascii_case(DISCORD_SCHEME))
        .map(|_| &url[DISCORD_SCHEME.len()..])?;
    spec.url = format!("https://{rest}");
    let mut note = format!("the discord:// URL is sent as {}", spec.url);
    if spec.body_template.trim().is_empty() {
        spec.body_template = crate::engines::render::presets::preset("discord")
            .expect("the Discord preset ships with herald")
            .to_owned();
        spec.body_format = crate::spec::request::BodyFormat::Json;
        note.push_str(", with the Discord preset as its body");
    }
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discord_url_is_https_with_the_discord_preset() {
        let mut spec = WebhookSpec::example("discord://discord.com/api/webhooks/1/abc");
        let note = discord_url(&mut spec).unwrap();
        assert_eq!(spec.url, "https://discord.com/api/webhooks/1/abc");
        assert!(spec.body_template.contains("allowed_mentions"));
        assert!(note.contains("Discord preset"), "{note}");
        let mut own = WebhookSpec::example("DISCORD://h/p");
        own.body_template = "{}".into();
        assert!(!discord_url(&mut own).unwrap().contains("preset"));
        assert_eq!(own.body_template, "{}");
        let mut plain = WebhookSpec::example("https://h/p");
        assert_eq!(discord_url(&mut plain), None);
    }

    #[test]
    fn a_missing_name_comes_from_the_host() {
        let named = |url: &str, name: Option<&str>| {
            let mut p: WebhookPatch =
                serde_json::from_value(serde_json::json!({"url": url})).unwrap();
            p.name = name.map(str::to_owned);
            default_name(&mut p);
            p.name.unwrap()
        };
        assert_eq!(
            named("https://rc.example.com:8443/hook", None),
            "rc.example.com"
        );
        assert_eq!(
            named("discord://discord.com/api/webhooks/1", None),
            "discord.com"
        );
        assert_eq!(named("<<url>>", None), "webhook");
        assert_eq!(named("https://h/", Some("mine")), "mine");
        assert_eq!(named("https://h/", Some(" ")), " ");
    }
}
