//! The monitoring layer: reconcile the API server's audit log with a sealed
//! run (`vigil audit-check`). Every use of the run's credentials must be
//! one the signed trail records; everything else is a finding, and a log
//! that cannot show that (a gap in time, a policy that drops what is
//! needed) is a finding too, never "clean".
//!
//! The run's credentials are known by the credential ids (`JTI=…`,
//! KEP-4193) of the tokens vigil minted, recorded in the trail, and by its
//! ServiceAccounts' usernames (older clusters log no credential id).

pub(crate) mod event;
pub mod trail;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use event::{Event, FileSummary, ISSUED_CREDENTIAL_ID};
use trail::{Cardinality, Expected, RunTrail};

/// Clock skew allowed between the runner and the API server, and the time
/// a request takes to reach it.
pub const SLACK_SECONDS: i64 = 5;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context for the auditor.
    Low,
    /// Something to look at; the default failure threshold.
    Medium,
    /// Likely misuse.
    High,
    /// Misuse of the run's credentials.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What a finding is about. The names are stable: documented in
/// docs/monitoring.md and matched by pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A request with the run's credentials that the trail does not record.
    UnrecordedRequest,
    /// A successful use of the run's credentials after its tokens died.
    CredentialReuse,
    /// A request with the run's credentials from another address or client.
    ForeignSource,
    /// The run's credentials were refused (403): outside the pinned rights.
    ForbiddenAttempt,
    /// An exec with the run's credentials that is not vigil's gatherer or probe.
    ForeignExecCommand,
    /// An ephemeral container image that is not the pinned scanner image.
    ForeignEphemeralImage,
    /// A token minted for a run ServiceAccount that the run did not mint.
    ForeignTokenRequest,
    /// Another identity reached into a scanned pod during the run.
    OtherIdentityAccess,
    /// A trail line with no API server event.
    TrailWithoutEvent,
    /// The log does not cover the run's window.
    CoverageGap,
    /// The audit policy drops what a check needs.
    PolicyGap,
    /// Lines of the log could not be read.
    UnreadableLog,
    /// Requests that share an audit ID (a client set the `Audit-ID` header).
    AuditIdReuse,
}

impl Code {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnrecordedRequest => "unrecorded-request",
            Code::CredentialReuse => "credential-reuse",
            Code::ForeignSource => "foreign-source",
            Code::ForbiddenAttempt => "forbidden-attempt",
            Code::ForeignExecCommand => "foreign-exec-command",
            Code::ForeignEphemeralImage => "foreign-ephemeral-image",
            Code::ForeignTokenRequest => "foreign-token-request",
            Code::OtherIdentityAccess => "other-identity-access",
            Code::TrailWithoutEvent => "trail-without-event",
            Code::CoverageGap => "coverage-gap",
            Code::PolicyGap => "policy-gap",
            Code::UnreadableLog => "unreadable-log",
            Code::AuditIdReuse => "audit-id-reuse",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// Severity.
    pub severity: Severity,
    /// A sentence (untrusted parts escaped).
    pub message: String,
    /// The event's `auditID`, when one event is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// The identity that acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The trail line concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_line: Option<u64>,
}

impl Finding {
    /// A finding about one event.
    fn of(e: &Event, code: Code, severity: Severity, message: String) -> Finding {
        Finding {
            code,
            severity,
            message,
            audit_id: Some(e.audit_id.clone()),
            time: e.time(),
            user: Some(crate::safeio::printable(e.acting_user()).into_owned()),
            trail_line: None,
        }
    }
}

/// The run as the signed statement and trail describe it.
#[derive(Debug)]
pub struct Run {
    /// Run id.
    pub run_id: String,
    /// Start and end, by the runner's clock.
    pub started: DateTime<Utc>,
    /// See `started`.
    pub ended: DateTime<Utc>,
    /// The trail, read.
    pub trail: RunTrail,
}

