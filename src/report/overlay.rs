//! Which controls of an HDF document count, and with whose results: the
//! rules of inspecjs's `contextualizeEvaluation` (libs/inspecjs
//! `context.ts`, 2.12.6), which Heimdall and the SAF CLI count with.
//!
//! An overlay (wrapper) profile lists copies of the controls it changes,
//! usually without results; the profile it wraps names it in
//! `parent_profile` and holds the results. inspecjs links each copy to the
//! wrapped control of the same id, counts only controls nothing links to
//! (`extendedBy` empty) and reads each one's status and severity from the
//! end of its chain (`root`). Profiles that neither wrap nor are wrapped
//! link controls that share an id to the first of them that has results.
//! Counting every control of every profile instead counts an overlaid
//! control twice and its empty copy as an error (one real report: 161
//! errors where Heimdall shows none).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What linking needs of a profile.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProfileLinks {
    /// `name`, when a string.
    pub name: Option<String>,
    /// `parent_profile`, when a string: the profile that wraps this one.
    pub parent: Option<String>,
}

/// What linking needs of a control, in document order (profile by profile).
#[derive(Debug, Clone)]
pub(crate) struct ControlRef<'a> {
    /// Index of its profile.
    pub profile: usize,
    /// Its id.
    pub id: &'a str,
    /// Whether its `results` array is non-empty.
    pub has_results: bool,
}

/// Overlay links that never end: inspecjs recurses forever on them, and
/// vigil refuses the document rather than drop or guess its controls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "its overlay profiles (`parent_profile`) link control {0} in a cycle, so no control ends the chain; fix the report's profile names"
)]
pub(crate) struct OverlayCycle(String);

/// How many times each control counts, by its index in document order: a
/// counted control gives its place to the end of its chain, so the result
/// is, per control, how many counted controls end at it (0 for the copies
/// and the controls that only sit inside a chain).
pub(crate) fn multiplicity(
    profiles: &[ProfileLinks],
    controls: &[ControlRef<'_>],
) -> Result<Vec<u32>, OverlayCycle> {
    linked(profiles, controls).map(|l| l.times)
}

/// The links of a document's controls, as counting needs them.
struct Linked {
    /// See [`multiplicity`].
    times: Vec<u32>,
    /// Per control, whether another control extends it (inspecjs's
    /// `extendedBy` is not empty): only the others are counted.
    extended: Vec<bool>,
}

fn linked(profiles: &[ProfileLinks], controls: &[ControlRef<'_>]) -> Result<Linked, OverlayCycle> {
    let from = links(profiles, controls);
    let n = controls.len();
    let mut extended = vec![false; n];
    for f in from.iter().flatten() {
        extended[*f] = true;
    }
    // The end of every chain, memoised; a chain met again while walked is a
    // cycle.
    const OPEN: usize = usize::MAX;
    let mut end: Vec<Option<usize>> = vec![None; n];
    let mut path = Vec::new();
    for start in 0..n {
        let mut at = start;
        let root = loop {
            match end[at] {
                Some(OPEN) => {
                    return Err(OverlayCycle(crate::safeio::excerpt(controls[at].id, 80)));
                }
                Some(r) => break r,
                None => {}
            }
            match from[at] {
                Some(next) => {
                    end[at] = Some(OPEN);
                    path.push(at);
                    at = next;
                }
                None => break at,
            }
        };
        end[at] = Some(root);
        for p in path.drain(..) {
            end[p] = Some(root);
        }
    }
    let mut times = vec![0u32; n];
    for k in (0..n).filter(|k| !extended[*k]) {
        let root = end[k].expect("every chain was walked");
        times[root] += 1;
    }
    Ok(Linked { times, extended })
}

/// Each control's link (`extendsFrom[0]`), as inspecjs makes it.
fn links(profiles: &[ProfileLinks], controls: &[ControlRef<'_>]) -> Vec<Option<usize>> {
    // A profile naming a parent is wrapped by the first profile of that
    // name: the wrapper extends from it.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, p) in profiles.iter().enumerate() {
        if let Some(name) = &p.name {
            by_name.entry(name.as_str()).or_insert(i);
        }
    }
    let mut wraps: Vec<Vec<usize>> = vec![Vec::new(); profiles.len()];
    let mut wrapped = vec![false; profiles.len()];
    for (i, p) in profiles.iter().enumerate() {
        if let Some(&parent) = p.parent.as_deref().and_then(|n| by_name.get(n)) {
            wraps[parent].push(i);
            wrapped[i] = true;
        }
    }
    let mut first_in: HashMap<(usize, &str), usize> = HashMap::new();
    // Per id: its first control with results, and its first control.
    let mut by_id: HashMap<&str, (Option<usize>, usize)> = HashMap::new();
    for (k, c) in controls.iter().enumerate() {
        first_in.entry((c.profile, c.id)).or_insert(k);
        let e = by_id.entry(c.id).or_insert((None, k));
        if c.has_results && e.0.is_none() {
            e.0 = Some(k);
        }
    }
    controls
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let p = c.profile;
            if !wraps[p].is_empty() || wrapped[p] {
                // A wrapper's control extends the first wrapped profile's
                // control of its id; a wrapped profile's extend nothing.
                wraps[p]
                    .iter()
                    .find_map(|ep| first_in.get(&(*ep, c.id)).copied())
            } else {
                let (populated, first) = by_id[c.id];
                let root = populated.unwrap_or(first);
                (root != k).then_some(root)
            }
        })
        .collect()
}

