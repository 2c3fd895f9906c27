//! The records of an sObject Collections write, parsed without a `serde_json::Value` tree per
//! record: field names and string values borrow from the request body when they hold no
//! escapes. Every record ferry writes passes through here, so this is the emulator's hottest
//! parse.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value as Json};

/// One field value of a record.
#[derive(Clone, Debug)]
pub(crate) enum FieldValue<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    /// An object or an array (a parent by external id, or a mistake), kept as JSON.
    Other(Json),
}

impl FieldValue<'_> {
    /// The string, if the value is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON, for the error messages that quote it.
    pub(crate) fn to_json(&self) -> Json {
        match self {
            FieldValue::Null => Json::Null,
            FieldValue::Bool(b) => Json::Bool(*b),
            FieldValue::Num(n) => Json::Number(n.clone()),
            FieldValue::Str(s) => Json::String(s.as_ref().to_owned()),
            FieldValue::Other(v) => v.clone(),
        }
    }
}

/// A record of the body: its fields in name order, a repeated name keeping its last value,
/// exactly as the `serde_json::Map` (a sorted map) this replaces held them. The write rules
/// walk the fields in this order, so it decides the order of a record's errors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Record<'a> {
    fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
}

impl Record<'_> {
    /// The fields, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue<'_>)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The value of the field named exactly `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&FieldValue<'_>> {
        self.fields
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| &self.fields[i].1)
    }
}

impl<'a> Record<'a> {
    /// A record of `fields` (a row of a Bulk API 2.0 upload): sorted by name, a repeated name
    /// keeping its last value, as a JSON body's record is.
    pub(crate) fn from_fields(mut fields: Vec<(Cow<'a, str>, FieldValue<'a>)>) -> Record<'a> {
        if !fields.is_sorted_by(|a, b| a.0 < b.0) {
            // Reversed, a stable sort and `dedup` keep the last of a repeated name.
            fields.reverse();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            fields.dedup_by(|a, b| a.0 == b.0);
        }
        Record { fields }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Record<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor<'a>(std::marker::PhantomData<Record<'a>>);

        impl<'de: 'a, 'a> Visitor<'de> for RecordVisitor<'a> {
            type Value = Record<'a>;

            // The same words as `serde_json::Map`'s, so a malformed body gets the same message.
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Record::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                // A name is read like a string value, so that it borrows too (JSON object keys
                // are always strings).
                while let Some(key) = map.next_key::<FieldValue>()? {
                    let FieldValue::Str(key) = key else {
                        return Err(de::Error::custom("a field name must be a string"));
                    };
                    fields.push((key, map.next_value()?));
                }
                // Clients that build bodies from sorted maps (ferry does) send names in order.
                Ok(Record::from_fields(fields))
            }
        }

        deserializer.deserialize_map(RecordVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for FieldValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor<'a>(std::marker::PhantomData<FieldValue<'a>>);

        // Mirrors `serde_json::Value`'s own visitor, with strings borrowed.
        impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
            type Value = FieldValue<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any valid JSON value")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(FieldValue::Bool(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(FieldValue::Num(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(FieldValue::Num(v.into()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Number::from_f64(v).map_or(FieldValue::Null, FieldValue::Num))
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldValue::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldValue::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(FieldValue::Str(Cow::Owned(v)))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(FieldValue::Null)
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(FieldValue::Null)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                FieldValue::deserialize(d)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Json::deserialize(SeqAccessDeserializer::new(seq)).map(FieldValue::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Json::deserialize(MapAccessDeserializer::new(map)).map(FieldValue::Other)
            }
        }

        deserializer.deserialize_any(ValueVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_sorted_last_repeat_wins_and_values_as_json() {
        let raw = r#"{"b": 1, "a": "x\"y", "c": {"k": [1, 2.5]}, "b": true, "Z": null}"#;
        let record: Record = serde_json::from_str(raw).unwrap();
        let names: Vec<&str> = record.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["Z", "a", "b", "c"]);
        assert!(matches!(record.get("b"), Some(FieldValue::Bool(true))));
        assert_eq!(record.get("a").and_then(FieldValue::as_str), Some("x\"y"));
        let as_map: serde_json::Map<String, Json> = serde_json::from_str(raw).unwrap();
        for (k, v) in record.iter() {
            assert_eq!(Some(&v.to_json()), as_map.get(k));
        }
        assert!(record.get("missing").is_none());
    }

    #[test]
    fn a_record_that_is_not_an_object_fails_as_a_map_would() {
        let ours = serde_json::from_str::<Vec<Record>>(r#"[{}, "x"]"#).unwrap_err();
        let map =
            serde_json::from_str::<Vec<serde_json::Map<String, Json>>>(r#"[{}, "x"]"#).unwrap_err();
        assert_eq!(ours.to_string(), map.to_string());
    }
}
