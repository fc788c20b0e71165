//! [`Item`]: one scraped record — a dynamic map of field names to JSON values that
//! keeps its fields in insertion order (a struct's declared order, as Scrapy's items). Anything `Serialize` converts into one, so a spider can yield
//! its own typed structs or a `serde_json::json!` literal alike.

use serde::Serialize;
use serde_json::{Map, Value};

/// A scraped record.
///
/// ```
/// use arachne::item::Item;
///
/// #[derive(serde::Serialize)]
/// struct Quote { text: String, author: String }
///
/// let item = Item::from(Quote { text: "Hi".into(), author: "Ann".into() });
/// assert_eq!(item.get("author").and_then(|v| v.as_str()), Some("Ann"));
/// assert_eq!(item.to_json(), r#"{"text":"Hi","author":"Ann"}"#); // declared order
/// ```
///
/// `Item` deliberately does not implement `Serialize` itself: that is what lets any
/// `Serialize` value convert into it with `From` (no overlap with `From<Item> for Item`).
/// Serialize its [`fields`](Item::fields) instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item {
    fields: Map<String, Value>,
}

impl Item {
    /// The item as the user's own type (fields the type does not declare are
    /// ignored, unless it says `#[serde(deny_unknown_fields)]`).
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Quote { text: String }
    /// let item = arachne::item::Item::from(serde_json::json!({"text": "Hi", "n": 1}));
    /// assert_eq!(item.to::<Quote>().unwrap().text, "Hi");
    /// ```
    pub fn to<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(serde_json::Value::Object(self.fields.clone()))
    }

    /// An empty item.
    pub fn new() -> Item {
        Item::default()
    }

    /// Sets a field.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Sets a field, builder style.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(key, value);
        self
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// A field as a string, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// All fields.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// All fields, mutable.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.fields
    }

    /// The item as one line of JSON.
    pub fn to_json(&self) -> String {
        // A map of JSON values always serialises.
        serde_json::to_string(&self.fields).unwrap_or_default()
    }
}

impl<T: Serialize> From<T> for Item {
    /// An object becomes the item's fields; any other value is stored under `value`.
    /// A value that cannot be serialised (a map with non-string keys) becomes an item
    /// with an `error` field rather than a panic.
    fn from(value: T) -> Item {
        match serde_json::to_value(value) {
            Ok(Value::Object(fields)) => Item { fields },
            Ok(other) => Item::new().with("value", other),
            Err(e) => Item::new().with("error", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON literal converts field for field.
    #[test]
    fn from_json_literal() {
        let item = Item::from(serde_json::json!({"a": 1, "b": [true]}));
        assert_eq!(item.get("a"), Some(&Value::from(1)));
        assert_eq!(item.fields().len(), 2);
    }

    /// A scalar is kept under `value`.
    #[test]
    fn scalar_goes_under_value() {
        assert_eq!(Item::from(5).get("value"), Some(&Value::from(5)));
    }
}
