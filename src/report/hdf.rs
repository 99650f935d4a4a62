//! Writing a [`TargetReport`] as HDF: the InSpec JSON reporter's format,
//! read by Heimdall and the MITRE SAF CLI.
//!
//! The shape follows a real InSpec result (`profiles[].controls[].results[]`,
//! `platform`, `statistics`, `version`, plus the legacy top-level `controls`
//! and `other_checks` lists). vigil's own identifiers ride in `platform`
//! (`target_id`, `run_id`, `scan_id`, `approach`), which HDF readers carry
//! through untouched.

use serde_json::{Value, json};

use super::TargetReport;
use super::waiver::WaiverState;
use crate::checks::Status;

/// The HDF document for one target.
pub fn to_value(r: &TargetReport) -> Value {
    let start = r.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let profiles: Vec<Value> = r
        .profiles
        .iter()
        .map(|p| {
            let controls: Vec<Value> = p
                .controls
                .iter()
                .map(|c| {
                    let results: Vec<Value> = c
                        .results
                        .iter()
                        .map(|t| {
                            let mut v = json!({
                                "status": match t.status {
                                    Status::Passed => "passed",
                                    Status::Failed => "failed",
                                    Status::Skipped => "skipped",
                                    Status::Error => "error",
                                },
                                "code_desc": t.code_desc,
                                "run_time": c.run_time / c.results.len().max(1) as f64,
                                "start_time": start,
                            });
                            match t.status {
                                Status::Skipped => v["skip_message"] = json!(t.message),
                                Status::Error => {
                                    v["message"] = json!(t.message);
                                    v["exception"] = json!("vigil::FactError");
                                }
                                _ => v["message"] = json!(t.message),
                            }
                            v
                        })
                        .collect();
                    let mut tags = serde_json::to_value(&c.tags).unwrap_or_else(|_| json!({}));
                    tags["severity"] = json!(super::summary::severity(c.impact));
                    let mut ctl = json!({
                        "id": c.id,
                        "title": c.title,
                        "desc": c.desc.clone().unwrap_or_else(|| c.title.clone()),
                        "descriptions": [{"label": "default", "data": c.desc.clone().unwrap_or_else(|| c.title.clone())}],
                        "impact": c.impact,
                        "refs": [],
                        "tags": tags,
                        "code": c.code,
                        "source_location": {"ref": c.source.0, "line": c.source.1},
                        "results": results,
                    });
                    if let Some(w) = &c.waiver {
                        ctl["waiver_data"] = waiver_data(w);
                    }
                    ctl
                })
                .collect();
            json!({
                "name": p.name,
                "version": p.version,
                "sha256": p.sha256,
                "title": p.name,
                "maintainer": "vigil",
                "summary": p.summary,
                "license": "",
                "copyright": "",
                "copyright_email": "",
                "supports": [],
                "attributes": [],
                "groups": [{"id": p.name, "title": p.name, "controls": p.controls.iter().map(|c| c.id.clone()).collect::<Vec<_>>()}],
                "controls": controls,
                "status": "loaded",
            })
        })
        .collect();
    json!({
        "platform": {
            "name": r.platform.0,
            "release": r.platform.1,
            "target_id": r.target_id,
            "run_id": r.run_id,
            "scan_id": r.scan_id,
            "approach": r.approach.as_str(),
        },
        "profiles": profiles,
        "statistics": {"duration": r.duration},
        "version": env!("CARGO_PKG_VERSION"),
        "controls": [],
        "other_checks": [],
    })
}

fn waiver_data(w: &WaiverState) -> Value {
    match w {
        WaiverState::Active {
            justification,
            approver,
            expires,
        } => json!({
            "justification": justification,
            "approver": approver,
            "expiration_date": expires,
            "run": true,
            "skipped_due_to_waiver": true,
            "message": format!("Waived until {expires}, approved by {approver}; results are kept as evidence"),
        }),
        WaiverState::Expired {
            justification,
            approver,
            expires,
        } => json!({
            "justification": justification,
            "approver": approver,
            "expiration_date": expires,
            "run": true,
            "skipped_due_to_waiver": false,
            "message": format!("Waiver expired on {expires}; the control was evaluated normally"),
        }),
    }
}
