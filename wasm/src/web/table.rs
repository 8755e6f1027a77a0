//! Rendering the windows into an HTML table body: one row per member, newest first, grouped by key.

use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

use crate::assembler::StreamAssembler;

/// Replaces the rows of `tbody` with the assembler's windows. Each row is `key | score | member`, and carries
/// `data-key` and `data-member` so tests and styles can find it.
pub fn render_table(
    document: &Document,
    tbody: &Element,
    assembler: &StreamAssembler,
) -> Result<(), JsValue> {
    tbody.set_text_content(None);
    for (key, window) in assembler.windows() {
        let key = String::from_utf8_lossy(key);
        for (member, score) in window.newest_first() {
            let member = String::from_utf8_lossy(member);
            let row = document.create_element("tr")?;
            row.set_attribute("data-key", &key)?;
            row.set_attribute("data-member", &member)?;
            for text in [key.as_ref(), &format_score(score), member.as_ref()] {
                let cell = document.create_element("td")?;
                cell.set_text_content(Some(text));
                row.append_child(&cell)?;
            }
            tbody.append_child(&row)?;
        }
    }
    Ok(())
}

/// Integral scores (timestamps, counters) without a trailing ".0"; others as Rust prints them.
fn format_score(score: f64) -> String {
    if score.fract() == 0.0 && score.abs() < 1e15 {
        format!("{}", score as i64)
    } else {
        format!("{score}")
    }
}
