//! Reading HDF: vigil's own results, an external scanner's report, InSpec/
//! CINC Auditor JSON and Heimdall exports. One pass over the bytes keeps
//! what vigil uses (the platform's identifiers and, per control, its id,
//! title, impact, severity, Heimdall status and first message) and nothing
//! else: a result is folded into its control as it is read, so memory is
//! bounded by the number of controls, never by the number of results or
//! the size of what they carry (#29: a 40 MB report with a million results
//! once took 881 MB as a `serde_json::Value`).
//!
//! The shape checks (`profiles` and `controls` arrays, a string `id`, a
//! `results` array, an impact from 0.0 to 1.0) are the ones vigil has
//! always applied; everything else is read as JavaScript reads it (Heimdall
//! and the SAF CLI are JavaScript): a field of the wrong type is absent,
//! and of two equal keys the last counts, except that a second `profiles`
//! or `controls` is refused (controls are counted as they are read). `vigil verify`, `open`, `drift`
//! and the runner all read with this code, so they count alike.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::summary::{ControlStatus, Counts, Severity, control_status};
use crate::checks::{Status, TestResult};

/// Characters of a title kept: one more than any excerpt shows, so an
/// excerpt of what is kept reads as an excerpt of the whole.
const KEPT_CHARS: usize = 201;

/// Characters of a message's first line kept: enough for a finding to be
/// shortened around its deciding clauses (`findings::shorten`), never more
/// than the document itself holds.
const KEPT_MESSAGE_CHARS: usize = 2000;

/// What vigil keeps of an HDF document.
#[derive(Debug, Default)]
pub struct Hdf {
    /// `platform.target_id` when it is a non-empty string.
    pub target_id: Option<String>,
    /// `platform.run_id` when it is a string.
    pub run_id: Option<String>,
    /// `platform.image` when it is a string: the source an image target
    /// was read from (vigil's own results).
    pub image: Option<String>,
    /// Every control of every profile, in document order.
    pub controls: Vec<Control>,
}

/// One control of an HDF document, with its results folded in.
#[derive(Debug, Clone)]
pub struct Control {
    /// Control id.
    pub id: String,
    /// Title (may be empty; at most [`KEPT_CHARS`] characters kept).
    pub title: String,
    /// Impact (0.5 when the document gives none).
    pub impact: f64,
    /// Severity as Heimdall reads it: `tags.severityoverride`, then
    /// `tags.severity` (when either is a known severity), then impact
    /// (inspecjs `compat_inspec_1_0.js`, `compute_severity`).
    pub severity: Severity,
    /// Heimdall's status for it.
    pub status: ControlStatus,
    /// The first line of the message of its first error (or else failed)
    /// result, at most [`KEPT_MESSAGE_CHARS`] characters.
    pub message: String,
    /// Where a manifest field decided its first failed (else error)
    /// result: file, line, column (0: unknown).
    pub location: Option<crate::facts::workload::Location>,
    /// Its NIST SP 800-53 controls (`tags.nist`, strings only; at most
    /// [`MAX_NIST_TAGS`], each at most [`KEPT_CHARS`] characters).
    pub nist: Vec<String>,
    /// Its waiver (`waiver_data`), when it has one.
    pub waiver: Option<ControlWaiver>,
    /// How its facts were obtained, as its `tags.evidence` says (vigil
    /// writes it on every control; another tool's word is the target's
    /// `imported`, whatever a tag claims).
    pub evidence: Option<crate::policy::model::Evidence>,
}

/// A control's waiver, as its HDF `waiver_data` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlWaiver {
    /// Why (at most [`KEPT_CHARS`] characters of its first line).
    pub justification: String,
    /// Until when (`expiration_date`, as written).
    pub expires: String,
    /// The waiver applied (`skipped_due_to_waiver`).
    pub active: bool,
}

/// Most NIST tags kept per control.
pub(crate) const MAX_NIST_TAGS: usize = 64;

impl Hdf {
    /// Count the controls with Heimdall's status rules.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for c in &self.controls {
            counts.add_with_severity(&c.id, c.status, c.severity);
        }
        counts
    }
}