/// The outcome of a check.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Run id.
    pub run_id: String,
    /// The run's window.
    pub started: DateTime<Utc>,
    /// See `started`.
    pub ended: DateTime<Utc>,
    /// The log files read.
    pub files: Vec<FileSummary>,
    /// Events tied to the run's credentials.
    pub run_events: u64,
    /// Trail lines matched to events.
    pub trail_matched: u64,
    /// Trail lines that name API requests.
    pub trail_lines: u64,
    /// Everything found, most severe first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The most severe finding, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Bad input: a log that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file.
    #[error(transparent)]
    Read(#[from] event::ReadError),
    /// No file given.
    #[error("no audit log given: pass --audit-log FILE (repeat for rotated files)")]
    NoLogs,
}

/// Returns true if and only if the event was made with the run's
/// credentials (its credential id, or the run's ServiceAccount name for
/// clusters that log none).
fn by_run(e: &Event, t: &RunTrail) -> bool {
    e.credential_id()
        .is_some_and(|id| t.credential_ids.contains(id))
        || t.service_accounts.contains(e.acting_user())
}

/// Whether an event might matter to the run; only those are kept, so the
/// memory a check needs is the run's, not the log's.
fn relevant(e: &Event, t: &RunTrail, caller: Option<&str>) -> bool {
    if by_run(e, t) {
        return true;
    }
    let Some(o) = &e.object_ref else {
        return false;
    };
    let sa_token = o.resource == "serviceaccounts"
        && t.service_accounts
            .contains(&format!("system:serviceaccount:{}:{}", o.namespace, o.name));
    let pod_access = o.resource == "pods"
        && matches!(
            o.subresource.as_str(),
            "exec" | "attach" | "ephemeralcontainers" | "portforward"
        )
        && t.pods.contains(&(o.namespace.clone(), o.name.clone()));
    // The caller's operations on the run's own objects (named per run); an
    // unnamed one (a SelfSubjectReview) only when the caller is known.
    let caller_op = t.expected.iter().any(|x| {
        x.identity == "caller"
            && x.resource == e.resource()
            && if x.name.is_empty() {
                caller.is_some_and(|c| e.acting_user() == c)
            } else {
                o.name == x.name && o.namespace == x.namespace
            }
    });
    sa_token || pod_access || caller_op
}

/// Whether event `e` is what trail line `x` records.
fn matches(e: &Event, x: &Expected, run_identity: bool) -> bool {
    let Some(o) = &e.object_ref else {
        return false;
    };
    let Some(t) = e.time() else { return false };
    let slack = Duration::seconds(SLACK_SECONDS);
    let start = x.end - Duration::milliseconds(x.duration_ms as i64) - slack;
    let identity_ok = if x.identity == "caller" {
        !run_identity
    } else {
        e.acting_user() == x.identity
    };
    // An exec matches only the line that recorded its very argv.
    let command_ok = match trail::command_digest(x) {
        Some(want) if x.resource == "pods/exec" => {
            crate::audit::command_sha256(&e.exec_command()) == want
        }
        _ => true,
    };
    identity_ok
        && command_ok
        && x.verbs.contains(&e.verb.as_str())
        && e.resource() == x.resource
        && (x.namespace.is_empty() || o.namespace == x.namespace)
        && (x.name.is_empty() || o.name == x.name)
        && t >= start
        && t <= x.end + slack
}

/// What [`read_requests`] gives: requests, file summaries, findings.
type Read = (Vec<Event>, Vec<FileSummary>, Vec<Finding>);

