//! Whether a rendered request is what herald may send: an absolute http(s)
//! URL, one well-formed JSON or XML document. Pure text checks, shared by
//! rendering, the save-time check and the web form's preview; and which
//! XML bodies need the check only once, when compiled.

/// Is `url` an absolute http(s) URL with a host?
pub fn check_url_text(url: &str) -> Result<(), (&'static str, String)> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err((
            "url",
            format!(
                "{url:?} must be an http:// or https:// URL with a host (scheme is {})",
                u.scheme()
            ),
        )),
        Err(e) => Err(("url", format!("{url:?} is not a valid URL: {e}"))),
    }
}

/// Is `body` one well-formed JSON document?
pub fn check_json(body: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| format!("the body is not valid JSON: {e}"))
}

/// Is `body` one well-formed XML document (one root element, matched tags,
/// no text outside the root)?
pub fn check_xml(body: &str) -> Result<(), String> {
    use quick_xml::events::Event as X;
    let mut reader = quick_xml::Reader::from_str(body);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let ev = reader.read_event().map_err(|e| {
            format!(
                "the body is not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match ev {
            X::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            X::End(_) => depth = depth.saturating_sub(1),
            X::Empty(_) if depth == 0 => roots += 1,
            X::Text(t)
                if depth == 0 && !t.borrow().into_inner().chars().all(char::is_whitespace) =>
            {
                return Err("the body has text outside its root element".into());
            }
            X::GeneralRef(r) => {
                if depth == 0 {
                    return Err("the body has content outside its root element".into());
                }
                let known = matches!(
                    r.xml10_content().as_ref(),
                    "amp" | "lt" | "gt" | "quot" | "apos"
                );
                if !known && !matches!(r.resolve_char_ref(), Ok(Some(_))) {
                    return Err(format!(
                        "the body is not well-formed XML: unknown entity reference &{};",
                        r.into_inner()
                    ));
                }
            }
            X::CData(_) if depth == 0 => {
                return Err("the body has content outside its root element".into());
            }
            X::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err("the body is not well-formed XML: an element is not closed".into());
    }
    if roots != 1 {
        return Err(format!(
            "the body must have exactly one root element, found {roots}"
        ));
    }
    if body.chars().any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')) {
        return Err("the body holds characters XML 1.0 does not allow".into());
    }
    Ok(())
}

/// Values an XML body is probed with: a plain letter, and the characters
/// markup and references are made of (a placeholder inside `&#…;` or `&…;`
/// written around it in the literal text is well-formed for one and not the
/// other).
const PROBE_VALUES: [&str; 2] = ["x", "<\"'&;#]]>"];

/// Whether every render of the XML body template `src` is well-formed,
/// whatever the values: its shape cannot vary and its probes (see
/// [`super::lexer::probe`]) are well-formed. Such a body is checked once,
/// when compiled, instead of per render.
pub fn always_well_formed_xml(src: &str) -> bool {
    PROBE_VALUES
        .iter()
        .all(|v| super::lexer::probe(src, v).is_some_and(|p| check_xml(&p).is_ok()))
}
