//! Writing a [`TargetReport`] as HDF: the InSpec JSON reporter's format,
//! read by Heimdall and the MITRE SAF CLI.
//!
//! The shape follows a real InSpec result (`profiles[].controls[].results[]`,
//! `platform`, `statistics`, `version`, plus the legacy top-level `controls`
//! and `other_checks` lists). vigil's own identifiers ride in `platform`
//! (`target_id`, `run_id`, `scan_id`, `approach`), which HDF readers carry
//! through untouched.
//!
//! The document is serialized straight from borrowed structs (no
//! intermediate JSON tree): a run writes one per target.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::TargetReport;
use super::waiver::WaiverState;
use crate::checks::Status;

#[derive(Serialize)]
struct Hdf<'a> {
    platform: Platform<'a>,
    profiles: Vec<HdfProfile<'a>>,
    statistics: Statistics,
    version: &'static str,
    controls: [(); 0],
    other_checks: [(); 0],
}

#[derive(Serialize)]
struct Platform<'a> {
    name: &'a str,
    release: &'a str,
    target_id: &'a str,
    run_id: &'a str,
    scan_id: &'a str,
    approach: &'static str,
    /// How far the facts can be trusted (see `policy::model::Evidence`).
    evidence: &'static str,
    /// Image targets: the source scanned and its digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_digest: Option<&'a str>,
}

#[derive(Serialize)]
struct Statistics {
    #[serde(serialize_with = "decimal_seconds")]
    duration: f64,
}

/// Seconds as plain decimal JSON: rounded to 0.1 ms, so that no value is
/// written in exponent form (`9.02e-7`), which Heimdall shows as "9.02es".
fn decimal_seconds<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 10_000.0).round() / 10_000.0)
}

#[derive(Serialize)]
struct Group<'a> {
    id: &'a str,
    title: &'a str,
    controls: Vec<&'a str>,
}

#[derive(Serialize)]
struct HdfProfile<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    title: &'a str,
    maintainer: &'static str,
    summary: &'a str,
    license: &'static str,
    copyright: &'static str,
    copyright_email: &'static str,
    supports: [(); 0],
    attributes: [(); 0],
    groups: [Group<'a>; 1],
    controls: Vec<Control<'a>>,
    status: ProfileStatus,
}

/// An HDF profile's load status: vigil writes only profiles it loaded.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum ProfileStatus {
    Loaded,
}

#[derive(Serialize)]
struct Description<'a> {
    label: &'static str,
    data: &'a str,
}

#[derive(Serialize)]
struct SourceLocation<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    line: u32,
}

#[derive(Serialize)]
struct Control<'a> {
    id: &'a str,
    title: &'a str,
    desc: &'a str,
    descriptions: [Description<'a>; 1],
    impact: f64,
    refs: [(); 0],
    tags: Tags<'a>,
    code: &'a str,
    source_location: SourceLocation<'a>,
    results: Vec<HdfResult<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiver_data: Option<WaiverData<'a>>,
}

#[derive(Serialize)]
struct Tags<'a> {
    #[serde(flatten)]
    tags: &'a BTreeMap<String, Value>,
    /// Added from impact unless the profile sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
    /// How this control's facts were obtained: `spec` for workload
    /// controls, else the target's evidence (`platform.evidence`).
    evidence: &'static str,
}

#[derive(Serialize)]
struct HdfResult<'a> {
    status: Status,
    code_desc: &'a str,
    #[serde(serialize_with = "decimal_seconds")]
    run_time: f64,
    start_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'static str>,
    /// For a manifest: where the field that decided the result is written
    /// (InSpec's control-level `source_location` shape, plus a column).
    #[serde(skip_serializing_if = "Option::is_none")]
    source_location: Option<ResultLocation<'a>>,
}

#[derive(Serialize)]
struct ResultLocation<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    line: u32,
    column: u32,
}

#[derive(Serialize)]
struct WaiverData<'a> {
    justification: &'a str,
    approver: &'a str,
    expiration_date: &'a str,
    run: bool,
    skipped_due_to_waiver: bool,
    message: String,
}

