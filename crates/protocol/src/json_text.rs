//! The browser's messages written as JSON text by hand: strings, integers, arrays of strings and one object of
//! strings are all they hold, and serde_json's serializer (with serde's derived code for each message) would be
//! several KB of every page's `.wasm` for that. The text is byte for byte what serde_json writes for the same
//! message (`client_message`'s tests compare the two).

/// Appends `text` as a JSON string, escaped as serde_json escapes it: `"` and `\`, the two-character escapes for
/// backspace, form feed, newline, carriage return and tab, `\u00XX` for the other control characters below
/// U+0020; everything else as it is.
pub(crate) fn push_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let byte = u32::from(c);
                out.push_str("\\u00");
                out.push(char::from(HEX[(byte >> 4) as usize]));
                out.push(char::from(HEX[(byte & 0xf) as usize]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `"name":` (`name` is one of the messages' own field names, which need no escaping).
pub(crate) fn push_name(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

/// Appends `texts` as a JSON array of strings.
pub(crate) fn push_strings(out: &mut String, texts: &[String]) {
    out.push('[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, text);
    }
    out.push(']');
}
