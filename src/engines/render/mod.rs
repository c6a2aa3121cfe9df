//! Templates: compiling a webhook's URL, headers and body into a sandboxed
//! minijinja environment, rendering them for an event with escaping that
//! follows the body format, and checking them when the webhook is saved.
//!
//! Knows nothing of HTTP clients or storage: it turns a [`WebhookSpec`] and an
//! [`Event`] into a [`RenderedRequest`].

pub mod check;
pub mod context;
pub mod curly;
pub mod duplicate_keys;
pub mod escape;
pub mod lexer;
pub mod presets;
pub mod samples;
pub mod wellformed;
#[cfg(test)]
mod xml_tests;

use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::base::event::Event;
use crate::spec::request::{BodyFormat, Method};
use crate::spec::webhook::WebhookSpec;
use escape::Slot;
use lexer::Format;

pub use check::{Warnings, check};
use wellformed::check_url_text;
pub use wellformed::{check_json, check_xml};

/// Instruction budget of one render: stops runaway loops in admin templates.
const FUEL: u64 = 5_000_000;
/// Longest rendered body accepted.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Longest rendered URL or header value accepted.
const MAX_LINE_BYTES: usize = 16 << 10;

/// A template problem, with the part of the webhook it is in and, when known,
/// its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Error {
    /// Which field holds the template: `url`, `headers`, `body_template`.
    pub field: &'static str,
    /// 1-based line in that field's text, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Error {
    fn describe(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{} line {l}, column {c}: {}", self.field, self.message),
            (Some(l), None) => format!("{} line {l}: {}", self.field, self.message),
            _ => format!("{}: {}", self.field, self.message),
        }
    }

    fn at(field: &'static str, src: &str, offset: usize, message: String) -> Error {
        let (line, column) = line_column(src, offset);
        Error {
            field,
            line: Some(line),
            column: Some(column),
            message,
        }
    }

    fn from_minijinja(field: &'static str, src: &str, e: &minijinja::Error) -> Error {
        let message = e
            .detail()
            .map(str::to_owned)
            .unwrap_or_else(|| e.kind().to_string());
        match e.range() {
            Some(range) if range.start <= src.len() => Error::at(field, src, range.start, message),
            _ => Error {
                field,
                line: e.line(),
                column: None,
                message,
            },
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// One request header whose value is a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    /// Header name as written.
    pub name: String,
    /// Value template source.
    pub value: String,
}

/// Parses the admin's header text: one `Field: Value` per line, blank lines
/// and lines starting with `#` ignored.
pub fn parse_headers(text: &str) -> Result<Vec<HeaderTemplate>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |message: String| Error {
            field: "headers",
            line: Some(i + 1),
            column: None,
            message,
        };
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(err(format!("expected `Field: Value`, got {trimmed:?}")));
        };
        let name = name.trim();
        if name.is_empty() || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(format!("{name:?} is not a valid header name")));
        }
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
            return Err(err(format!(
                "{name} is set by herald and cannot be overridden"
            )));
        }
        out.push(HeaderTemplate {
            name: name.to_owned(),
            value: value.trim().to_owned(),
        });
    }
    Ok(out)
}

/// The exact request herald sends for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute http(s) URL.
    pub url: String,
    /// Headers in order, including `Content-Type` when there is a body.
    pub headers: Vec<(String, String)>,
    /// Body bytes; empty means no body.
    pub body: String,
}

impl RenderedRequest {
    /// Does `needle` appear in the URL, a header value or the body?
    pub fn contains(&self, needle: &str) -> bool {
        self.url.contains(needle)
            || self.body.contains(needle)
            || self.headers.iter().any(|(_, v)| v.contains(needle))
    }
}

impl std::fmt::Display for RenderedRequest {
    /// The request as an HTTP/1.1-like text, as `herald render` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        if !self.body.is_empty() {
            writeln!(f)?;
            f.write_str(&self.body)?;
            if !self.body.ends_with('\n') {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// A webhook's templates compiled once, rendered for every event it receives.
pub struct CompiledRequest {
    env: Environment<'static>,
    method: Method,
    body_format: BodyFormat,
    header_names: Vec<String>,
    has_body: bool,
    sets_content_type: bool,
    webhook: Value,
    /// The URL when it has no placeholders: checked once here, not per render.
    static_url: Option<String>,
    /// An XML body whose every render is well-formed, as checked once here
    /// (see [`wellformed::always_well_formed_xml`]): not parsed again per render.
    body_checked: bool,
}

/// The sandboxed environment for admin templates: herald's delimiters,
/// missing data renders empty, a fuel budget, no loader, no auto-escaping
/// (the lexer attaches the right escaper to every placeholder).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .variable_delimiters(lexer::VAR_START, lexer::VAR_END)
            .block_delimiters(lexer::BLOCK_START, lexer::BLOCK_END)
            .comment_delimiters(lexer::COMMENT_START, lexer::COMMENT_END)
            .keep_trailing_newline(true)
            .build()
            .expect("herald's delimiters are valid"),
    );
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    for slot in Slot::ALL {
        env.add_filter(slot.filter_name(), move |v: Value| {
            escape::write_slot(slot, &v)
        });
    }
    env
}

