//! Finds where each `<< … >>` placeholder stands in a JSON or XML body (inside
//! a string, as a value, in element text, in an attribute, in CDATA) and
//! rewrites it to `<< (…) | escaper >>` so its value is written for that spot.
//!
//! The template source is lexed once, when it is compiled; rendering pays
//! nothing for this. Tags `<% … %>` and comments `<# … #>` are skipped; the
//! literal text between them drives a small state machine of the body format.

use super::escape::Slot;

/// The delimiters herald's templates use (documented in the README).
pub const VAR_START: &str = "<<";
/// End of a placeholder.
pub const VAR_END: &str = ">>";
/// Start of a block tag (`<% if … %>`, `<% for … %>`).
pub const BLOCK_START: &str = "<%";
/// End of a block tag.
pub const BLOCK_END: &str = "%>";
/// Start of a template comment.
pub const COMMENT_START: &str = "<#";
/// End of a template comment.
pub const COMMENT_END: &str = "#>";

/// The language of the text around the placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON body.
    Json,
    /// An XML body.
    Xml,
    /// An HTTP header value.
    Header,
    /// A URL.
    Url,
}

/// A placeholder that stands where no escaping can keep the body well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    /// Byte offset of the `<<` in the source.
    pub offset: usize,
    /// What is wrong, in words.
    pub reason: &'static str,
}

/// Lexer state for JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonState {
    Outside,
    InString { escaped: bool },
}

/// Lexer state for XML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XmlState {
    Text,
    Tag,
    AttrDouble,
    AttrSingle,
    Comment,
    Cdata,
    Instruction,
    Declaration,
}

/// Tracks the body format's context across the literal parts of a template.
struct Context {
    format: Format,
    json: JsonState,
    xml: XmlState,
}

impl Context {
    fn new(format: Format) -> Self {
        Context {
            format,
            json: JsonState::Outside,
            xml: XmlState::Text,
        }
    }

    /// The slot a placeholder at the current position fills.
    fn slot(&self) -> Result<Slot, &'static str> {
        Ok(match self.format {
            Format::Json => match self.json {
                JsonState::Outside => Slot::JsonValue,
                JsonState::InString { escaped: false } => Slot::JsonString,
                JsonState::InString { escaped: true } => {
                    return Err("a placeholder cannot follow a lone backslash in a JSON string");
                }
            },
            Format::Xml => match self.xml {
                XmlState::Text => Slot::XmlText,
                XmlState::AttrDouble | XmlState::AttrSingle => Slot::XmlAttr,
                XmlState::Cdata => Slot::XmlCdata,
                XmlState::Comment => Slot::XmlComment,
                XmlState::Tag => {
                    return Err(
                        "a placeholder inside an XML tag must stand in an attribute value (name=\"<<x>>\")",
                    );
                }
                XmlState::Instruction | XmlState::Declaration => {
                    return Err(
                        "a placeholder cannot stand in an XML declaration or processing instruction",
                    );
                }
            },
            Format::Header => Slot::Header,
            Format::Url => Slot::Url,
        })
    }

    /// Advances the state over literal template text.
    fn feed(&mut self, text: &str) {
        match self.format {
            Format::Json => {
                for b in text.bytes() {
                    self.json = match (self.json, b) {
                        (JsonState::Outside, b'"') => JsonState::InString { escaped: false },
                        (JsonState::Outside, _) => JsonState::Outside,
                        (JsonState::InString { escaped: true }, _) => {
                            JsonState::InString { escaped: false }
                        }
                        (JsonState::InString { escaped: false }, b'\\') => {
                            JsonState::InString { escaped: true }
                        }
                        (JsonState::InString { escaped: false }, b'"') => JsonState::Outside,
                        (s @ JsonState::InString { .. }, _) => s,
                    };
                }
            }
            Format::Xml => {
                let bytes = text.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    let rest = &text[i..];
                    let (next, skip) = match self.xml {
                        XmlState::Text if rest.starts_with("<!--") => (XmlState::Comment, 4),
                        XmlState::Text if rest.starts_with("<![CDATA[") => (XmlState::Cdata, 9),
                        XmlState::Text if rest.starts_with("<?") => (XmlState::Instruction, 2),
                        XmlState::Text if rest.starts_with("<!") => (XmlState::Declaration, 2),
                        XmlState::Text if rest.starts_with('<') => (XmlState::Tag, 1),
                        XmlState::Tag if rest.starts_with('"') => (XmlState::AttrDouble, 1),
                        XmlState::Tag if rest.starts_with('\'') => (XmlState::AttrSingle, 1),
                        XmlState::Tag if rest.starts_with('>') => (XmlState::Text, 1),
                        XmlState::AttrDouble if rest.starts_with('"') => (XmlState::Tag, 1),
                        XmlState::AttrSingle if rest.starts_with('\'') => (XmlState::Tag, 1),
                        XmlState::Comment if rest.starts_with("-->") => (XmlState::Text, 3),
                        XmlState::Cdata if rest.starts_with("]]>") => (XmlState::Text, 3),
                        XmlState::Instruction if rest.starts_with("?>") => (XmlState::Text, 2),
                        XmlState::Declaration if rest.starts_with('>') => (XmlState::Text, 1),
                        s => (s, rest.chars().next().map_or(1, char::len_utf8)),
                    };
                    self.xml = next;
                    i += skip;
                }
            }
            Format::Header | Format::Url => {}
        }
    }
}

