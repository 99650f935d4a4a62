//! A list answer read item by item: each object is handed over as soon as
//! it is read, so a list of thousands is never held whole as typed
//! objects (a `Pod` takes several times its JSON).

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// A `…List` object: its `items`, each given to `keep`; what `keep`
/// returns is collected in `kept`; its `metadata.continue`, when the list
/// is a page with more to come. Other fields are read past.
pub(super) struct Items<'a, K, T> {
    pub keep: &'a (dyn Fn(K) -> Option<T> + Sync),
    pub kept: &'a mut Vec<T>,
}

/// What one page of a list said besides its items.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Page {
    /// Items read (kept or not).
    pub items: usize,
    /// `metadata.continue`: the token for the next page (an empty one is
    /// none, as the API server means it).
    pub next: Option<String>,
}

/// A list's `metadata`, of which only `continue` matters here.
#[derive(serde::Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    next: Option<String>,
}

impl<'de, K: DeserializeOwned, T> DeserializeSeed<'de> for Items<'_, K, T> {
    type Value = Page;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Page, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K: DeserializeOwned, T> Visitor<'de> for Items<'_, K, T> {
    type Value = Page;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list object with `items`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut items = None;
        let mut meta: Option<Option<ListMeta>> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "items" if items.is_none() => {
                    items = Some(map.next_value_seed(Each {
                        keep: self.keep,
                        kept: &mut *self.kept,
                    })?);
                }
                "items" => return Err(de::Error::duplicate_field("items")),
                "metadata" if meta.is_none() => meta = Some(map.next_value()?),
                "metadata" => return Err(de::Error::duplicate_field("metadata")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Page {
            items: items.ok_or_else(|| de::Error::missing_field("items"))?,
            next: meta
                .flatten()
                .and_then(|m| m.next)
                .filter(|c| !c.is_empty()),
        })
    }
}

/// The `items` array (`null` is an empty list, as Kubernetes may send).
struct Each<'a, K, T> {
    keep: &'a (dyn Fn(K) -> Option<T> + Sync),
    kept: &'a mut Vec<T>,
}

impl<'de, K: DeserializeOwned, T> DeserializeSeed<'de> for Each<'_, K, T> {
    /// Items read.
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: DeserializeOwned, T> Visitor<'de> for Each<'_, K, T> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut read = 0;
        while let Some(item) = seq.next_element::<K>()? {
            read += 1;
            if let Some(t) = (self.keep)(item) {
                self.kept.push(t);
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<String>, serde_json::Error> {
        read_page(text).map(|(kept, _)| kept)
    }

    fn read_page(text: &str) -> Result<(Vec<String>, Page), serde_json::Error> {
        let keep = |p: k8s_openapi::api::core::v1::Pod| p.metadata.name.filter(|n| n != "skip");
        let mut kept = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        let page = Items {
            keep: &keep,
            kept: &mut kept,
        }
        .deserialize(&mut de)
        .and_then(|page| de.end().map(|()| page))?;
        Ok((kept, page))
    }

    /// A page's continue token is read wherever `metadata` comes; an
    /// empty one means the last page; items are counted kept or not.
    #[test]
    fn a_page_says_what_comes_next() {
        let page = r#"{"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"skip"}}],
            "metadata":{"resourceVersion":"9","continue":"eyJ2Ijoi","remainingItemCount":3}}"#;
        let (kept, page) = read_page(page).unwrap();
        assert_eq!(kept, ["a"]);
        assert_eq!(
            page,
            Page {
                items: 2,
                next: Some("eyJ2Ijoi".into())
            }
        );
        for last in [
            r#"{"metadata":{"continue":""},"items":[]}"#,
            r#"{"metadata":null,"items":[]}"#,
            r#"{"metadata":{},"items":null}"#,
        ] {
            assert_eq!(read_page(last).unwrap().1.next, None, "{last}");
        }
        assert!(read_page(r#"{"metadata":{"continue":7},"items":[]}"#).is_err());
        assert!(read_page(r#"{"metadata":{},"metadata":{},"items":[]}"#).is_err());
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