/// Compiles one template into `env` under `name`, rewriting its placeholders
/// for `format`. Syntax errors are reported against the admin's own text.
fn add_template(
    env: &mut Environment<'static>,
    name: String,
    field: &'static str,
    src: &str,
    format: Format,
) -> Result<(), Error> {
    // `{{ name }}` as the appliance's guide writes it is `<< name >>`
    // (same length: positions stay the admin's).
    let src = &*curly::to_angle(src);
    // Compile the source as written first, so positions are the admin's.
    env.template_from_str(src)
        .map_err(|e| Error::from_minijinja(field, src, &e))?;
    let rewritten = lexer::rewrite(src, format)
        .map_err(|m| Error::at(field, src, m.offset, m.reason.to_owned()))?;
    env.add_template_owned(name, rewritten)
        .map_err(|e| Error::from_minijinja(field, src, &e))
}

impl CompiledRequest {
    /// Compiles the URL, header values and body of `spec`.
    pub fn compile(spec: &WebhookSpec, webhook_id: Option<i64>) -> Result<CompiledRequest, Error> {
        let mut env = environment();
        add_template(&mut env, "url".into(), "url", &spec.url, Format::Url)?;
        let headers = parse_headers(&spec.headers)?;
        let mut header_names = Vec::with_capacity(headers.len());
        for (i, h) in headers.iter().enumerate() {
            add_template(
                &mut env,
                format!("header{i}"),
                "headers",
                &h.value,
                Format::Header,
            )
            .map_err(|mut e| {
                e.message = format!("header {}: {}", h.name, e.message);
                e.line = Some(header_line(&spec.headers, i));
                e.column = None;
                e
            })?;
            header_names.push(h.name.clone());
        }
        let format = match spec.body_format {
            BodyFormat::Json => Format::Json,
            BodyFormat::Xml => Format::Xml,
        };
        let has_body = !spec.body_template.trim().is_empty();
        if has_body {
            add_template(
                &mut env,
                "body".into(),
                "body_template",
                &spec.body_template,
                format,
            )?;
        }
        Ok(CompiledRequest {
            env,
            method: spec.method,
            body_format: spec.body_format,
            sets_content_type: header_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case("content-type")),
            header_names,
            has_body,
            webhook: Value::from(minijinja::value::Serde(serde_json::json!({
                "id": webhook_id,
                "name": spec.name,
            }))),
            static_url: static_url(&spec.url)?,
            body_checked: has_body
                && spec.body_format == BodyFormat::Xml
                && wellformed::always_well_formed_xml(&curly::to_angle(&spec.body_template)),
        })
    }

    /// Renders the request for `event`.
    pub fn render(&self, event: &Event) -> Result<RenderedRequest, Error> {
        self.render_shared(&Arc::new(event.clone()), None)
    }

    /// Renders the request for a shared event, with `<<auth.token>>` set
    /// when a token is given (the delivery path: no copy of the event).
    pub fn render_shared(
        &self,
        event: &Arc<Event>,
        token: Option<&str>,
    ) -> Result<RenderedRequest, Error> {
        self.render_in(&context::context(event, &self.webhook, token))
    }

    /// Renders one request for a batch of events: the body iterates
    /// `<% for e in events %>`.
    pub fn render_batch(
        &self,
        events: &[Arc<Event>],
        token: Option<&str>,
    ) -> Result<RenderedRequest, Error> {
        self.render_in(&context::batch_context(events, &self.webhook, token))
    }

    /// Renders the request for `event` with `<<auth.token>>` set.
    pub fn render_with_token(&self, event: &Event, token: &str) -> Result<RenderedRequest, Error> {
        self.render_shared(&Arc::new(event.clone()), Some(token))
    }

    /// Renders the request in a prepared context.
    pub fn render_in(&self, ctx: &Value) -> Result<RenderedRequest, Error> {
        let run = |name: &str, field: &'static str, limit: usize| -> Result<String, Error> {
            let tmpl = self.env.get_template(name).map_err(|e| Error {
                field,
                line: None,
                column: None,
                message: e.to_string(),
            })?;
            let mut out = LimitedWriter::new(limit);
            tmpl.render_captured_to(ctx, &mut out).map_err(|e| {
                if out.overflowed {
                    return Error {
                        field,
                        line: None,
                        column: None,
                        message: format!("the rendered text is larger than {limit} bytes"),
                    };
                }
                let mut err = Error::from_minijinja(field, tmpl.source(), &e);
                // Positions in the rewritten text differ in columns only;
                // keep the line, which is the same in the admin's text.
                err.column = None;
                err
            })?;
            String::from_utf8(out.buf).map_err(|_| Error {
                field,
                line: None,
                column: None,
                message: "the rendered text is not UTF-8".into(),
            })
        };
        let url = match &self.static_url {
            Some(u) => u.clone(),
            None => run("url", "url", MAX_LINE_BYTES)?.trim().to_owned(),
        };
        let mut headers = Vec::with_capacity(self.header_names.len() + 1);
        for (i, name) in self.header_names.iter().enumerate() {
            let value = run(&format!("header{i}"), "headers", MAX_LINE_BYTES)?;
            headers.push((name.clone(), value.trim().to_owned()));
        }
        let body = if self.has_body {
            run("body", "body_template", MAX_BODY_BYTES)?
        } else {
            String::new()
        };
        if !body.is_empty() && !self.sets_content_type {
            headers.push(("Content-Type".into(), self.body_format.mime().into()));
        }
        let req = RenderedRequest {
            method: self.method,
            url,
            headers,
            body,
        };
        // Whatever the event holds, nothing malformed is ever sent.
        check_rendered_parts(
            &req,
            self.body_format,
            self.static_url.is_none(),
            !self.body_checked,
        )
        .map_err(|(field, message)| Error {
            field,
            line: None,
            column: None,
            message,
        })?;
        Ok(req)
    }
}