/// Finds the end of a `<< … >>` or `<% … %>` tag starting at `start` (the
/// offset just past the opening delimiter), skipping string literals in the
/// expression. Returns the offset of the closing delimiter.
fn find_tag_end(src: &str, start: usize, end: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = start;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'"' || b == b'\'' {
                    quote = Some(b);
                } else if bytes[i..].starts_with(end.as_bytes()) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Is this block tag body `raw` (possibly with whitespace-control markers)?
fn is_raw_tag(inner: &str) -> bool {
    inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw"
}

/// Rewrites every placeholder of `src` to pass its value through the escaper
/// of the slot it stands in. Unterminated tags are left as they are: the
/// template compiler reports them with their position.
pub fn rewrite(src: &str, format: Format) -> Result<String, Misplaced> {
    walk(src, format, |out, slot, lead, inner, trail| {
        out.push_str(VAR_START);
        out.push_str(lead);
        out.push_str(" (");
        out.push_str(inner);
        out.push_str(") | ");
        out.push_str(slot.filter_name());
        out.push(' ');
        out.push_str(trail);
        out.push_str(VAR_END);
    })
}

/// The XML body `src` as rendered with every placeholder's escaper writing
/// `value`, when the body's shape cannot vary. `None` when `src` has block
/// tags, comments or whitespace control (they can change the structure), a
/// markup declaration, a misplaced placeholder, or one in CDATA or an XML
/// comment (whose escapers cannot see the literal text beside them: `]]`
/// before a `>`). Element text and attribute values escape every character
/// markup is made of, so when the probes with the values of
/// [`super::wellformed::always_well_formed_xml`] are well-formed, every
/// render is.
pub fn probe(src: &str, value: &str) -> Option<String> {
    if src.contains(BLOCK_START) || src.contains(COMMENT_START) || has_declaration(src) {
        return None;
    }
    let mut varies = false;
    let out = walk(src, Format::Xml, |out, slot, lead, _, trail| {
        varies |=
            !lead.is_empty() || !trail.is_empty() || !matches!(slot, Slot::XmlText | Slot::XmlAttr);
        out.push_str(&super::escape::write_slot(
            slot,
            &minijinja::Value::from(value),
        ));
    })
    .ok()?;
    (!varies).then_some(out)
}

/// Whether `src` has a markup declaration (`<!DOCTYPE`, `<!ENTITY`, …),
/// whose quoted parts the lexer does not follow.
fn has_declaration(src: &str) -> bool {
    src.match_indices("<!")
        .any(|(i, _)| !src[i..].starts_with("<!--") && !src[i..].starts_with("<![CDATA["))
}

/// Copies `src`, feeding its literal text to the body format's state
/// machine, and lets `placeholder` write each placeholder (its slot,
/// whitespace-control marks and expression).
fn walk(
    src: &str,
    format: Format,
    mut placeholder: impl FnMut(&mut String, Slot, &str, &str, &str),
) -> Result<String, Misplaced> {
    let mut out = String::with_capacity(src.len() + 64);
    let mut ctx = Context::new(format);
    let mut pos = 0;
    while pos < src.len() {
        // Next opening delimiter of any kind.
        let next = [VAR_START, BLOCK_START, COMMENT_START]
            .iter()
            .filter_map(|d| src[pos..].find(d).map(|i| (pos + i, *d)))
            .min_by_key(|(i, _)| *i);
        let Some((open, delim)) = next else {
            ctx.feed(&src[pos..]);
            out.push_str(&src[pos..]);
            break;
        };
        ctx.feed(&src[pos..open]);
        out.push_str(&src[pos..open]);
        let inner_start = open + 2;
        match delim {
            COMMENT_START => {
                let Some(close) = src[inner_start..].find(COMMENT_END) else {
                    out.push_str(&src[open..]);
                    break;
                };
                let end = inner_start + close + 2;
                out.push_str(&src[open..end]);
                pos = end;
            }
            BLOCK_START => {
                let Some(close) = find_tag_end(src, inner_start, BLOCK_END) else {
                    out.push_str(&src[open..]);
                    break;
                };
                let end = close + 2;
                out.push_str(&src[open..end]);
                pos = end;
                if is_raw_tag(&src[inner_start..close]) {
                    // Everything up to endraw is literal text of the body.
                    let body_end = find_endraw(src, pos).unwrap_or(src.len());
                    ctx.feed(&src[pos..body_end]);
                    out.push_str(&src[pos..body_end]);
                    pos = body_end;
                }
            }
            _ => {
                let Some(close) = find_tag_end(src, inner_start, VAR_END) else {
                    out.push_str(&src[open..]);
                    break;
                };
                let slot = ctx.slot().map_err(|reason| Misplaced {
                    offset: open,
                    reason,
                })?;
                let mut inner = &src[inner_start..close];
                let mut lead = "";
                let mut trail = "";
                if inner.starts_with(['-', '+']) {
                    lead = &inner[..1];
                    inner = &inner[1..];
                }
                if inner.ends_with(['-', '+']) {
                    trail = &inner[inner.len() - 1..];
                    inner = &inner[..inner.len() - 1];
                }
                if inner.trim().is_empty() {
                    // Let the compiler report the empty expression.
                    out.push_str(&src[open..close + 2]);
                } else {
                    placeholder(&mut out, slot, lead, inner, trail);
                }
                pos = close + 2;
            }
        }
    }
    Ok(out)
}

/// Offset of the `<%` of the `endraw` tag after `from`, if any.
fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(i) = src[pos..].find(BLOCK_START) {
        let open = pos + i;
        let close = src[open + 2..].find(BLOCK_END)? + open + 2;
        if src[open + 2..close].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
            == "endraw"
        {
            return Some(open);
        }
        pos = close + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(src: &str, f: Format) -> String {
        rewrite(src, f).unwrap()
    }

    #[test]
    fn json_string_and_value_slots() {
        let out = rw(r#"{"a":"x<<name>>y","b":<<count>>}"#, Format::Json);
        assert_eq!(
            out,
            r#"{"a":"x<< (name) | __herald_json_string >>y","b":<< (count) | __herald_json_value >>}"#
        );
    }

    #[test]
    fn json_escaped_quote_stays_in_string() {
        let out = rw(r#"{"a":"say \"<<x>>\"","b":<<y>>}"#, Format::Json);
        assert!(out.contains("(x) | __herald_json_string"));
        assert!(out.contains("(y) | __herald_json_value"));
    }

    #[test]
    fn xml_slots() {
        let src = r#"<?xml version="1.0"?><a k="<<x>>" j='<<y>>'><<t>><![CDATA[<<c>>]]><!-- <<m>> --></a>"#;
        let out = rw(src, Format::Xml);
        assert!(
            out.contains(r#"k="<< (x) | __herald_xml_attr >>""#),
            "{out}"
        );
        assert!(out.contains("j='<< (y) | __herald_xml_attr >>'"), "{out}");
        assert!(out.contains("><< (t) | __herald_xml_text >><"), "{out}");
        assert!(
            out.contains("CDATA[<< (c) | __herald_xml_cdata >>]]"),
            "{out}"
        );
        assert!(out.contains("<< (m) | __herald_xml_comment >>"), "{out}");
    }

    #[test]
    fn xml_placeholder_in_tag_is_refused() {
        let err = rewrite("<a <<x>>=\"1\"/>", Format::Xml).unwrap_err();
        assert_eq!(err.offset, 3);
    }

    #[test]
    fn blocks_comments_and_whitespace_markers() {
        let src = r#"[<%- for e in events %><<- e.id ->>,<% endfor %><# "note #>"<<z>>"]"#;
        let out = rw(src, Format::Json);
        assert!(
            out.contains("<<- ( e.id ) | __herald_json_value ->>"),
            "{out}"
        );
        // The quote inside the comment does not open a string.
        assert!(
            out.contains("\"<< (z) | __herald_json_string >>\""),
            "{out}"
        );
    }

    #[test]
    fn string_literal_with_closing_delimiter_inside_expression() {
        let out = rw(r#"{"a":<<x or ">>">>}"#, Format::Json);
        assert_eq!(out, r#"{"a":<< (x or ">>") | __herald_json_value >>}"#);
    }

    #[test]
    fn raw_block_is_literal() {
        let out = rw(r#"{"a":"<% raw %><<not>><% endraw %>"}"#, Format::Json);
        assert_eq!(out, r#"{"a":"<% raw %><<not>><% endraw %>"}"#);
    }

    #[test]
    fn placeholder_after_lone_backslash_is_refused() {
        assert!(rewrite(r#"{"a":"\<<x>>"}"#, Format::Json).is_err());
        assert!(rewrite(r#"{"a":"\\<<x>>"}"#, Format::Json).is_ok());
    }

    #[test]
    fn multibyte_text_around_tags() {
        let out = rw("{\"ü\":\"é<<x>>ß\",\"€\":<<y>>}", Format::Json);
        assert!(out.contains("é<< (x) | __herald_json_string >>ß"), "{out}");
        assert!(rw("<a>ü<<x>>€</a>", Format::Xml).contains("ü<< (x) | __herald_xml_text >>€"));
    }

    #[test]
    fn unterminated_is_left_for_the_compiler() {
        assert_eq!(rw(r#"{"a":<<x}"#, Format::Json), r#"{"a":<<x}"#);
    }
}

#[cfg(test)]
mod probe_tests {
    use super::probe;

    #[test]
    fn a_fixed_shape_probes_with_each_placeholder_escaped() {
        assert_eq!(
            probe(r#"<a id="<<event.uuid>>"><b><<room>></b></a>"#, "x").as_deref(),
            Some(r#"<a id="x"><b>x</b></a>"#)
        );
    }

    #[test]
    fn shapes_that_can_vary_are_not_probed() {
        for src in [
            "<a><% if x %><b/><% endif %></a>",
            "<a><# note #><<x>></a>",
            "<a> <<- x >></a>",
            "<a><![CDATA[<<x>>]]></a>",
            "<a><!-- <<x>> --></a>",
            "<a <<x>>/>",
            r#"<!DOCTYPE a [<!ENTITY e "><<x>>">]><a/>"#,
        ] {
            assert_eq!(probe(src, "x"), None, "{src}");
        }
    }
}
