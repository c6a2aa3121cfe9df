//! Bodies as receivers get them: exact bodies for the sample events, and
//! well-formed JSON and XML whatever hostile values the event carries.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::utils::*;

const XML_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<event id="<<event.uuid>>" type='<<event.type>>'>
  <created><<event.created_at>></created>
  <ticket><<event.ticket_id>></ticket>
  <description><<description>></description>
  <note><![CDATA[<<description>>]]></note>
  <!-- <<description>> -->
</event>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_events_give_exact_json_and_xml_bodies() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add_webhook(&[
        "--name",
        "json",
        "--url",
        &rx.url("/json"),
        "--events",
        "ticket.*",
        "--body-file",
        repo_file("templates/presets/iacbox-example.json.tmpl")
            .to_str()
            .unwrap(),
    ]);
    let xml = write_file(&h, "body.xml", XML_TEMPLATE);
    h.add_webhook(&[
        "--name",
        "xml",
        "--url",
        &rx.url("/xml"),
        "--events",
        "system.*",
        "--mime",
        "application/xml",
        "--body-file",
        &xml,
    ]);
    let _server = h.serve();
    for f in [
        "ticket.login.json",
        "ticket.logout.limit_exceeded.json",
        "system.backup.error.json",
    ] {
        let text = std::fs::read_to_string(repo_file("templates/samples").join(f)).unwrap();
        h.cli_stdin(&["emit"], Some(&text));
    }
    let got = rx.wait_for(3).await;
    let by_path = |p: &str| {
        got.iter()
            .filter(|r| r.uri == p)
            .cloned()
            .collect::<Vec<_>>()
    };
    // Two deliveries run at once: they may arrive in either order. Sorted,
    // the login (id 0b8c…) comes before the limit event (id 5d1e…).
    let mut json_bodies: Vec<String> = by_path("/json").into_iter().map(|r| r.body).collect();
    json_bodies.sort();
    assert_eq!(
        json_bodies[0],
        "{\n\t\"id\":\"0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10\",\n\t\"event\":\"ticket.login\",\n\t\"occured\":\"2026-11-20T08:15:02Z\",\n\t\"ticket_id\":\"T-100234\",\n\t\"volume_limit\":\"5368709120\",\n\t\"volume_used\":\"0\",\n\t\"room_number\":\"214\"\n}\n"
    );
    assert_eq!(
        json_bodies[1],
        "{\n\t\"id\":\"5d1e77b0-2c43-4e0a-8f8e-91b0c7a2d3f4\",\n\t\"event\":\"ticket.logout.limit_exceeded\",\n\t\"occured\":\"2026-11-20T19:40:11Z\",\n\t\"ticket_id\":\"T-100234\",\n\t\"volume_limit\":\"5368709120\",\n\t\"volume_used\":\"5368709120\",\n\t\"room_number\":\"214\"\n}\n"
    );
    let xml = &by_path("/xml")[0];
    assert_eq!(xml.headers["content-type"], "application/xml");
    assert_eq!(
        xml.body,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<event id="a9f0c3d2-77e1-4b6a-9c0e-2d4f6a8b1c3e" type='system.backup.error'>
  <created>2026-11-21T02:00:37Z</created>
  <ticket></ticket>
  <description>backup to "nas01" failed: &lt;timeout&gt; after 30s &amp; 3 retries</description>
  <note><![CDATA[backup to "nas01" failed: <timeout> after 30s & 3 retries]]></note>
  <!-- backup to "nas01" failed: <timeout> after 30s & 3 retries -->
</event>
"#
    );
}

/// Values that break naive templating.
fn hostile() -> Value {
    json!({
        "quote": "he said \"hi\" and 'bye'",
        "backslash": "C:\\path\\to\\ \\\" end\\",
        "closing": "</x></event><evil/>",
        "cdata_end": "a]]>b]]]]>c",
        "controls": "tab\there\u{1}\u{7}\u{1b}\u{1f}nl\nend\r",
        "emoji": "😀 ümlaut 中文 \u{2028}",
        "template": "<<event.uuid>> <% if %> {{ x }}",
        "amp": "&amp; &lt; &#0; &",
        "comment": "-- -->",
        "big": "x".repeat(100_000) + "\"<&>]]>",
        "nested": {"pms": {"room": "<214>\"", "list": [1, "two", null]}},
        "number": 12.5,
    })
}