/// The run's requests in `logs`, sorted by time, each one event (the
/// stages of one request merged), the files' summaries, and a finding for
/// every audit ID that more than one request carries.
fn read_requests(t: &RunTrail, caller: Option<&str>, logs: &[PathBuf]) -> Result<Read, CheckError> {
    // Read every file, keeping the run's events. Stages of one request
    // merge: same auditID and same user, verb, URI and credential. A
    // client may choose its auditID (the `Audit-ID` header), so events that
    // share one but differ in those are separate requests, each examined.
    type Key = (String, String, String, String, Option<String>);
    let key = |e: &Event| -> Key {
        let (user, verb, uri, cred) = e.fingerprint();
        (
            e.audit_id.clone(),
            user.to_string(),
            verb.to_string(),
            uri.to_string(),
            cred.map(str::to_string),
        )
    };
    let mut kept: BTreeMap<Key, Event> = BTreeMap::new();
    let mut files = Vec::new();
    for path in logs {
        let summary = event::read_file(path, &mut |e| {
            if !relevant(&e, t, caller) && !caller_candidate(&e, t) {
                return;
            }
            match kept.get_mut(&key(&e)) {
                Some(old) if stage_rank(&e.stage) > stage_rank(&old.stage) => *old = e,
                Some(_) => {}
                None => {
                    kept.insert(key(&e), e);
                }
            }
        })?;
        files.push(summary);
    }
    let mut findings = Vec::new();
    // Requests that share an auditID: a client chose it (the API server
    // makes a fresh one otherwise), perhaps to hide one behind the other.
    let mut by_id: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in kept.values() {
        by_id.entry(e.audit_id.as_str()).or_default().push(e);
    }
    for (id, events) in &by_id {
        if events.len() > 1 {
            let what: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "{} {} by {}",
                        crate::safeio::printable(&e.verb),
                        crate::safeio::excerpt(&e.request_uri, 120),
                        crate::safeio::printable(e.acting_user())
                    )
                })
                .collect();
            findings.push(Finding::of(
                events[0],
                Code::AuditIdReuse,
                Severity::High,
                format!(
                    "{} requests share the audit ID {:?}, which only a client that sets the Audit-ID header can make happen: {}; each is checked on its own",
                    events.len(),
                    crate::safeio::excerpt(id, 80),
                    what.join("; ")
                ),
            ));
        }
    }
    drop(by_id);
    let mut requests: Vec<Event> = kept.into_values().collect();
    requests.sort_by_key(|e| e.time());
    Ok((requests, files, findings))
}