/// How an HDF document's controls are counted: by Heimdall and vigil, and
/// by the SAF CLI.
#[derive(Debug, Default)]
pub(crate) struct Counting {
    /// How many times each control counts (see [`multiplicity`]); `None`
    /// when each counts once, as in every document without overlays or
    /// shared ids, or when the document cannot be read (the reader then
    /// says why).
    pub times: Option<Vec<u32>>,
    /// How many counted controls sit outside the first profile. The SAF
    /// CLI's threshold and summary count the first profile's controls only
    /// (`contains[0]` in its `extractStatusCounts` and
    /// `calculateSummariesForExecJSONs`, @mitre/saf 1.5.3), so they count
    /// this many fewer than Heimdall and vigil. An overlay's wrapper comes
    /// first and holds a copy of every control, so it is 0 there.
    pub beyond_first: usize,
}

/// How an HDF document's controls are counted. One pass over the bytes that
/// keeps only the profiles' names and each control's id.
pub(crate) fn of_document(bytes: &[u8]) -> Result<Counting, OverlayCycle> {
    let mut sk = Skeleton::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if de.deserialize_any(SkDoc(&mut sk)).is_err() {
        return Ok(Counting::default());
    }
    if sk.profiles.iter().all(|p| p.parent.is_none()) && !has_shared_ids(&sk.controls) {
        let beyond_first = sk.controls.iter().filter(|(p, _, _)| *p != 0).count();
        return Ok(Counting {
            times: None,
            beyond_first,
        });
    }
    let refs: Vec<ControlRef<'_>> = sk
        .controls
        .iter()
        .map(|(profile, id, has_results)| ControlRef {
            profile: *profile,
            id,
            has_results: *has_results,
        })
        .collect();
    let Linked { times, extended } = linked(&sk.profiles, &refs)?;
    let beyond_first = refs
        .iter()
        .zip(&extended)
        .filter(|(c, extended)| c.profile != 0 && !**extended)
        .count();
    Ok(Counting {
        times: (!times.iter().all(|n| *n == 1)).then_some(times),
        beyond_first,
    })
}

