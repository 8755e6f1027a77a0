//! Plain JavaScript objects both ways: those the browser API hands out (windows, positions, changes,
//! diagnostics), built property by property with `js_sys`, and the options objects a page gives, read the same
//! way ([`OptionsObject`]). A serializer (`serde_wasm_bindgen`) did this before, for ~20 KB of the client's
//! `.wasm` in generic code; these few fixed shapes (declared in `types.d.ts`) need none of it.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// A new object with `properties`, in order.
pub(super) fn object(properties: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in properties {
        // Setting a property on a fresh plain object cannot throw.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

/// An array of `values`.
pub(super) fn array(values: impl IntoIterator<Item = JsValue>) -> JsValue {
    values.into_iter().collect::<Array>().into()
}

/// An array of strings.
pub(super) fn strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> JsValue {
    array(values.into_iter().map(|s| JsValue::from_str(s.as_ref())))
}

/// A number, or `null`.
pub(super) fn number_or_null(value: Option<f64>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from_f64)
}

/// A plain options object a page gave, read property by property: every property must be one the object's
/// kind knows (a misspelt option is an error, not a silent default), and each must have its type.
pub(super) struct OptionsObject<'a> {
    value: &'a JsValue,
}

impl<'a> OptionsObject<'a> {
    /// `value` as an object of `known` properties (`undefined` ones count as absent).
    pub(super) fn new(value: &'a JsValue, known: &[&str]) -> Result<Self, String> {
        if !value.is_object() || Array::is_array(value) {
            return Err("expected an object".to_string());
        }
        for name in Object::keys(value.unchecked_ref::<Object>()).iter() {
            let name = name.as_string().unwrap_or_default();
            if !known.contains(&name.as_str()) {
                let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                return Err(format!(
                    "unknown field `{name}`, expected one of {}",
                    expected.join(", ")
                ));
            }
        }
        Ok(OptionsObject { value })
    }

    /// Property `name`, `None` when absent, `undefined` or `null`.
    pub(super) fn get(&self, name: &str) -> Option<JsValue> {
        let value = Reflect::get(self.value, &JsValue::from_str(name)).ok()?;
        (!value.is_undefined() && !value.is_null()).then_some(value)
    }

    /// An array of strings; empty when absent.
    pub(super) fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        let wrong = || format!("`{name}` must be an array of strings");
        if !Array::is_array(&value) {
            return Err(wrong());
        }
        Array::from(&value)
            .iter()
            .map(|item| item.as_string().ok_or_else(wrong))
            .collect()
    }

    /// An array of numbers, if given.
    pub(super) fn numbers(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let wrong = || format!("`{name}` must be an array of numbers");
        if !Array::is_array(&value) {
            return Err(wrong());
        }
        Array::from(&value)
            .iter()
            .map(|item| item.as_f64().ok_or_else(wrong))
            .collect::<Result<Vec<f64>, String>>()
            .map(Some)
    }

    /// A string, if given.
    pub(super) fn string(&self, name: &str) -> Result<Option<String>, String> {
        self.get(name)
            .map(|value| {
                value
                    .as_string()
                    .ok_or_else(|| format!("`{name}` must be a string"))
            })
            .transpose()
    }

    /// A number, if given.
    pub(super) fn number(&self, name: &str) -> Result<Option<f64>, String> {
        self.get(name)
            .map(|value| {
                value
                    .as_f64()
                    .ok_or_else(|| format!("`{name}` must be a number"))
            })
            .transpose()
    }

    /// A whole number from 0 to `max`, if given.
    pub(super) fn whole(&self, name: &str, max: u32) -> Result<Option<u32>, String> {
        match self.number(name)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && (0.0..=f64::from(max)).contains(&n) => {
                Ok(Some(n as u32))
            }
            Some(_) => Err(format!("`{name}` must be a whole number from 0 to {max}")),
        }
    }
}