/// Collects rendered output up to a limit, then refuses more: a template
/// looping over large values cannot exhaust memory.
struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl LimitedWriter {
    fn new(limit: usize) -> Self {
        LimitedWriter {
            buf: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Line (1-based) in the header text of the `index`-th non-blank header.
fn header_line(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .nth(index)
        .map(|(i, _)| i + 1)
        .unwrap_or(1)
}

/// Checks what a rendered request must be for herald to send it.
pub fn check_rendered(
    req: &RenderedRequest,
    format: BodyFormat,
) -> Result<(), (&'static str, String)> {
    check_rendered_parts(req, format, true, true)
}

/// [`check_rendered`], with the URL and body checks optional (a static URL,
/// or an XML body of fixed shape, was checked when compiled).
fn check_rendered_parts(
    req: &RenderedRequest,
    format: BodyFormat,
    check_url: bool,
    check_body: bool,
) -> Result<(), (&'static str, String)> {
    if check_url {
        check_url_text(&req.url)?;
    }
    for (name, value) in &req.headers {
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err((
                "headers",
                format!("value of {name} is not a valid header value"),
            ));
        }
    }
    if check_body && !req.body.is_empty() {
        match format {
            BodyFormat::Json => check_json(&req.body).map_err(|m| ("body_template", m))?,
            BodyFormat::Xml => check_xml(&req.body).map_err(|m| ("body_template", m))?,
        }
    }
    Ok(())
}

/// A URL without template syntax, checked now; `None` when it has some.
fn static_url(src: &str) -> Result<Option<String>, Error> {
    if [lexer::VAR_START, lexer::BLOCK_START, lexer::COMMENT_START]
        .iter()
        .any(|d| src.contains(d))
    {
        return Ok(None);
    }
    let url = src.trim().to_owned();
    check_url_text(&url).map_err(|(field, message)| Error {
        field,
        line: None,
        column: None,
        message,
    })?;
    Ok(Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::webhook::WebhookSpec;

    fn spec(body: &str, format: BodyFormat) -> WebhookSpec {
        WebhookSpec {
            body_template: body.into(),
            body_format: format,
            ..WebhookSpec::example("http://127.0.0.1:9/hook")
        }
    }

    #[test]
    fn example_body_renders_the_sample_login() {
        let body = include_str!("../../../templates/presets/iacbox-example.json.tmpl");
        let c = CompiledRequest::compile(&spec(body, BodyFormat::Json), Some(1)).unwrap();
        let req = c.render(&samples::sample_event("ticket.login")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(v["id"], "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10");
        assert_eq!(v["event"], "ticket.login");
        assert_eq!(v["volume_limit"], "5368709120");
        assert_eq!(v["room_number"], "214");
        assert!(
            req.headers
                .contains(&("Content-Type".into(), "application/json".into()))
        );
    }

    #[test]
    fn missing_data_renders_empty() {
        let c = CompiledRequest::compile(
            &spec(
                r#"{"r":"<<backend_data.pms.room>>","v":<<nope>>}"#,
                BodyFormat::Json,
            ),
            None,
        )
        .unwrap();
        let req = c.render(&samples::sample_event("system.start")).unwrap();
        assert_eq!(req.body, r#"{"r":"","v":null}"#);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = CompiledRequest::compile(
            &spec("{\n  \"a\": \"<< x | >>\"\n}", BodyFormat::Json),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(err.field, "body_template");
        assert_eq!(err.line, Some(2));
        assert!(err.column.is_some(), "{err}");
    }

    #[test]
    fn check_refuses_invalid_json_output() {
        let err = check(&spec(r#"{"a": <<event.uuid>>"#, BodyFormat::Json))
            .err()
            .unwrap();
        assert!(err.message.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn check_refuses_invalid_xml_output() {
        let err = check(&spec("<a><b></a>", BodyFormat::Xml)).err().unwrap();
        assert!(err.message.contains("XML"), "{err}");
        assert!(check(&spec("<a/><b/>", BodyFormat::Xml)).is_err());
        assert!(
            check(&spec(
                "<a k=\"<<event.uuid>>\"><<description>></a>",
                BodyFormat::Xml
            ))
            .is_ok()
        );
    }

    #[test]
    fn check_warns_about_unknown_names() {
        let w = check(&spec(
            r#"{"a":"<<roomnumber>>","b":"<<backend_data.pms.room>>"}"#,
            BodyFormat::Json,
        ))
        .unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("roomnumber"));
    }

    #[test]
    fn url_values_are_encoded_and_headers_templated() {
        let mut s = spec("", BodyFormat::Json);
        s.url = "http://127.0.0.1:9/t/<<event.ticket_id>>?d=<<description>>".into();
        s.headers = "X-Event: <<event.type>>\n\nX-Desc: <<description>>".into();
        let c = CompiledRequest::compile(&s, None).unwrap();
        let req = c.render(&samples::sample_event("ticket.login")).unwrap();
        assert_eq!(
            req.url,
            "http://127.0.0.1:9/t/T-100234?d=Room%20214%20-%20Mr.%20M%C3%BCller"
        );
        assert_eq!(req.headers[0], ("X-Event".into(), "ticket.login".into()));
        assert_eq!(
            req.headers[1],
            ("X-Desc".into(), "Room 214 - Mr. Müller".into())
        );
        assert!(req.body.is_empty());
        assert_eq!(req.headers.len(), 2, "no content type without a body");
    }

    #[test]
    fn output_is_bounded_and_malformed_output_is_never_returned() {
        let big = CompiledRequest::compile(
            &spec(
                "[<% for i in range(1000) %>\"<<description * 100>>\",<% endfor %>1]",
                BodyFormat::Json,
            ),
            None,
        )
        .unwrap();
        let mut event = samples::sample_event("system.start");
        event
            .data
            .insert("description".into(), "x".repeat(1000).into());
        let err = big.render(&event).unwrap_err();
        assert!(err.message.contains("larger than"), "{err}");

        // A template that only breaks for some data: refused at send time.
        let c = CompiledRequest::compile(
            &spec("<%- if flag %>{<% endif %>\"a\":1}", BodyFormat::Json),
            None,
        )
        .unwrap();
        assert!(c.render(&samples::sample_event("system.start")).is_err());
    }

    #[test]
    fn data_fields_do_not_shadow_globals() {
        let c = CompiledRequest::compile(
            &spec(
                "[<% for i in range(2) %><<i>>,<% endfor %>\"<<event.data.range>>\"]",
                BodyFormat::Json,
            ),
            None,
        )
        .unwrap();
        let mut event = samples::sample_event("system.start");
        event.data.insert("range".into(), 7.into());
        assert_eq!(c.render(&event).unwrap().body, "[0,1,\"7\"]");
    }

    #[test]
    fn bad_header_line_is_refused_with_its_line() {
        let err = parse_headers("X-Ok: 1\nnot a header\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn runaway_loop_is_stopped_by_fuel() {
        let c = CompiledRequest::compile(
            &spec("[<% for i in range(100000) %><% for j in range(100000) %>1,<% endfor %><% endfor %>1]", BodyFormat::Json),
            None,
        )
        .unwrap();
        let err = c
            .render(&samples::sample_event("system.start"))
            .unwrap_err();
        assert!(err.message.contains("fuel"), "{err}");
    }
}