/// Check a run against the API server's audit log.
pub fn check(run: &Run, logs: &[PathBuf]) -> Result<Report, CheckError> {
    if logs.is_empty() {
        return Err(CheckError::NoLogs);
    }
    let t = &run.trail;
    let caller = t.caller.clone();
    let (requests, files, mut findings) = read_requests(t, caller.as_deref(), logs)?;

    // The runner: the caller that minted the run's tokens.
    let minted: Vec<&Event> = requests
        .iter()
        .filter(|e| {
            e.resource() == "serviceaccounts/token"
                && e.annotations
                    .get(ISSUED_CREDENTIAL_ID)
                    .is_some_and(|id| t.credential_ids.contains(id))
        })
        .collect();
    let runner: Option<String> = caller
        .clone()
        .or_else(|| minted.first().map(|e| e.acting_user().to_string()));
    let runner_sources: BTreeSet<String> = minted
        .iter()
        .map(|e| e.peer().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let runner_agents: BTreeSet<Option<String>> =
        minted.iter().map(|e| e.user_agent.clone()).collect();

    coverage(run, &files, &requests, t, &mut findings);

    // Match events to trail lines.
    let mut used = vec![0u64; t.expected.len()];
    let mut run_events = 0u64;
    // The tokens die with their anchor Secrets: by the API server's own
    // clock when its log shows the deletions (no skew to allow for), else
    // by the trail's.
    let end_of_tokens = requests
        .iter()
        .filter(|e| {
            !by_run(e, t)
                && e.code() < 400
                && t.expected.iter().any(|x| {
                    x.resource == "secrets" && x.verbs == ["delete"] && matches(e, x, false)
                })
        })
        .filter_map(Event::time)
        .max()
        .unwrap_or_else(|| {
            t.anchors_deleted.unwrap_or(run.ended) + Duration::seconds(SLACK_SECONDS)
        });
    for e in &requests {
        let run_identity = by_run(e, t);
        if run_identity {
            run_events += 1;
        }
        let as_runner = runner.as_deref().is_none_or(|r| e.acting_user() == r);
        let slot = t.expected.iter().enumerate().find(|(i, x)| {
            (x.cardinality == Cardinality::Many || used[*i] == 0)
                && (x.identity != "caller" || as_runner)
                && matches(e, x, run_identity)
        });
        let finding = |code, severity, message| Finding::of(e, code, severity, message);
        let what = describe(e);
        match slot {
            Some((i, x)) => {
                used[i] += 1;
                if x.resource == "pods/ephemeralcontainers" {
                    ephemeral_image(e, t, &mut findings, &finding);
                }
                if x.resource == "serviceaccounts/token" {
                    foreign_token(e, t, true, &mut findings, &finding);
                }
            }
            None if !run_identity => {
                other_identity(e, t, run, &mut findings);
                continue;
            }
            None if e.time().is_some_and(|at| at > end_of_tokens) => {
                // A late use: reported as reuse below.
            }
            None if e.code() == 403 => findings.push(finding(
                Code::ForbiddenAttempt,
                Severity::High,
                format!("{what} was refused (403): an attempt outside the run's pinned rights"),
            )),
            None if matches!(e.resource().as_str(), "pods/exec" | "pods/attach") => {
                findings.push(finding(
                    Code::ForeignExecCommand,
                    Severity::Critical,
                    format!(
                        "{what} with the run's credentials, not recorded by vigil: {}",
                        command_excerpt(e)
                    ),
                ))
            }
            None => {
                if e.resource() == "pods/ephemeralcontainers" {
                    ephemeral_image(e, t, &mut findings, &finding);
                }
                findings.push(finding(
                    Code::UnrecordedRequest,
                    Severity::High,
                    format!("{what} with the run's credentials, not in the signed trail"),
                ));
            }
        }
        if !run_identity {
            continue;
        }
        // Uses after the tokens should have died: authenticated, so the
        // token was replayed (a refusal by RBAC still means it was).
        if e.time().is_some_and(|at| at > end_of_tokens) {
            let (severity, outcome) = match e.code() {
                1..400 => (Severity::Critical, "succeeded"),
                code => (
                    Severity::High,
                    if code == 403 {
                        "was refused by RBAC"
                    } else {
                        "was made"
                    },
                ),
            };
            findings.push(finding(
                Code::CredentialReuse,
                severity,
                format!(
                    "{what} {outcome} with the run's credentials after the run ended (its tokens were revoked by {}): the token was replayed",
                    end_of_tokens.to_rfc3339()
                ),
            ));
        }
        // Where the run's credentials were used from.
        let from = e.peer().to_string();
        if !runner_sources.is_empty() && !runner_sources.contains(&from) {
            findings.push(finding(
                Code::ForeignSource,
                Severity::High,
                format!(
                    "{what} came from {} while the runner minted the tokens from {}",
                    crate::safeio::printable(&e.source_ips.join(", ")),
                    runner_sources
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        } else if !runner_agents.is_empty() && !runner_agents.contains(&e.user_agent) {
            findings.push(finding(
                Code::ForeignSource,
                Severity::Medium,
                format!(
                    "{what} used the client {:?}, not the runner's",
                    crate::safeio::printable(e.user_agent.as_deref().unwrap_or("(none)"))
                ),
            ));
        }
    }
    // Trail lines no event shows.
    let mut trail_matched = 0;
    for (x, n) in t.expected.iter().zip(&used) {
        if *n > 0 {
            trail_matched += 1;
        } else if x.ok {
            findings.push(Finding {
                code: Code::TrailWithoutEvent,
                severity: Severity::Medium,
                message: format!(
                    "trail line {} ({} {}) has no API server event: a gap in the API server's audit log, or a trail that does not match it",
                    x.line,
                    x.verbs[0],
                    crate::safeio::printable(&x.text)
                ),
                audit_id: None,
                time: Some(x.end),
                user: Some(x.identity.clone()),
                trail_line: Some(x.line),
            });
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.time.cmp(&b.time)));
    Ok(Report {
        run_id: run.run_id.clone(),
        started: run.started,
        ended: run.ended,
        files,
        run_events,
        trail_matched,
        trail_lines: t.expected.len() as u64,
        findings,
    })
}

/// A TokenRequest event is kept before the runner is known: any token for
/// one of the run's ServiceAccounts.
fn caller_candidate(e: &Event, t: &RunTrail) -> bool {
    e.resource() == "serviceaccounts/token"
        && e.object_ref.as_ref().is_some_and(|o| {
            t.service_accounts
                .contains(&format!("system:serviceaccount:{}:{}", o.namespace, o.name))
        })
}

fn stage_rank(stage: &str) -> u8 {
    match stage {
        "ResponseComplete" | "Panic" => 3,
        "ResponseStarted" => 2,
        _ => 1,
    }
}

/// `verb resource ns/name` for messages (escaped).
fn describe(e: &Event) -> String {
    let o = e.object_ref.clone().unwrap_or_default();
    let place = match (o.namespace.is_empty(), o.name.is_empty()) {
        (false, false) => format!("{}/{}", o.namespace, o.name),
        (false, true) => o.namespace,
        (true, false) => o.name,
        (true, true) => String::new(),
    };
    crate::safeio::printable(format!("{} {} {place}", e.verb, e.resource()).trim()).into_owned()
}

fn command_excerpt(e: &Event) -> String {
    let argv = e.exec_command();
    if argv.is_empty() {
        return "no command".into();
    }
    crate::safeio::excerpt(&argv.join(" "), 120)
}

/// A TokenRequest for a run ServiceAccount: the run's own, or foreign.
/// With a credential id (Kubernetes 1.29+), the id decides. Without one
/// (older clusters, or the feature off), what the log does carry decides:
/// `in_trail` says the event matched the run's own TokenRequest line by
/// user, verb, object and time window (the missing ids are reported once,
/// as a low `policy-gap`).
fn foreign_token(
    e: &Event,
    t: &RunTrail,
    in_trail: bool,
    findings: &mut Vec<Finding>,
    finding: &dyn Fn(Code, Severity, String) -> Finding,
) {
    if !caller_candidate(e, t) || e.code() >= 400 {
        return;
    }
    let issued = e.annotations.get(ISSUED_CREDENTIAL_ID);
    if issued.is_some_and(|id| t.credential_ids.contains(id)) {
        return;
    }
    if issued.is_none() && in_trail {
        return;
    }
    findings.push(finding(
        Code::ForeignTokenRequest,
        Severity::High,
        format!(
            "{} minted a token for the run's ServiceAccount that the run did not mint{}",
            crate::safeio::printable(e.acting_user()),
            issued.map_or(String::new(), |id| format!(
                " ({})",
                crate::safeio::printable(id)
            ))
        ),
    ));
}

/// An ephemeral container patch: every image must be one vigil recorded.
fn ephemeral_image(
    e: &Event,
    t: &RunTrail,
    findings: &mut Vec<Finding>,
    finding: &dyn Fn(Code, Severity, String) -> Finding,
) {
    let Some(images) = e.ephemeral_images() else {
        findings.push(finding(
            Code::PolicyGap,
            Severity::Medium,
            format!(
                "{}: the event carries no request or response object, so the image added cannot be checked (log pods/ephemeralcontainers at level Request or RequestResponse; `vigil render audit-policy` does)",
                describe(e)
            ),
        ));
        return;
    };
    for (name, image) in images {
        if !t.images.contains(&image) {
            findings.push(finding(
                Code::ForeignEphemeralImage,
                Severity::Critical,
                format!(
                    "{}: ephemeral container {} runs image {}, not the pinned scanner image",
                    describe(e),
                    crate::safeio::printable(&name),
                    crate::safeio::printable(&image)
                ),
            ));
        }
    }
}

/// Another identity reaching into a scanned pod during the run.
fn other_identity(e: &Event, t: &RunTrail, run: &Run, findings: &mut Vec<Finding>) {
    let Some(o) = &e.object_ref else { return };
    let slack = Duration::seconds(SLACK_SECONDS);
    let during = e
        .time()
        .is_some_and(|at| at >= run.started - slack && at <= run.ended + slack);
    if e.resource() == "serviceaccounts/token" {
        foreign_token(e, t, false, findings, &|code, severity, message| {
            Finding::of(e, code, severity, message)
        });
        return;
    }
    if o.resource == "pods"
        && during
        && t.pods.contains(&(o.namespace.clone(), o.name.clone()))
        && matches!(
            o.subresource.as_str(),
            "exec" | "attach" | "ephemeralcontainers" | "portforward"
        )
    {
        findings.push(Finding::of(
            e,
            Code::OtherIdentityAccess,
            Severity::Low,
            format!(
                "{} by {} while the run scanned the pod",
                describe(e),
                crate::safeio::printable(e.acting_user())
            ),
        ));
    }
}

/// Does the log cover the run, and does it carry what the checks need?
fn coverage(
    run: &Run,
    files: &[FileSummary],
    requests: &[Event],
    t: &RunTrail,
    findings: &mut Vec<Finding>,
) {
    let slack = Duration::seconds(SLACK_SECONDS);
    let first = files.iter().filter_map(|f| f.first).min();
    let last = files.iter().filter_map(|f| f.last).max();
    let gap = |message: String| Finding {
        code: Code::CoverageGap,
        severity: Severity::Medium,
        message,
        audit_id: None,
        time: None,
        user: None,
        trail_line: None,
    };
    match (first, last) {
        (Some(f), Some(l)) if f <= run.started + slack && l >= run.ended - slack => {}
        (Some(f), Some(l)) => findings.push(gap(format!(
            "the audit log covers {} to {}, the run {} to {}: events outside the log cannot be checked (add the rotated files)",
            f.to_rfc3339(),
            l.to_rfc3339(),
            run.started.to_rfc3339(),
            run.ended.to_rfc3339()
        ))),
        _ => findings.push(gap("the audit log has no timestamped events".into())),
    }
    for f in files {
        // A torn last line is the live file being written (or a rotation
        // cut): a gap in what the log shows, not a log of something else.
        let torn = u64::from(f.truncated);
        if f.unreadable > torn {
            findings.push(Finding {
                code: Code::UnreadableLog,
                severity: Severity::Medium,
                message: format!(
                    "{}: {} of {} lines are not audit events; what they held cannot be checked",
                    f.path,
                    f.unreadable - torn,
                    f.lines
                ),
                audit_id: None,
                time: None,
                user: None,
                trail_line: None,
            });
        }
        if f.truncated {
            findings.push(Finding {
                code: Code::CoverageGap,
                severity: Severity::Medium,
                message: format!(
                    "{}: the file ends mid-line or mid-stream (the live file being written, or cut while rotating): its last event is not read; check again once it is complete",
                    f.path
                ),
                audit_id: None,
                time: None,
                user: None,
                trail_line: None,
            });
        }
    }
    // Credential ids: without them (before 1.29, or the feature gate off),
    // a stolen token minted for the same ServiceAccount is not told apart.
    let tokens: Vec<&Event> = requests
        .iter()
        .filter(|e| caller_candidate(e, t) && e.code() == 201)
        .collect();
    if !tokens.is_empty()
        && tokens
            .iter()
            .all(|e| !e.annotations.contains_key(ISSUED_CREDENTIAL_ID))
    {
        findings.push(Finding {
            code: Code::PolicyGap,
            severity: Severity::Low,
            message: "no TokenRequest event carries authentication.kubernetes.io/issued-credential-id (Kubernetes before 1.29, or ServiceAccountTokenJTI off): the run's tokens are told apart from others by ServiceAccount name only".into(),
            audit_id: None,
            time: None,
            user: None,
            trail_line: None,
        });
    }
}

/// A bundle that cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// `vigil verify` would fail: nothing in it can be trusted.
    #[error("the bundle does not verify ({0}); run `vigil verify` on it for every problem")]
    Unverified(String),
    /// The run made no Kubernetes requests (a local or imported run).
    #[error(
        "the bundle has no audit trail: it records no Kubernetes requests to reconcile (a local or imported run)"
    )]
    NoTrail,
    /// The run has a trail, encrypted, and no identity was given to read it.
    #[error(
        "the bundle's audit trail is encrypted: pass --identity KEY with an age identity of one of its recipients"
    )]
    TrailEncrypted,
    /// A time in the statement is not RFC 3339.
    #[error("the statement's {0} time is not RFC 3339")]
    BadTime(&'static str),
}

