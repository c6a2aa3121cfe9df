//! The body presets shipped in `templates/presets/`, for the web form, the
//! CLI's `--preset NAME` and the `discord://` shorthand.

/// Body presets from `templates/presets/`: file name, label, body.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "iacbox-example.json",
        "Appliance example (JSON)",
        include_str!("../../../templates/presets/iacbox-example.json.tmpl"),
    ),
    (
        "generic.json",
        "Generic, every field (JSON)",
        include_str!("../../../templates/presets/generic.json.tmpl"),
    ),
    (
        "generic.xml",
        "Generic, every field (XML)",
        include_str!("../../../templates/presets/generic.xml.tmpl"),
    ),
    (
        "slack.json",
        "Slack incoming webhook",
        include_str!("../../../templates/presets/slack.json.tmpl"),
    ),
    (
        "discord.json",
        "Discord webhook",
        include_str!("../../../templates/presets/discord.json.tmpl"),
    ),
];

/// The body of preset `name` (`discord.json`, or `discord`), if there is one.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(k, _, _)| *k == name || k.split('.').next() == Some(name))
        .map(|(_, _, body)| *body)
}