const HOSTILE_FIELDS: &[&str] = &[
    "quote",
    "backslash",
    "closing",
    "cdata_end",
    "controls",
    "emoji",
    "template",
    "amp",
    "comment",
    "big",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_stay_valid_for_hostile_values() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let mut body = String::from("{\n");
    for f in HOSTILE_FIELDS {
        body.push_str(&format!(
            "  \"s_{f}\": \"prefix <<{f}>> suffix\",\n  \"v_{f}\": <<{f}>>,\n"
        ));
    }
    body.push_str("  \"room\": \"<<nested.pms.room>>\",\n  \"nested\": <<nested>>,\n  \"number\": <<number>>,\n  \"missing\": <<nope>>,\n  \"missing_s\": \"<<nope.deeper>>\"\n}");
    h.add("json", &rx.url("/"), &["--body", &body]);
    let server = h.serve();
    let data = hostile();
    let resp = server
        .client()
        .post(server.url("/api/v1/events"))
        .json(&json!({"type": "ticket.login", "ticket_id": "T-\"1\"", "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let got = rx.wait_for(1).await;
    let v: Value = serde_json::from_str(&got[0].body).expect("valid JSON");
    for f in HOSTILE_FIELDS {
        let original = data[f].as_str().unwrap();
        assert_eq!(
            v[format!("s_{f}")],
            format!("prefix {original} suffix"),
            "{f}"
        );
        assert_eq!(v[format!("v_{f}")], original, "{f}");
    }
    assert_eq!(v["room"], "<214>\"");
    assert_eq!(v["nested"], data["nested"]);
    assert_eq!(v["number"], 12.5);
    assert_eq!(v["missing"], Value::Null);
    assert_eq!(v["missing_s"], "");
}

/// Reads an XML document: element text (CDATA included) by element name,
/// attributes by `element@name`, comments in order. Fails on malformed XML.
fn parse_xml(body: &str) -> (HashMap<String, String>, Vec<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut stack: Vec<String> = Vec::new();
    let mut out = HashMap::new();
    let mut comments = Vec::new();
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("malformed XML at {}: {e}\n{body}", reader.error_position()))
        {
            Event::Start(s) => {
                let name = s.name().0.to_owned();
                for a in s.attributes() {
                    let a = a.unwrap();
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned();
                    out.insert(format!("{name}@{}", a.key.0), v);
                }
                stack.push(name);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(top) = stack.last() {
                    out.entry(top.clone())
                        .or_default()
                        .push_str(&t.into_inner());
                }
            }
            Event::CData(c) => {
                let top = stack.last().unwrap().clone();
                out.entry(top).or_default().push_str(&c.into_inner());
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.into_inner())
                        .expect("predefined entity")
                        .to_owned(),
                };
                out.entry(stack.last().unwrap().clone())
                    .or_default()
                    .push_str(&resolved);
            }
            Event::Comment(c) => comments.push(c.into_inner().into_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
    (out, comments)
}

/// What XML can carry of a value: characters XML 1.0 forbids become U+FFFD.
fn xml_visible(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_bodies_stay_well_formed_for_hostile_values() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let mut body = String::from("<?xml version=\"1.0\"?>\n<root>\n");
    for f in HOSTILE_FIELDS {
        body.push_str(&format!(
            "  <t_{f} a=\"<<{f}>>\" b='<<{f}>>'>text <<{f}>></t_{f}>\n  <c_{f}><![CDATA[<<{f}>>]]></c_{f}>\n  <!--<<{f}>>-->\n"
        ));
    }
    body.push_str(
        "  <room><<nested.pms.room>></room><missing><<nope.deeper>></missing>\n</root>\n",
    );
    let file = write_file(&h, "hostile.xml", &body);
    h.add(
        "xml",
        &rx.url("/"),
        &["--mime", "application/xml", "--body-file", &file],
    );
    let server = h.serve();
    let data = hostile();
    let resp = server
        .client()
        .post(server.url("/api/v1/events"))
        .json(&json!({"type": "ticket.login", "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let got = rx.wait_for(1).await;
    let (values, comments) = parse_xml(&got[0].body);
    for f in HOSTILE_FIELDS {
        let expected = xml_visible(data[f].as_str().unwrap());
        // Attribute values keep tab/CR/LF through normalisation: herald writes them as references.
        assert_eq!(values[&format!("t_{f}@a")], expected, "{f} attribute");
        assert_eq!(values[&format!("t_{f}@b")], expected, "{f} attribute");
        // Element text: line ends are normalised by XML itself (CR LF -> LF, lone CR -> LF).
        let text_expected = format!("text {expected}");
        let text = &values[&format!("t_{f}")];
        assert_eq!(
            text.replace('\r', "\n"),
            text_expected.replace("\r\n", "\n").replace('\r', "\n"),
            "{f} text"
        );
        let cdata = &values[&format!("c_{f}")];
        assert_eq!(
            cdata.replace('\r', "\n"),
            expected.replace("\r\n", "\n").replace('\r', "\n"),
            "{f} cdata"
        );
    }
    assert_eq!(comments.len(), HOSTILE_FIELDS.len());
    assert_eq!(values["room"], "<214>\"");
    assert_eq!(values.get("missing").map(String::as_str).unwrap_or(""), "");
}

#[test]
fn render_prints_the_exact_request_without_sending() {
    let h = Herald::new();
    let port = refused_port();
    let id = h.add_webhook(&[
        "--name",
        "r",
        "--url",
        &format!("http://127.0.0.1:{port}/t/<<event.ticket_id>>"),
        "--events",
        "ticket.*",
        "--header",
        "X-Room: <<backend_data.pms.room>>",
        "--body-file",
        repo_file("templates/presets/iacbox-example.json.tmpl")
            .to_str()
            .unwrap(),
    ]);
    let out = h.ok(&[
        "render",
        "--webhook",
        &id.to_string(),
        "--event",
        repo_file("templates/samples/ticket.login.json")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(
        out,
        format!(
            "POST http://127.0.0.1:{port}/t/T-100234\nX-Room: 214\nContent-Type: application/json\n\n{{\n\t\"id\":\"0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10\",\n\t\"event\":\"ticket.login\",\n\t\"occured\":\"2026-11-20T08:15:02Z\",\n\t\"ticket_id\":\"T-100234\",\n\t\"volume_limit\":\"5368709120\",\n\t\"volume_used\":\"0\",\n\t\"room_number\":\"214\"\n}}\n"
        )
    );
    assert_eq!(h.log(&[]).len(), 0, "render sends nothing and logs nothing");
}