impl Control {
    /// Where the SAF CLI's summary will differ from vigil's count of this
    /// control (said at import, never silently).
    pub fn saf_difference(&self) -> Option<String> {
        let id = crate::safeio::excerpt(&self.id, 80);
        if self.status == ControlStatus::Failed && self.impact > 0.0 && self.impact < 0.1 {
            return Some(format!(
                "control {id} failed with impact {} (severity none): the SAF CLI summary leaves it out; vigil counts it",
                self.impact
            ));
        }
        // Heimdall and vigil read a control's severity from its tags first;
        // the SAF CLI's threshold counts by impact alone.
        let by_impact = Severity::of_impact(self.impact);
        (self.severity != by_impact && self.status != ControlStatus::NoImpact).then(|| {
            format!(
                "control {id} is tagged severity {} but has impact {}: Heimdall and vigil count it as {}, the SAF CLI's threshold as {by_impact}",
                self.severity, self.impact, self.severity
            )
        })
    }
}

/// Why a document is not usable HDF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an HDF/InSpec JSON report: {0}")]
pub struct NotHdf(String);

/// Read an HDF document, checking its shape.
pub fn read(bytes: &[u8]) -> Result<Hdf, NotHdf> {
    let mut controls = Vec::new();
    let platform = read_each(bytes, &mut |c| controls.push(c))?;
    Ok(Hdf {
        target_id: platform.target_id,
        run_id: platform.run_id,
        image: platform.image,
        controls,
    })
}

/// What an HDF document says of where it comes from, and how many
/// profiles it has.
#[derive(Debug, Default)]
pub struct Platform {
    /// How many profiles it has.
    pub profiles: usize,
    /// How many of the controls Heimdall and vigil count the SAF CLI's
    /// threshold and summary leave out: they read the first profile only.
    /// 0 for a single profile and for an overlay whose wrapper comes first.
    pub saf_uncounted: usize,
    /// `platform.target_id` when it is a non-empty string.
    pub target_id: Option<String>,
    /// `platform.run_id` when it is a string.
    pub run_id: Option<String>,
    /// `platform.image` when it is a string.
    pub image: Option<String>,
}

/// Read an HDF document, checking its shape, and give each control to
/// `each` as it is read (so a caller that keeps less than every control
/// holds less). A document that breaks a shape rule gives an error, after
/// `each` may have seen some of its controls.
pub fn read_each(bytes: &[u8], each: &mut dyn FnMut(Control)) -> Result<Platform, NotHdf> {
    // Overlays first: which controls count, and how often (one pass that
    // keeps only names and ids; none for documents without them).
    let counting = super::overlay::of_document(bytes).map_err(|e| NotHdf(e.to_string()))?;
    let mut sink = Sink {
        each,
        counted: counting.times.as_deref(),
        next: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let platform = de
        .deserialize_any(DocVisitor(&mut sink))
        .and_then(|p| de.end().map(|()| p))
        .map_err(|e| NotHdf(e.to_string()))?;
    Ok(Platform {
        saf_uncounted: counting.beyond_first,
        ..platform
    })
}

/// Where the controls read go: each to `each` as many times as it counts
/// (`counted`, by document order; once each without overlays).
struct Sink<'a> {
    each: &'a mut dyn FnMut(Control),
    counted: Option<&'a [u32]>,
    next: usize,
}

impl Sink<'_> {
    fn give(&mut self, c: Control) {
        let times = self
            .counted
            .map_or(1, |n| n.get(self.next).copied().unwrap_or(1));
        self.next += 1;
        for _ in 1..times {
            (self.each)(c.clone());
        }
        if times > 0 {
            (self.each)(c);
        }
    }
}

/// A scalar as JavaScript would test it; arrays and objects are read past.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    Num(f64),
    Bool(bool),
    Null,
    Other,
}

