//! XML bodies checked once when compiled: every render of a fixed shape is
//! well-formed whatever the values; any other shape is still parsed per
//! render.

use super::*;
use crate::spec::webhook::WebhookSpec;

fn compiled(body: &str) -> CompiledRequest {
    let spec = WebhookSpec {
        body_template: body.into(),
        body_format: BodyFormat::Xml,
        ..WebhookSpec::example("http://127.0.0.1:9/hook")
    };
    CompiledRequest::compile(&spec, Some(1)).unwrap()
}

fn event_with(value: &str) -> Event {
    let mut e = samples::sample_event("ticket.login");
    e.data.insert("v".into(), serde_json::Value::from(value));
    e
}

const HOSTILE: &[&str] = &[
    "<b>",
    "a & b",
    "\"'",
    "]]>",
    "--",
    "-",
    "\u{1}\u{8}\r\n\t",
    "&amp;",
    "</a><a>",
    "",
];

#[test]
fn a_fixed_shape_is_checked_once_and_every_render_is_well_formed() {
    let c = compiled(r#"<a k="<<v>>" j='<<v>>'><<v>><b><<v>></b>]]<<v>></a>"#);
    assert!(c.body_checked, "text and attribute placeholders only");
    for v in HOSTILE {
        let body = c.render(&event_with(v)).unwrap().body;
        assert!(check_xml(&body).is_ok(), "{v:?} gave {body}");
    }
}

#[test]
fn other_shapes_are_checked_per_render() {
    for body in [
        "<a><![CDATA[<<v>>]]></a>",
        "<a><!-- x-<<v>> --></a>",
        "<% if v %><a/><% endif %><a/>",
        // References built around a placeholder: well-formed for some values only.
        "<a>&#<<v>>41;</a>",
        "<a>&<<v>>;</a>",
        r#"<!DOCTYPE a [<!ENTITY e "><<v>>">]><a/>"#,
    ] {
        assert!(!compiled(body).body_checked, "{body}");
    }
    // A CDATA section the literal text can close early: refused, not sent.
    let c = compiled("<a><![CDATA[<<v>>><b>]]></a>");
    assert!(c.render(&event_with("]]")).is_err());
    // A reference built around a placeholder: still checked, so refused.
    assert!(
        compiled("<a>&#<<v>>41;</a>")
            .render(&event_with("abc"))
            .is_err()
    );
    // A shape that varies: the second root element is caught at render.
    let c = compiled("<a/><% if v %><b/><% endif %>");
    assert!(c.render(&event_with("yes")).is_err());
}

#[test]
fn a_document_with_a_declaration_and_nested_placeholders_is_checked_once() {
    let c = compiled(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<event id="<<event.uuid>>" type="<<event.type>>">
  <room><<backend_data.pms.room>></room>
  <volume used="<<volume_used>>" limit="<<volume_limit>>"/>
</event>
"#,
    );
    assert!(c.body_checked);
}