/// The run of a verified bundle: its window and its trails (a merged run's
/// shards together).
pub fn run_of(v: &crate::seal::verify::Verification) -> Result<Run, BundleError> {
    let statement = match (&v.statement, v.problems.first()) {
        (Some(s), None) => s,
        (_, Some(p)) => {
            return Err(BundleError::Unverified(format!(
                "{}: {}",
                crate::safeio::printable(&p.file),
                crate::safeio::printable(&p.message)
            )));
        }
        (None, None) => return Err(BundleError::Unverified("no statement".into())),
    };
    if v.trails.is_empty() {
        let p = &statement.predicate;
        let has_trail = p.audit.is_some() || p.shards.iter().any(|s| s.audit.is_some());
        return Err(if has_trail && p.encrypted {
            BundleError::TrailEncrypted
        } else {
            BundleError::NoTrail
        });
    }
    let time = |s: &str, what| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| BundleError::BadTime(what))
    };
    let p = &statement.predicate;
    let entries: Vec<crate::audit::Entry> = v
        .trails
        .iter()
        .flat_map(|(_, bytes)| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Run {
        run_id: p.run_id.clone(),
        started: time(&p.started, "start")?,
        ended: time(&p.ended, "end")?,
        trail: trail::read(&entries),
    })
}

/// What an audit check concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditVerdict {
    /// No finding at or above the `fail_on` severity.
    Clean,
    /// At least one.
    Findings,
}