/// Serialize the HDF document for one target.
pub(crate) fn to_vec(r: &TargetReport) -> Vec<u8> {
    let start = r.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let profiles = r
        .profiles
        .iter()
        .map(|p| HdfProfile {
            name: &p.name,
            version: &p.version,
            sha256: &p.sha256,
            title: &p.name,
            maintainer: "vigil",
            summary: &p.summary,
            license: "",
            copyright: "",
            copyright_email: "",
            supports: [],
            attributes: [],
            groups: [Group {
                id: &p.name,
                title: &p.name,
                controls: p.controls.iter().map(|c| c.id.as_str()).collect(),
            }],
            controls: p
                .controls
                .iter()
                .map(|c| {
                    let desc = c.desc.as_deref().unwrap_or(&c.title);
                    let per_result = c.run_time / c.results.len().max(1) as f64;
                    Control {
                        id: &c.id,
                        title: &c.title,
                        desc,
                        descriptions: [Description {
                            label: "default",
                            data: desc,
                        }],
                        impact: c.impact,
                        refs: [],
                        tags: Tags {
                            tags: &c.tags,
                            severity: (!c.tags.contains_key("severity"))
                                .then(|| super::summary::Severity::of_impact(c.impact).as_str()),
                            evidence: c.evidence.as_str(),
                        },
                        code: &c.code,
                        source_location: SourceLocation {
                            reference: &c.source.0,
                            line: c.source.1,
                        },
                        results: c
                            .results
                            .iter()
                            .map(|t| {
                                let (message, skip_message, exception) = match t.status {
                                    Status::Passed | Status::Failed => {
                                        (Some(t.message.as_str()), None, None)
                                    }
                                    Status::Skipped => (None, Some(t.message.as_str()), None),
                                    Status::Error => {
                                        (Some(t.message.as_str()), None, Some("vigil::FactError"))
                                    }
                                };
                                HdfResult {
                                    status: t.status,
                                    code_desc: &t.code_desc,
                                    run_time: per_result,
                                    start_time: &start,
                                    message,
                                    skip_message,
                                    exception,
                                    source_location: t.location.as_ref().map(|l| ResultLocation {
                                        reference: &l.file,
                                        line: l.line,
                                        column: l.column,
                                    }),
                                }
                            })
                            .collect(),
                        waiver_data: c.waiver.as_ref().map(waiver_data),
                    }
                })
                .collect(),
            status: ProfileStatus::Loaded,
        })
        .collect();
    let doc = Hdf {
        platform: Platform {
            name: &r.platform.0,
            release: &r.platform.1,
            target_id: &r.target_id,
            run_id: &r.run_id,
            scan_id: &r.scan_id,
            approach: r.approach.as_str(),
            evidence: r.approach.evidence().as_str(),
            image: r.image.as_ref().map(|i| i.0.as_str()),
            image_digest: r.image.as_ref().map(|i| i.1.as_str()),
        },
        profiles,
        statistics: Statistics {
            duration: r.duration,
        },
        version: env!("CARGO_PKG_VERSION"),
        controls: [],
        other_checks: [],
    };
    serde_json::to_vec(&doc).expect("HDF serializes")
}

fn waiver_data(w: &WaiverState) -> WaiverData<'_> {
    let message = if w.active {
        format!(
            "Waived until {}, approved by {}; results are kept as evidence",
            w.expires, w.approver
        )
    } else {
        format!(
            "Waiver expired on {}; the control was evaluated normally",
            w.expires
        )
    };
    WaiverData {
        justification: &w.justification,
        approver: &w.approver,
        expiration_date: &w.expires,
        run: true,
        skipped_due_to_waiver: w.active,
        message,
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct T {
        #[serde(serialize_with = "super::decimal_seconds")]
        t: f64,
    }

    #[test]
    fn run_times_are_plain_decimals() {
        for (v, want) in [
            (9.02e-7, "0.0"),
            (0.00004, "0.0"),
            (0.00006, "0.0001"),
            (0.0123456, "0.0123"),
            (12.5, "12.5"),
        ] {
            let got = serde_json::to_string(&T { t: v }).unwrap();
            assert_eq!(got, format!("{{\"t\":{want}}}"), "{v}");
        }
    }
}
