//! A list answer read item by item: each object is handed over as soon as
//! it is read, so a list of thousands is never held whole as typed
//! objects (a `Pod` takes several times its JSON).

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// A `…List` object: its `items`, each given to `keep`; what `keep`
/// returns is collected in `kept`. Other fields are read past.
pub(super) struct Items<'a, K, T> {
    pub keep: &'a (dyn Fn(K) -> Option<T> + Sync),
    pub kept: &'a mut Vec<T>,
}

impl<'de, K: DeserializeOwned, T> DeserializeSeed<'de> for Items<'_, K, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K: DeserializeOwned, T> Visitor<'de> for Items<'_, K, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list object with `items`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "items" && !seen {
                seen = true;
                map.next_value_seed(Each {
                    keep: self.keep,
                    kept: &mut *self.kept,
                })?;
            } else if key == "items" {
                return Err(de::Error::duplicate_field("items"));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if seen {
            Ok(())
        } else {
            Err(de::Error::missing_field("items"))
        }
    }
}

/// The `items` array (`null` is an empty list, as Kubernetes may send).
struct Each<'a, K, T> {
    keep: &'a (dyn Fn(K) -> Option<T> + Sync),
    kept: &'a mut Vec<T>,
}

impl<'de, K: DeserializeOwned, T> DeserializeSeed<'de> for Each<'_, K, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: DeserializeOwned, T> Visitor<'de> for Each<'_, K, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<K>()? {
            if let Some(t) = (self.keep)(item) {
                self.kept.push(t);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<String>, serde_json::Error> {
        let keep = |p: k8s_openapi::api::core::v1::Pod| p.metadata.name.filter(|n| n != "skip");
        let mut kept = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        Items {
            keep: &keep,
            kept: &mut kept,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())?;
        Ok(kept)
    }

    /// Items are kept as `keep` says, in order; other fields, `null`
    /// items and escaped keys are read as serde_json reads them; a list
    /// without `items`, with two, or with an item that is not a pod is
    /// refused, as the typed list refused it.
    #[test]
    fn items_are_read_one_by_one_and_bad_lists_refused() {
        let list = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},
            "items":[{"metadata":{"name":"a"}},{"metadata":{"name":"skip"}},{"metadata":{"name":"b"}}]}"#;
        assert_eq!(read(list).unwrap(), ["a", "b"]);
        assert_eq!(
            read(r#"{"it\u0065ms":[{"metadata":{"name":"e"}}]}"#).unwrap(),
            ["e"]
        );
        assert!(read(r#"{"items":null}"#).unwrap().is_empty());
        assert!(read(r#"{"kind":"PodList"}"#).is_err());
        assert!(read(r#"{"items":[],"items":[]}"#).is_err());
        assert!(read(r#"{"items":[{"metadata":{"name":7}}]}"#).is_err());
        assert!(read(r#"{"items":[]} trailing"#).is_err());
    }
}