/// `Clean` when no finding is at or above `fail_on`, else `Findings`.
pub fn verdict(r: &Report, fail_on: Severity) -> AuditVerdict {
    match r.worst() {
        Some(w) if w >= fail_on => AuditVerdict::Findings,
        _ => AuditVerdict::Clean,
    }
}

/// The predicate of an audit-check attestation (`--attest`): the log
/// files with their sha256, every finding, and the verdict.
pub fn attestation_predicate(r: &Report, fail_on: Severity) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.run_id,
        "checked_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "vigil_version": env!("CARGO_PKG_VERSION"),
        "audit_logs": r.files,
        "run_events": r.run_events,
        "trail_matched": r.trail_matched,
        "trail_lines": r.trail_lines,
        "fail_on": fail_on.as_str(),
        "findings": r.findings,
        "verdict": verdict(r, fail_on),
    })
}

/// The report as a table for the terminal.
pub fn render_table(r: &Report) -> String {
    let mut out = format!(
        "run {} ({} to {}): {} log file(s), {} event(s) with the run's credentials, {} of {} trail line(s) matched\n",
        r.run_id,
        r.started.to_rfc3339(),
        r.ended.to_rfc3339(),
        r.files.len(),
        r.run_events,
        r.trail_matched,
        r.trail_lines
    );
    if r.findings.is_empty() {
        out.push_str("clean: every use of the run's credentials is in its signed trail\n");
        return out;
    }
    out.push_str(&format!(
        "{:<9} {:<24} {:<25} {}\n",
        "SEVERITY", "CODE", "TIME", "FINDING"
    ));
    for f in &r.findings {
        let time = f
            .time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<9} {:<24} {:<25} {}\n",
            f.severity.as_str(),
            f.code.as_str(),
            time,
            crate::safeio::printable(&f.message)
        ));
    }
    out
}

