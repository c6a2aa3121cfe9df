//! Escaping for each place a placeholder can stand in: pure functions from a
//! rendered value to the text that keeps the surrounding body well-formed.

use std::fmt::Write;

/// Where a placeholder stands; decides how its value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Inside a JSON string literal: JSON string content, without quotes.
    JsonString,
    /// Where a JSON value goes: the value as JSON (strings quoted, numbers bare,
    /// objects as objects, missing as `null`).
    JsonValue,
    /// XML element text.
    XmlText,
    /// XML attribute value (either quote style).
    XmlAttr,
    /// Inside `<![CDATA[ … ]]>`.
    XmlCdata,
    /// Inside `<!-- … -->`.
    XmlComment,
    /// An HTTP header value: no line breaks or control characters.
    Header,
    /// A URL: the value percent-encoded as one path or query component.
    Url,
}

impl Slot {
    /// The minijinja filter name that writes a value for this slot.
    pub fn filter_name(self) -> &'static str {
        match self {
            Slot::JsonString => "__herald_json_string",
            Slot::JsonValue => "__herald_json_value",
            Slot::XmlText => "__herald_xml_text",
            Slot::XmlAttr => "__herald_xml_attr",
            Slot::XmlCdata => "__herald_xml_cdata",
            Slot::XmlComment => "__herald_xml_comment",
            Slot::Header => "__herald_header",
            Slot::Url => "__herald_url",
        }
    }

    /// Every slot, for registering the filters.
    pub const ALL: [Slot; 8] = [
        Slot::JsonString,
        Slot::JsonValue,
        Slot::XmlText,
        Slot::XmlAttr,
        Slot::XmlCdata,
        Slot::XmlComment,
        Slot::Header,
        Slot::Url,
    ];
}

/// A value as plain text: strings as they are, missing as empty, numbers and
/// booleans as written, lists and objects as compact JSON.
pub fn value_text(value: &minijinja::Value) -> String {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable | ValueKind::Plain => {
            serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
        }
        _ => value.to_string(),
    }
}

/// Writes `value` for `slot`.
pub fn write_slot(slot: Slot, value: &minijinja::Value) -> String {
    use minijinja::value::ValueKind;
    match slot {
        Slot::JsonValue => match value.kind() {
            ValueKind::Undefined | ValueKind::None => "null".to_owned(),
            _ => serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()),
        },
        Slot::JsonString => json_string_content(&value_text(value)),
        Slot::XmlText => xml_text(&value_text(value)),
        Slot::XmlAttr => xml_attr(&value_text(value)),
        Slot::XmlCdata => xml_cdata(&value_text(value)),
        Slot::XmlComment => xml_comment(&value_text(value)),
        Slot::Header => header_value(&value_text(value)),
        Slot::Url => url_component(&value_text(value)),
    }
}

/// JSON string content without the surrounding quotes.
pub fn json_string_content(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a str always serialises");
    quoted[1..quoted.len() - 1].to_owned()
}

/// Is `c` allowed in an XML 1.0 document at all (even escaped)?
fn xml_char_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML element text: `& < >` escaped, CR as a reference (a parser would turn a
/// raw one into LF), characters XML cannot carry replaced by U+FFFD.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char_allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML attribute value: like text, plus both quotes, and tab/CR/LF as
/// character references so attribute normalisation keeps them.
pub fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char_allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// CDATA content: `]]>` split across two sections, forbidden characters replaced.
pub fn xml_cdata(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if xml_char_allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    clean.replace("]]>", "]]]]><![CDATA[>")
}

/// Comment content: no `--`, no trailing `-`.
pub fn xml_comment(s: &str) -> String {
    let mut out: String = xml_cdata(s).replace("--", "- -");
    while out.contains("--") {
        out = out.replace("--", "- -");
    }
    if out.ends_with('-') {
        out.push(' ');
    }
    out
}

/// Header value: control characters (CR and LF above all) become spaces, so a
/// value can never start a new header.
pub fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A URL component: percent-encoded so it cannot add a path segment or query.
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    write!(
        out,
        "{}",
        percent_encoding::utf8_percent_encode(s, COMPONENT)
    )
    .expect("string write");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::Value;

    #[test]
    fn json_string_escapes_quotes_and_controls() {
        assert_eq!(
            json_string_content("a\"b\\c\n\u{1}"),
            "a\\\"b\\\\c\\n\\u0001"
        );
        assert_eq!(json_string_content("😀"), "😀");
    }

    #[test]
    fn json_value_keeps_types() {
        assert_eq!(write_slot(Slot::JsonValue, &Value::from(5)), "5");
        assert_eq!(
            write_slot(Slot::JsonValue, &Value::from("x\"")),
            "\"x\\\"\""
        );
        assert_eq!(write_slot(Slot::JsonValue, &Value::UNDEFINED), "null");
        let obj = Value::from(minijinja::value::Serde(serde_json::json!({"a": [1, true]})));
        assert_eq!(write_slot(Slot::JsonValue, &obj), "{\"a\":[1,true]}");
    }

    #[test]
    fn json_string_of_object_is_its_json_text() {
        let obj = Value::from(minijinja::value::Serde(serde_json::json!({"a": "b"})));
        assert_eq!(write_slot(Slot::JsonString, &obj), "{\\\"a\\\":\\\"b\\\"}");
        assert_eq!(write_slot(Slot::JsonString, &Value::UNDEFINED), "");
    }

    #[test]
    fn xml_escapes() {
        assert_eq!(xml_text("</x> & \u{1}"), "&lt;/x&gt; &amp; \u{FFFD}");
        assert_eq!(xml_attr("a\"'\n"), "a&quot;&apos;&#10;");
        assert_eq!(xml_cdata("a]]>b"), "a]]]]><![CDATA[>b");
        assert_eq!(xml_comment("a--b-"), "a- -b- ");
        assert_eq!(xml_comment("---"), "- - - ");
    }

    #[test]
    fn header_and_url() {
        assert_eq!(header_value("a\r\nX-Evil: 1"), "a  X-Evil: 1");
        assert_eq!(url_component("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
    }
}
