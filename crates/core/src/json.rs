//! Building blocks for reading vendor JSON without copying its text: connectors parse each
//! response body into types that borrow from it ([`crate::http::HttpResponse::json_borrowed`]),
//! so a page of records costs no allocation per string.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON string, borrowed from the input when it holds no escapes, copied when it does.
/// (serde's own `Cow<str>` borrows only as a struct field of its own, not as a map key or
/// inside an `Option`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit(PhantomData))
    }
}

/// A JSON object whose text is borrowed from the input: its (name, value) pairs in the order
/// they were sent. A vendor record has a dozen or two fields, so a scan beats hashing, and
/// reading a page copies no string.
#[derive(Debug, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

/// One value of an [`Object`].
#[derive(Debug)]
pub enum Field<'a> {
    /// `null`.
    Null,
    /// A string.
    Text(Cow<'a, str>),
    /// A checkbox.
    Bool(bool),
    /// A number, as serde_json read it.
    Number(serde_json::Number),
    /// A nested object (a Salesforce relationship, say).
    Object(Object<'a>),
    /// An array, skipped (no mapped field holds one).
    Array,
}

impl<'a> FromIterator<(Cow<'a, str>, Field<'a>)> for Object<'a> {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Field<'a>)>>(fields: I) -> Self {
        Object(fields.into_iter().collect())
    }
}

impl<'a> Object<'a> {
    /// The value of field `name`, if the record has it.
    pub fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl Field<'_> {
    /// A scalar's text: a string borrowed, a number or flag in its JSON spelling; `None` for
    /// `null`, objects and arrays.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Field::Text(s) => Some(Cow::Borrowed(s)),
            Field::Number(n) => Some(Cow::Owned(n.to_string())),
            Field::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value of field `name` of a nested object.
    pub fn get(&self, name: &str) -> Option<&Field<'_>> {
        match self {
            Field::Object(row) => row.get(name),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Field::deserialize(d)? {
            Field::Object(row) => Ok(row),
            _ => Err(serde::de::Error::custom("expected an object")),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Field::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Field::Null, Field::Number))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(name) = map.next_key::<Text<'a>>()? {
                    out.push((name.0, map.next_value::<Field<'a>>()?));
                }
                Ok(Field::Object(Object(out)))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Array)
            }
        }
        d.deserialize_any(Visit(PhantomData))
    }
}

/// A whole JSON value whose text is borrowed from the input, arrays included: for vendors whose
/// records hold lists that are read (Pipedrive's emails and phones), where [`Field`] skips
/// them. Objects keep their (name, value) pairs in the order sent, looked up by a scan.
#[derive(Debug)]
pub enum Tree<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json read it.
    Number(serde_json::Number),
    /// A string.
    Text(Cow<'a, str>),
    /// An array.
    List(Vec<Tree<'a>>),
    /// An object.
    Object(Vec<(Cow<'a, str>, Tree<'a>)>),
}

impl<'a> Tree<'a> {
    /// The value of field `name` of an object (`None` for other values).
    pub fn get(&self, name: &str) -> Option<&Tree<'a>> {
        match self {
            Tree::Object(pairs) => pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tree::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Tree::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// A flag.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Tree::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_list(&self) -> Option<&[Tree<'a>]> {
        match self {
            Tree::List(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Tree::Object(_))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Tree<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Tree<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Tree::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Tree::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Tree::Text(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Tree::Null, Tree::Number))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Tree::Null)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(name) = map.next_key::<Text<'a>>()? {
                    out.push((name.0, map.next_value::<Tree<'a>>()?));
                }
                Ok(Tree::Object(out))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(item) = seq.next_element::<Tree<'a>>()? {
                    out.push(item);
                }
                Ok(Tree::List(out))
            }
        }
        d.deserialize_any(Visit(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_copies_escaped_ones() {
        let plain: Text<'_> = serde_json::from_str(r#""Zoë""#).unwrap();
        assert!(matches!(plain.0, Cow::Borrowed("Zoë")));
        let escaped: Text<'_> = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(&*escaped, "a\"b");
        assert!(matches!(escaped.0, Cow::Owned(_)));
    }

    #[test]
    fn objects_keep_scalars_and_nesting() {
        let text = r#"{"a": "x", "n": 1000000.0, "i": 250, "b": true, "z": null,
                       "o": {"k": "v"}, "l": [1, {"m": 2}]}"#;
        let o: Object<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(o.get("a").and_then(Field::text).as_deref(), Some("x"));
        assert_eq!(
            o.get("n").and_then(Field::text).as_deref(),
            Some("1000000.0")
        );
        assert_eq!(o.get("i").and_then(Field::text).as_deref(), Some("250"));
        assert_eq!(o.get("b").and_then(Field::text).as_deref(), Some("true"));
        assert!(matches!(o.get("z"), Some(Field::Null)));
        assert_eq!(
            o.get("o").and_then(|f| f.get("k")).and_then(Field::as_str),
            Some("v")
        );
        assert!(matches!(o.get("l"), Some(Field::Array)));
        assert!(o.get("missing").is_none());
        assert!(serde_json::from_str::<Object<'_>>("[]").is_err());
    }

    #[test]
    fn trees_keep_lists_and_borrow_their_text() {
        let text = r#"{"id": 7, "emails": [{"value": "a@example.org", "primary": true}],
                       "ids": [1, 2], "o": {"k": "v\"w"}, "f": 1.5, "z": null}"#;
        let t: Tree<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(t.get("id").and_then(Tree::as_u64), Some(7));
        let emails = t.get("emails").and_then(Tree::as_list).unwrap();
        assert_eq!(
            emails[0].get("value").and_then(Tree::as_str),
            Some("a@example.org")
        );
        assert!(matches!(
            emails[0].get("value"),
            Some(Tree::Text(Cow::Borrowed(_)))
        ));
        assert_eq!(emails[0].get("primary").and_then(Tree::as_bool), Some(true));
        assert_eq!(
            t.get("ids").and_then(Tree::as_list).map(<[_]>::len),
            Some(2)
        );
        assert_eq!(
            t.get("o").and_then(|o| o.get("k")).and_then(Tree::as_str),
            Some("v\"w")
        );
        assert!(t.get("o").is_some_and(Tree::is_object));
        assert_eq!(t.get("f").and_then(Tree::as_u64), None);
        assert!(matches!(t.get("z"), Some(Tree::Null)));
        assert!(t.get("missing").is_none() && t.get("id").and_then(|i| i.get("x")).is_none());
    }
}