impl<'de> Scalar<'de> {
    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object's keys, borrowed where the JSON has no escapes.
type Key<'de> = Cow<'de, str>;

/// Visitor methods that read past a value of a type the caller does not
/// want and give `$none` (JavaScript's `undefined` for a field of the wrong
/// type).
macro_rules! read_past_scalars {
    ($none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

macro_rules! read_past_seq {
    ($none:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

macro_rules! read_past_map {
    ($none:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

/// The top level: `platform` and `profiles`.
struct DocVisitor<'a, 'b>(&'a mut Sink<'b>);

impl<'de> Visitor<'de> for DocVisitor<'_, '_> {
    type Value = Platform;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a `profiles` array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Platform, A::Error> {
        let mut hdf = Platform::default();
        let mut profiles = false;
        while let Some(k) = a.next_key::<Key<'de>>()? {
            match &*k {
                // JavaScript would keep the last of two; controls are
                // counted as they are read, so a second is refused.
                "profiles" if profiles => return Err(de::Error::duplicate_field("profiles")),
                "profiles" => {
                    hdf.profiles = a.next_value_seed(ProfilesSeed(&mut *self.0))?;
                    profiles = true;
                }
                "platform" => {
                    let [target_id, run_id, image] = a
                        .next_value_seed(FieldsSeed::<3>(["target_id", "run_id", "image"]))?
                        .unwrap_or_default();
                    hdf.image = image.and_then(Scalar::into_string);
                    hdf.target_id = target_id
                        .and_then(Scalar::into_string)
                        .filter(|s| !s.is_empty());
                    hdf.run_id = run_id.and_then(Scalar::into_string);
                }
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !profiles {
            return Err(de::Error::custom("no `profiles` array"));
        }
        Ok(hdf)
    }
}

/// `profiles`: each profile's controls are appended to the one list.
struct ProfilesSeed<'a, 'b>(&'a mut Sink<'b>);

impl<'de> DeserializeSeed<'de> for ProfilesSeed<'_, '_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ProfilesSeed<'_, '_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`profiles` to be an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<usize, A::Error> {
        let mut i = 0;
        while a
            .next_element_seed(ProfileSeed {
                index: i,
                out: &mut *self.0,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(i)
    }
}

/// One profile: its `controls`.
struct ProfileSeed<'a, 'b> {
    index: usize,
    out: &'a mut Sink<'b>,
}

impl<'de> DeserializeSeed<'de> for ProfileSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ProfileSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "profiles[{}] to be an object", self.index)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let mut controls = false;
        while let Some(k) = a.next_key::<Key<'de>>()? {
            if &*k == "controls" {
                if controls {
                    return Err(de::Error::custom(format!(
                        "profiles[{}] has two `controls` arrays",
                        self.index
                    )));
                }
                a.next_value_seed(ControlsSeed {
                    profile: self.index,
                    out: &mut *self.out,
                })?;
                controls = true;
            } else {
                a.next_value::<IgnoredAny>()?;
            }
        }
        if !controls {
            return Err(de::Error::custom(format!(
                "profiles[{}] has no `controls` array",
                self.index
            )));
        }
        Ok(())
    }
}

/// A profile's `controls`.
struct ControlsSeed<'a, 'b> {
    profile: usize,
    out: &'a mut Sink<'b>,
}

impl<'de> DeserializeSeed<'de> for ControlsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ControlsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "profiles[{}].controls to be an array", self.profile)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let mut j = 0;
        while let Some(c) = a.next_element_seed(ControlSeed {
            profile: self.profile,
            index: j,
        })? {
            self.out.give(c);
            j += 1;
        }
        Ok(())
    }
}

/// One control, its results folded in as they are read.
struct ControlSeed {
    profile: usize,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ControlSeed {
    type Value = Control;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Control, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ControlSeed {
    type Value = Control;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "profiles[{}].controls[{}] to be an object",
            self.profile, self.index
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Control, A::Error> {
        let (mut id, mut title, mut impact) = (None, None, None);
        let (mut tags, mut nist, mut waiver) = ([None, None, None], Vec::new(), None);
        let mut results = None;
        while let Some(k) = a.next_key::<Key<'de>>()? {
            match &*k {
                "id" => id = Some(a.next_value::<Scalar<'de>>()?),
                "title" => title = Some(a.next_value::<Scalar<'de>>()?),
                "impact" => impact = Some(a.next_value::<Scalar<'de>>()?),
                "tags" => {
                    (tags, nist) = a.next_value_seed(TagsSeed)?.unwrap_or_default();
                }
                "waiver_data" => {
                    let [skipped, justification, expires] = a
                        .next_value_seed(FieldsSeed::<3>([
                            "skipped_due_to_waiver",
                            "justification",
                            "expiration_date",
                        ]))?
                        .unwrap_or_default();
                    let text = |s: Option<Scalar<'_>>| {
                        s.and_then(Scalar::into_string)
                            .map(|t| kept(&t, KEPT_CHARS))
                            .unwrap_or_default()
                    };
                    waiver = Some(ControlWaiver {
                        active: matches!(skipped, Some(Scalar::Bool(true))),
                        justification: text(justification),
                        expires: text(expires),
                    });
                }
                "results" => results = Some(a.next_value_seed(ResultsSeed)?),
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        let at = format!("profiles[{}].controls[{}]", self.profile, self.index);
        let Some(Scalar::Str(id)) = id else {
            return Err(de::Error::custom(format!("{at} has no string `id`")));
        };
        let Some(Some(results)) = results else {
            return Err(de::Error::custom(format!("{at} has no `results` array")));
        };
        let impact = match impact {
            None | Some(Scalar::Null) => 0.5,
            Some(Scalar::Num(n)) if (0.0..=1.0).contains(&n) => n,
            // HDF's impact is 0.0 to 1.0, as the policy validator requires
            // of vigil's own controls: 1e308 is no severity.
            Some(Scalar::Num(n)) => {
                return Err(de::Error::custom(format!(
                    "{at}.impact is {n}, outside 0.0 to 1.0"
                )));
            }
            Some(_) => {
                return Err(de::Error::custom(format!("{at}.impact is not a number")));
            }
        };
        let known = |s: Option<Scalar<'_>>| {
            let Some(Scalar::Str(t)) = s else { return None };
            Severity::of_control_tag(&t)
        };
        let [over, tagged, evidence] = tags;
        let severity = known(over)
            .or_else(|| known(tagged))
            .unwrap_or_else(|| Severity::of_impact(impact));
        Ok(Control {
            id: id.into_owned(),
            title: title
                .and_then(Scalar::into_string)
                .map(|t| kept(&t, KEPT_CHARS))
                .unwrap_or_default(),
            impact,
            severity,
            status: results.status(impact, waiver.as_ref().is_some_and(|w| w.active)),
            nist,
            waiver,
            evidence: match evidence {
                Some(Scalar::Str(e)) => crate::policy::model::Evidence::from_name(&e),
                _ => None,
            },
            location: results.location.clone(),
            message: results
                .first_error
                .or(results.first_failed)
                .unwrap_or_default(),
        })
    }
}

/// At most `max` characters of the first line of `s`.
fn kept(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(max) {
        Some((at, _)) => line[..at].to_string(),
        None => line.to_string(),
    }
}

/// An object's fields named in the array, each a [`Scalar`] (the last of
/// equal keys); `None` when the value is not an object.
struct FieldsSeed<const N: usize>([&'static str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for FieldsSeed<N> {
    type Value = Option<[Option<Scalar<'de>>; N]>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for FieldsSeed<N> {
    type Value = Option<[Option<Scalar<'de>>; N]>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out: [Option<Scalar<'de>>; N] = std::array::from_fn(|_| None);
        while let Some(k) = a.next_key::<Key<'de>>()? {
            match self.0.iter().position(|f| *f == &*k) {
                Some(i) => out[i] = Some(a.next_value::<Scalar<'de>>()?),
                None => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(out))
    }
    read_past_scalars!(None);
    read_past_seq!(None);
}

/// A control's `tags`: the two severity fields and the `nist` strings.
struct TagsSeed;

/// `severityoverride`, `severity` and `evidence`, and the `nist` strings.
type Tags<'de> = ([Option<Scalar<'de>>; 3], Vec<String>);

impl<'de> DeserializeSeed<'de> for TagsSeed {
    type Value = Option<Tags<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TagsSeed {
    type Value = Option<Tags<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let (mut fields, mut nist): Tags<'de> = ([None, None, None], Vec::new());
        while let Some(k) = a.next_key::<Key<'de>>()? {
            match &*k {
                "severityoverride" => fields[0] = Some(a.next_value::<Scalar<'de>>()?),
                "severity" => fields[1] = Some(a.next_value::<Scalar<'de>>()?),
                "evidence" => fields[2] = Some(a.next_value::<Scalar<'de>>()?),
                "nist" => nist = a.next_value_seed(StringsSeed)?,
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some((fields, nist)))
    }
    read_past_scalars!(None);
    read_past_seq!(None);
}

/// The strings of an array (others skipped), at most [`MAX_NIST_TAGS`].
struct StringsSeed;

impl<'de> DeserializeSeed<'de> for StringsSeed {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringsSeed {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = a.next_element::<Scalar<'de>>()? {
            if let (Some(s), true) = (item.into_string(), out.len() < MAX_NIST_TAGS) {
                out.push(kept(&s, KEPT_CHARS));
            }
        }
        Ok(out)
    }
    read_past_scalars!(Vec::new());
    read_past_map!(Vec::new());
}

/// A control's results, folded: which statuses occur, and the first error
/// and failed messages.
#[derive(Default)]
struct Results {
    any: bool,
    statuses: [bool; 4],
    first_error: Option<String>,
    first_failed: Option<String>,
    /// Where the first failed (else error) result's field is written.
    location: Option<crate::facts::workload::Location>,
    location_of_failed: bool,
}

impl Results {
    fn status(&self, impact: f64, waived: bool) -> ControlStatus {
        // One result of each status that occurs is all `control_status`
        // needs (it asks only which occur), so the rules stay in one place.
        let present: Vec<TestResult> = [
            Status::Passed,
            Status::Failed,
            Status::Skipped,
            Status::Error,
        ]
        .into_iter()
        .zip(self.statuses)
        .filter(|(_, seen)| *seen)
        .map(|(status, _)| TestResult {
            location: None,
            not_applicable: false,
            status,
            code_desc: String::new(),
            message: String::new(),
        })
        .collect();
        debug_assert_eq!(self.any, !present.is_empty());
        control_status(&present, impact, waived)
    }
}

/// `results`: `None` when it is not an array.
struct ResultsSeed;

impl<'de> DeserializeSeed<'de> for ResultsSeed {
    type Value = Option<Results>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed {
    type Value = Option<Results>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Results::default();
        while let Some(r) = a.next_element::<OneResult<'de>>()? {
            out.any = true;
            let slot = match r.status {
                Status::Passed => 0,
                Status::Failed => 1,
                Status::Skipped => 2,
                Status::Error => 3,
            };
            out.statuses[slot] = true;
            if r.location.is_some()
                && matches!(r.status, Status::Failed | Status::Error)
                && (out.location.is_none()
                    || (r.status == Status::Failed && !out.location_of_failed))
            {
                out.location_of_failed = r.status == Status::Failed;
                out.location = r.location.clone();
            }
            let first = match r.status {
                Status::Error => &mut out.first_error,
                Status::Failed => &mut out.first_failed,
                _ => continue,
            };
            if first.is_none() {
                *first = Some(kept(
                    r.message.as_deref().unwrap_or_default(),
                    KEPT_MESSAGE_CHARS,
                ));
            }
        }
        Ok(Some(out))
    }
    read_past_scalars!(None);
    read_past_map!(None);
}

/// One result: its status (Heimdall's reading), its message, and where a
/// manifest field decided it (vigil's `source_location` on a result).
struct OneResult<'de> {
    status: Status,
    message: Option<Cow<'de, str>>,
    location: Option<crate::facts::workload::Location>,
}

impl<'de> de::Deserialize<'de> for OneResult<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneResult<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                const FIELDS: [&str; 5] =
                    ["status", "backtrace", "message", "exception", "code_desc"];
                let mut f: [Option<Scalar<'de>>; 5] = std::array::from_fn(|_| None);
                let mut location = None;
                while let Some(k) = a.next_key::<Key<'de>>()? {
                    if &*k == "source_location" {
                        location = a
                            .next_value_seed(FieldsSeed::<3>(["ref", "line", "column"]))?
                            .and_then(|[r, l, c]| match (r, l, c) {
                                (Some(Scalar::Str(r)), Some(Scalar::Num(l)), c) => {
                                    Some(crate::facts::workload::Location {
                                        file: kept(&r, KEPT_CHARS),
                                        line: l.clamp(0.0, u32::MAX as f64) as u32,
                                        column: match c {
                                            Some(Scalar::Num(c)) => {
                                                c.clamp(0.0, u32::MAX as f64) as u32
                                            }
                                            _ => 0,
                                        },
                                    })
                                }
                                _ => None,
                            });
                        continue;
                    }
                    match FIELDS.iter().position(|x| *x == &*k) {
                        Some(i) => f[i] = Some(a.next_value::<Scalar<'de>>()?),
                        None => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let [status, backtrace, message, exception, code_desc] = f;
                let text = |s: Option<Scalar<'de>>| match s {
                    Some(Scalar::Str(t)) => Some(t),
                    _ => None,
                };
                Ok(OneResult {
                    // A result with a backtrace is an error, whatever its
                    // status says: InSpec writes one when a resource raised
                    // (inspecjs `compute_segments`; `[]` counts, as in
                    // JavaScript).
                    status: match (&backtrace, &status) {
                        (Some(b), _) if !matches!(b, Scalar::Null) => Status::Error,
                        // Anything but the three names is an error.
                        (_, Some(Scalar::Str(s))) => Status::from_hdf_name(s)
                            .filter(|s| *s != Status::Error)
                            .unwrap_or(Status::Error),
                        _ => Status::Error,
                    },
                    message: text(message)
                        .or_else(|| text(exception))
                        .or_else(|| text(code_desc)),
                    location,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(OneResult::undefined())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(OneResult::undefined())
            }
        }
        d.deserialize_any(V)
    }
}

impl OneResult<'_> {
    /// A result that is not an object: no status, so an error.
    fn undefined() -> Self {
        OneResult {
            status: Status::Error,
            message: None,
            location: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read;

    #[test]
    fn impacts_outside_zero_to_one_are_refused() {
        let doc = |impact: &str| {
            format!(
                r#"{{"profiles":[{{"controls":[{{"id":"C-1","impact":{impact},"results":[{{"status":"passed"}}]}}]}}]}}"#
            )
        };
        for bad in ["1e308", "-0.5", "1.01"] {
            let e = read(doc(bad).as_bytes()).unwrap_err();
            assert!(e.to_string().contains("outside 0.0 to 1.0"), "{bad}: {e}");
        }
        for good in ["0", "0.5", "1.0", "null", "1"] {
            assert!(read(doc(good).as_bytes()).is_ok(), "{good}");
        }
        let e = read(doc("\"high\"").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("impact is not a number"), "{e}");
    }

    /// Each shape rule names where the document breaks it.
    #[test]
    fn shape_errors_name_the_place() {
        for (doc, want) in [
            (r#"[]"#, "expected an object with a `profiles` array"),
            (r#"{"platform":{}}"#, "no `profiles` array"),
            (r#"{"profiles":{}}"#, "`profiles` to be an array"),
            (
                r#"{"profiles":[{}]}"#,
                "profiles[0] has no `controls` array",
            ),
            (
                r#"{"profiles":[{"controls":[]},{"controls":7}]}"#,
                "profiles[1].controls to be an array",
            ),
            (
                r#"{"profiles":[{"controls":[{"id":1,"results":[]}]}]}"#,
                "profiles[0].controls[0] has no string `id`",
            ),
            (
                r#"{"profiles":[{"controls":[{"id":"a","results":[]},{"id":"b"}]}]}"#,
                "profiles[0].controls[1] has no `results` array",
            ),
            (
                r#"{"profiles":[{"controls":[{"id":"a","results":{}}]}]}"#,
                "has no `results` array",
            ),
            (r#"{"profiles":[]} x"#, "trailing characters"),
            (
                r#"{"profiles":[],"profiles":[]}"#,
                "duplicate field `profiles`",
            ),
            (
                r#"{"profiles":[{"controls":[],"controls":[]}]}"#,
                "profiles[0] has two `controls` arrays",
            ),
        ] {
            let e = read(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    /// Fields of the wrong type are absent and the last of equal keys
    /// counts, as `JSON.parse` reads them in Heimdall and the SAF CLI.
    #[test]
    fn fields_read_as_javascript_reads_them() {
        let hdf = read(
            br#"{"platform":{"target_id":"x","target_id":"t","run_id":7},
                "profiles":[{"controls":[
                {"id":"A","title":["x"],"impact":0.5,"tags":"high","waiver_data":[true],
                 "results":[{"status":"failed","message":{"a":1},"exception":"boom\nmore"}, 3]},
                {"id":"B","impact":0.5,"waiver_data":{"skipped_due_to_waiver":"true"},
                 "results":[{"status":"passed","backtrace":null}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(hdf.target_id.as_deref(), Some("t"));
        assert_eq!(hdf.run_id, None);
        let ids: Vec<&str> = hdf.controls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
        let a = &hdf.controls[0];
        // The number 3 is a result without a status: an error.
        assert_eq!(a.status, super::ControlStatus::Error);
        assert_eq!(
            (a.title.as_str(), a.severity),
            ("", crate::report::summary::Severity::Medium)
        );
        assert_eq!(hdf.controls[1].status, super::ControlStatus::Passed);
    }

    /// What is kept of a control does not grow with its results.
    #[test]
    fn messages_are_the_first_line_and_bounded() {
        let long = "é".repeat(10_000);
        let doc = format!(
            r#"{{"profiles":[{{"controls":[{{"id":"A","title":"{long}","results":[{{"status":"failed","message":"{long}"}},{{"status":"failed","message":"second"}}]}}]}}]}}"#
        );
        let hdf = read(doc.as_bytes()).unwrap();
        assert_eq!(
            hdf.controls[0].message.chars().count(),
            super::KEPT_MESSAGE_CHARS
        );
        assert_eq!(hdf.controls[0].title.chars().count(), super::KEPT_CHARS);
    }
}
