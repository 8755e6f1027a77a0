//! Rendering the windows into an HTML table body: one row per item, newest first, grouped by key.

use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

use crate::assembler::StreamAssembler;
use crate::observe::WindowObserver;
use crate::windows::ItemView;

/// Replaces the rows of `tbody` with the assembler's windows. Each row is `key | label | item` (the label is a
/// sorted-set score, a stream entry id, a list index from the end, or a hash field), and carries `data-key`
/// and `data-member` (the item's text) so tests and styles can find it.
pub fn render_table<O: WindowObserver>(
    document: &Document,
    tbody: &Element,
    assembler: &StreamAssembler<O>,
) -> Result<(), JsValue> {
    tbody.set_text_content(None);
    for (key, window) in assembler.windows() {
        let key = String::from_utf8_lossy(key);
        for (index, item) in window.items_newest_first().enumerate() {
            let (label, text) = describe(index, &item);
            let row = document.create_element("tr")?;
            row.set_attribute("data-key", &key)?;
            row.set_attribute("data-member", &text)?;
            for cell_text in [key.as_ref(), &label, &text] {
                let cell = document.create_element("td")?;
                cell.set_text_content(Some(cell_text));
                row.append_child(&cell)?;
            }
            tbody.append_child(&row)?;
        }
    }
    Ok(())
}

/// The label and text of the `index`-th newest item.
pub(crate) fn describe(index: usize, item: &ItemView<'_>) -> (String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match *item {
        ItemView::Member { member, score, .. } => (format_score(score), text(member)),
        ItemView::Entry { entry, fields, .. } => {
            let pairs: Vec<String> = fields
                .chunks(2)
                .map(|p| {
                    format!(
                        "{}={}",
                        text(&p[0]),
                        p.get(1).map_or(String::new(), |v| text(v))
                    )
                })
                .collect();
            (entry.to_string(), pairs.join(" "))
        }
        ItemView::ListItem { value, .. } => (format!("-{}", index + 1), text(value)),
        ItemView::Field { field, value, .. } => (text(field), text(value)),
        ItemView::Value { value, .. } => (String::new(), text(value)),
    }
}

/// Integral scores (timestamps, counters) without a trailing ".0"; others as Rust prints them.
fn format_score(score: f64) -> String {
    if score.fract() == 0.0 && score.abs() < 1e15 {
        format!("{}", score as i64)
    } else {
        format!("{score}")
    }
}