#[cfg(test)]
mod tests;

impl From<crate::policy::model::FailOn> for Severity {
    fn from(f: crate::policy::model::FailOn) -> Severity {
        use crate::policy::model::FailOn;
        match f {
            FailOn::Low => Severity::Low,
            FailOn::Medium => Severity::Medium,
            FailOn::High => Severity::High,
            FailOn::Critical => Severity::Critical,
        }
    }
}

/// The newest sealed bundle under a policy's output directory (run ids are
/// UUIDv7: their order is their time).
pub fn newest_bundle(dir: &std::path::Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(crate::seal::layout::STATEMENT_FILE).is_file())
        .max()
}

/// `spec.monitoring` after a scheduled run: check the newest bundle under
/// `dir` against the policy's audit logs and attest the result into it,
/// signed by the key that signed the run. Returns the bundle, the report
/// and the verdict.
pub(crate) fn check_after_run(
    dir: &std::path::Path,
    m: &crate::policy::model::Monitoring,
    signer: &crate::seal::keys::Signer,
) -> Result<(PathBuf, Report, AuditVerdict), String> {
    let bundle =
        newest_bundle(dir).ok_or_else(|| format!("no sealed bundle in {}", dir.display()))?;
    let identities = match &m.identity {
        Some(p) => crate::seal::keys::load_identities(p).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let v = crate::seal::verify::verify(&bundle, &[signer.verifying_key()], &identities);
    let run = run_of(&v).map_err(|e| e.to_string())?;
    let report = check(&run, &m.audit_log).map_err(|e| e.to_string())?;
    let fail_on = Severity::from(m.fail_on);
    crate::seal::attest::write(&bundle, attestation_predicate(&report, fail_on), signer)
        .map_err(|e| e.to_string())?;
    let verdict = verdict(&report, fail_on);
    Ok((bundle, report, verdict))
}
