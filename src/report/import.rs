//! Reading HDF produced elsewhere (InSpec/CINC Auditor JSON reports,
//! Heimdall exports): shape checks, the target it describes, and its
//! controls counted with the same Heimdall status rules as vigil's own
//! results. `vigil verify` recounts with the same code.

use serde_json::Value;

use super::summary::Counts;

/// An HDF document that passed the shape checks.
#[derive(Debug)]
pub struct ImportedHdf {
    /// `platform.target_id` when the document names one.
    pub target_id: Option<String>,
    /// Its controls, counted.
    pub counts: Counts,
    /// Where the SAF CLI's summary of this document will differ from its
    /// count (said at import, never silently).
    pub warnings: Vec<String>,
}

/// Why a document is not usable HDF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an HDF/InSpec JSON report: {0}")]
pub struct NotHdf(String);

fn shape(msg: impl Into<String>) -> NotHdf {
    NotHdf(msg.into())
}

/// Check the shape of an HDF document and count its controls.
pub fn read(bytes: &[u8]) -> Result<ImportedHdf, NotHdf> {
    let hdf: Value = serde_json::from_slice(bytes).map_err(|e| shape(e.to_string()))?;
    let profiles = hdf["profiles"]
        .as_array()
        .ok_or_else(|| shape("no `profiles` array"))?;
    for (i, p) in profiles.iter().enumerate() {
        let controls = p["controls"]
            .as_array()
            .ok_or_else(|| shape(format!("profiles[{i}] has no `controls` array")))?;
        for (j, c) in controls.iter().enumerate() {
            if !c["id"].is_string() {
                return Err(shape(format!(
                    "profiles[{i}].controls[{j}] has no string `id`"
                )));
            }
            if !c["results"].is_array() {
                return Err(shape(format!(
                    "profiles[{i}].controls[{j}] has no `results` array"
                )));
            }
            if !c["impact"].is_number() && !c["impact"].is_null() {
                return Err(shape(format!(
                    "profiles[{i}].controls[{j}].impact is not a number"
                )));
            }
            // HDF's impact is 0.0 to 1.0, as the policy validator requires
            // of vigil's own controls: 1e308 is no severity.
            if let Some(impact) = c["impact"].as_f64()
                && !(0.0..=1.0).contains(&impact)
            {
                return Err(shape(format!(
                    "profiles[{i}].controls[{j}].impact is {impact}, outside 0.0 to 1.0"
                )));
            }
        }
    }
    Ok(ImportedHdf {
        target_id: hdf["platform"]["target_id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        counts: tally(&hdf),
        warnings: super::findings::hdf_controls(&hdf)
            .into_iter()
            .filter(|c| {
                c.status == super::summary::ControlStatus::Failed && c.impact > 0.0 && c.impact < 0.1
            })
            .map(|c| {
                format!(
                    "control {} failed with impact {} (severity none): the SAF CLI summary leaves it out; vigil counts it",
                    crate::safeio::excerpt(c.id, 80),
                    c.impact
                )
            })
            .collect(),
    })
}

/// Count the controls of an HDF document with Heimdall's status rules: a
/// control with an error result is an error; waived or impact 0 is "not
/// applicable"; no results is an error; then failed, passed, skipped.
pub fn tally(hdf: &Value) -> Counts {
    let mut counts = Counts::default();
    for c in super::findings::hdf_controls(hdf) {
        counts.add_with_severity(c.id, c.status, c.severity);
    }
    counts
}

#[cfg(test)]
mod tests {
    #[test]
    fn impacts_outside_zero_to_one_are_refused() {
        let doc = |impact: &str| {
            format!(
                r#"{{"profiles":[{{"controls":[{{"id":"C-1","impact":{impact},"results":[{{"status":"passed"}}]}}]}}]}}"#
            )
        };
        for bad in ["1e308", "-0.5", "1.01"] {
            let e = super::read(doc(bad).as_bytes()).unwrap_err();
            assert!(e.to_string().contains("outside 0.0 to 1.0"), "{bad}: {e}");
        }
        for good in ["0", "0.5", "1.0", "null"] {
            assert!(super::read(doc(good).as_bytes()).is_ok(), "{good}");
        }
    }
}
