//! `{{ … }}` placeholders, as the appliance's webhook guide writes them
//! (`"id":"{{event.uuid}}"`), read as herald's own `<< … >>`: a template
//! pasted from the guide renders exactly like the `<<…>>` preset, with the
//! same escaping by position and the same data.
//!
//! Only a `{{` … `}}` around a plain name path (`event.uuid`,
//! `backend_data.pms.room`, spaces allowed inside the braces) is a
//! placeholder; any other `{{` is text. A literal `{{name}}` is written
//! `<<"{{">>name}}`. Both delimiters are two bytes, so the converted text
//! has every byte where the admin's text has it: errors point at the
//! admin's own line and column.

use std::borrow::Cow;

/// `src` with every `{{ name.path }}` written `<< name.path >>`.
pub fn to_angle(src: &str) -> Cow<'_, str> {
    if !src.contains("{{") {
        return Cow::Borrowed(src);
    }
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = src[i..].find("{{") {
        let start = i + found;
        let Some(len) = path_then_close(&bytes[start + 2..]) else {
            i = start + 1;
            continue;
        };
        let end = start + 2 + len; // the first `}` of the closing `}}`
        out.push_str(&src[copied..start]);
        out.push_str("<<");
        out.push_str(&src[start + 2..end]);
        out.push_str(">>");
        copied = end + 2;
        i = copied;
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

/// Whether `src` has a `{{ … }}` placeholder.
pub fn has_curly(src: &str) -> bool {
    matches!(to_angle(src), Cow::Owned(_))
}

/// The length of ` name.path ` before a `}}` at the start of `rest`, if
/// that is what `rest` begins with.
fn path_then_close(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    while rest.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut segments = 0;
    loop {
        let start = i;
        while rest
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        if i == start || rest[start].is_ascii_digit() && segments == 0 {
            return None;
        }
        segments += 1;
        if rest.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    while rest.get(i) == Some(&b' ') {
        i += 1;
    }
    rest[i..].starts_with(b"}}").then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_paths_in_double_braces_become_placeholders_of_the_same_length() {
        let guide =
            r#""id":"{{event.uuid}}", "room":"{{ backend_data.pms.room }}", "n":{{volume_used}}"#;
        let angle = to_angle(guide);
        assert_eq!(
            angle,
            r#""id":"<<event.uuid>>", "room":"<< backend_data.pms.room >>", "n":<<volume_used>>"#
        );
        assert_eq!(angle.len(), guide.len());
        assert!(has_curly(guide));
    }

    #[test]
    fn other_double_braces_stay_text() {
        for text in [
            "{{}}",
            "{{ }}",
            "{{ \"x\" }}",
            "{{#each items}}",
            "{{a b}}",
            "{{a.}}",
            "{{.a}}",
            "{{1x}}",
            "{{a}",
            r#"<<"{{">>event.uuid}}"#,
            "no braces",
            "{\"a\":{\"b\":1}}",
        ] {
            assert_eq!(to_angle(text), text, "{text}");
            assert!(!has_curly(text), "{text}");
        }
        // One placeholder after a brace that is text.
        assert_eq!(to_angle("{{{a}}}"), "{<<a>>}");
        assert_eq!(to_angle("{\"x\":{{a}}}"), "{\"x\":<<a>>}");
    }
}