fn has_shared_ids(controls: &[(usize, Cow<'_, str>, bool)]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(controls.len());
    controls.iter().any(|(_, id, _)| !seen.insert(&**id))
}

/// What [`of_document`] keeps: each profile's links, each control's
/// profile, id and whether it has results.
#[derive(Default)]
struct Skeleton<'de> {
    profiles: Vec<ProfileLinks>,
    controls: Vec<(usize, Cow<'de, str>, bool)>,
}

/// A string, or `None` for any other value (read past).
struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The document: its `profiles`.
struct SkDoc<'s, 'de>(&'s mut Skeleton<'de>);

impl<'de> Visitor<'de> for SkDoc<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while let Some(k) = a.next_key::<Cow<'de, str>>()? {
            if k == "profiles" {
                a.next_value_seed(SkProfiles(&mut *self.0))?;
            } else {
                a.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `profiles`.
struct SkProfiles<'s, 'de>(&'s mut Skeleton<'de>);

impl<'de> DeserializeSeed<'de> for SkProfiles<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SkProfiles<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while a.next_element_seed(SkProfile(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One profile: `name`, `parent_profile` (the last of equal keys, as
/// JavaScript reads them) and its controls.
struct SkProfile<'s, 'de>(&'s mut Skeleton<'de>);

impl<'de> DeserializeSeed<'de> for SkProfile<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SkProfile<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let index = self.0.profiles.len();
        self.0.profiles.push(ProfileLinks::default());
        while let Some(k) = a.next_key::<Cow<'de, str>>()? {
            match &*k {
                "name" => {
                    self.0.profiles[index].name =
                        a.next_value::<Text<'de>>()?.0.map(Cow::into_owned);
                }
                "parent_profile" => {
                    self.0.profiles[index].parent =
                        a.next_value::<Text<'de>>()?.0.map(Cow::into_owned);
                }
                "controls" => a.next_value_seed(SkControls {
                    sk: &mut *self.0,
                    profile: index,
                })?,
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A profile's `controls`: each one's id and whether it has results.
struct SkControls<'s, 'de> {
    sk: &'s mut Skeleton<'de>,
    profile: usize,
}

impl<'de> DeserializeSeed<'de> for SkControls<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SkControls<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while let Some(SkControl(id, has_results)) = a.next_element::<SkControl<'de>>()? {
            self.sk
                .controls
                .push((self.profile, id.unwrap_or_default(), has_results));
        }
        Ok(())
    }
}

/// A control's `id` and whether its `results` is a non-empty array.
struct SkControl<'de>(Option<Cow<'de, str>>, bool);

impl<'de> de::Deserialize<'de> for SkControl<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SkControl<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = SkControl(None, false);
                while let Some(k) = a.next_key::<Cow<'de, str>>()? {
                    match &*k {
                        "id" => out.0 = a.next_value::<Text<'de>>()?.0,
                        "results" => out.1 = a.next_value::<NonEmpty>()?.0,
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// Whether a value is a non-empty array (read past either way).
struct NonEmpty(bool);

impl<'de> de::Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut any = false;
                while a.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(NonEmpty(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NonEmpty(false))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, parent: Option<&str>) -> ProfileLinks {
        ProfileLinks {
            name: Some(name.into()),
            parent: parent.map(str::to_string),
        }
    }

    fn c(profile: usize, id: &str, has_results: bool) -> ControlRef<'_> {
        ControlRef {
            profile,
            id,
            has_results,
        }
    }

    /// A wrapper over a base: each overlaid control counts once, at the
    /// base's copy (which holds the results); the base's others count
    /// as they are; a three-layer chain ends at the bottom.
    #[test]
    fn overlays_count_each_control_once_at_its_results() {
        let profiles = [p("wrap", None), p("base", Some("wrap"))];
        let controls = [
            c(0, "A", false),
            c(0, "Z", false),
            c(1, "A", true),
            c(1, "B", true),
        ];
        assert_eq!(multiplicity(&profiles, &controls).unwrap(), [0, 1, 1, 1]);
        let profiles = [
            p("top", None),
            p("mid", Some("top")),
            p("base", Some("mid")),
        ];
        let controls = [c(0, "A", false), c(1, "A", false), c(2, "A", true)];
        assert_eq!(multiplicity(&profiles, &controls).unwrap(), [0, 0, 1]);
    }

    /// Unrelated profiles sharing an id: the first with results is the
    /// root of the others, and each other counts (n copies count n - 1).
    #[test]
    fn shared_ids_link_to_the_first_with_results() {
        let profiles = [p("a", None), p("b", None), p("c", None)];
        let controls = [c(0, "X", false), c(1, "X", true), c(2, "X", true)];
        assert_eq!(multiplicity(&profiles, &controls).unwrap(), [0, 2, 0]);
        let controls = [c(0, "X", false), c(1, "X", false)];
        assert_eq!(multiplicity(&profiles, &controls).unwrap(), [1, 0]);
        let controls = [c(0, "X", true), c(1, "Y", true)];
        assert_eq!(multiplicity(&profiles, &controls).unwrap(), [1, 1]);
    }

    /// Profiles that wrap each other, or themselves, never end a chain.
    #[test]
    fn cycles_are_refused() {
        for profiles in [
            vec![p("a", Some("b")), p("b", Some("a"))],
            vec![p("a", Some("a"))],
        ] {
            let controls = [c(0, "X", true), c(profiles.len() - 1, "X", true)];
            let controls = &controls[..profiles.len()];
            assert!(multiplicity(&profiles, controls).is_err(), "{profiles:?}");
        }
        // A parent that names no profile links nothing.
        let profiles = [p("a", Some("nobody"))];
        assert_eq!(multiplicity(&profiles, &[c(0, "X", true)]).unwrap(), [1]);
    }
}
