//! Semantic checks: what the JSON Schema cannot express.
//!
//! Unique names and ids, resolvable profile references, cron expressions,
//! token lifetimes, image digests, label selectors, regexes, waivers,
//! threshold keys, output recipients and approach/target fit. Every check
//! runs and every finding is reported.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};

use super::model::{Approach, Check, Profile, ScanPolicy, Target};
use super::{Loaded, PolicySet};
use crate::diag::{Code, Diagnostic};
use crate::policy::threshold::Threshold;

/// Shortest token lifetime the TokenRequest API grants.
pub(crate) const MIN_TOKEN_TTL: Duration = Duration::from_secs(600);
/// Longest token lifetime vigil asks for.
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Run every semantic check over a loaded set.
pub(crate) fn check(set: &PolicySet) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    unique_names(set, &mut out);
    for p in &set.profiles {
        profile(p, &mut out);
    }
    for p in &set.policies {
        policy(p, set, &mut out);
    }
    out
}

fn unique_names(set: &PolicySet, out: &mut Vec<Diagnostic>) {
    defined_once("profile", &set.profiles, |p| &p.metadata.name, out);
    defined_once("policy", &set.policies, |p| &p.metadata.name, out);
}

/// A `kind` named twice is an error at the second definition, pointing to
/// the first.
fn defined_once<T>(
    kind: &str,
    loaded: &[Loaded<T>],
    name_of: impl Fn(&T) -> &String,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: HashMap<&str, &Loaded<T>> = HashMap::new();
    for p in loaded {
        let name = name_of(&p.value).as_str();
        if let Some(first) = seen.get(name) {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::DuplicateId,
                        format!("{kind} `{name}` is defined twice"),
                    )
                    .with_hint(format!(
                        "first defined in {}; rename one of them",
                        first.source.path.display()
                    )),
                    "/metadata/name",
                ),
            );
        } else {
            seen.insert(name, p);
        }
    }
}

fn profile(p: &Loaded<Profile>, out: &mut Vec<Diagnostic>) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, c) in p.value.controls.iter().enumerate() {
        if let Some(first) = ids.insert(c.id.as_str(), i) {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::DuplicateId,
                        format!(
                            "control id `{}` is used twice in profile `{}`",
                            c.id, p.value.metadata.name
                        ),
                    )
                    .with_hint(format!(
                        "controls[{first}] has the same id; ids must be unique within a profile"
                    )),
                    &format!("/controls/{i}/id"),
                ),
            );
        }
        check_regexes(p, &c.check, &format!("/controls/{i}/check"), out);
        // A control's evidence is one level: a pod's configuration
        // (`spec`) or what the target's filesystem showed, never both.
        if c.check.has_workload() && !c.check.is_workload() {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::MixedEvidence,
                        "a control mixes workload checks (pod_security, workload) with filesystem checks",
                    )
                    .with_hint("split it into two controls: each result says how its facts were obtained, and one control has one evidence level"),
                    &format!("/controls/{i}/check"),
                ),
            );
        }
        if c.tags.contains_key("evidence") {
            out.push(
                p.at_key(
                    Diagnostic::error(
                        Code::ReservedTag,
                        "the tag `evidence` is vigil's: every control's HDF carries how its facts were obtained there",
                    )
                    .with_hint("rename the tag"),
                    &format!("/controls/{i}/tags/evidence"),
                ),
            );
        }
    }
}

/// Every regex in a check (recursively through combinators) must compile.
fn check_regexes(p: &Loaded<Profile>, check: &Check, ptr: &str, out: &mut Vec<Diagnostic>) {
    let mut try_regex = |pattern: &Option<String>, sub: &str| {
        if let Some(re) = pattern
            && let Err(e) = regex::Regex::new(re)
        {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::InvalidRegex,
                        format!("invalid regular expression: {}", first_line(&e.to_string())),
                    )
                    .with_hint(
                        "regexes use Rust `regex` syntax (no look-around or backreferences)",
                    ),
                    &format!("{ptr}{sub}"),
                ),
            );
        }
    };
    match check {
        Check::File(f) => {
            try_regex(&f.expect.content_matches, "/expect/content_matches");
            try_regex(&f.expect.content_not_matches, "/expect/content_not_matches");
        }
        Check::Process(pr) => try_regex(&Some(pr.process.clone()), "/process"),
        Check::Command(c) => {
            try_regex(&c.expect.stdout_matches, "/expect/stdout_matches");
            try_regex(&c.expect.stdout_not_matches, "/expect/stdout_not_matches");
        }
        Check::Config(c) => {
            for (k, e) in &c.expect {
                try_regex(
                    &e.matches,
                    &format!("/expect/{}/matches", super::yaml::escape_segment(k)),
                );
            }
        }
        Check::All(a) => sub_checks(p, &a.all, &format!("{ptr}/all"), out),
        Check::Any(a) => sub_checks(p, &a.any, &format!("{ptr}/any"), out),
        Check::None(a) => sub_checks(p, &a.none, &format!("{ptr}/none"), out),
        _ => {}
    }
}

fn sub_checks(p: &Loaded<Profile>, checks: &[Check], ptr: &str, out: &mut Vec<Diagnostic>) {
    for (i, c) in checks.iter().enumerate() {
        check_regexes(p, c, &format!("{ptr}/{i}"), out);
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn policy(p: &Loaded<ScanPolicy>, set: &PolicySet, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // Profile references, and the control ids they bring (for waivers).
    let mut controls: BTreeSet<&str> = BTreeSet::new();
    let mut resolve = |name: &str, ptr: String, out: &mut Vec<Diagnostic>| match set.profile(name) {
        Some(prof) => controls.extend(prof.value.controls.iter().map(|c| c.id.as_str())),
        None => {
            let known: Vec<&str> = set
                .profiles
                .iter()
                .map(|p| p.value.metadata.name.as_str())
                .collect();
            let hint = if known.is_empty() {
                "no Profile documents were loaded; pass the profile files or their directory too"
                    .to_string()
            } else {
                format!("known profiles: {}", known.join(", "))
            };
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::UnresolvedProfile,
                        format!("profile `{name}` is not defined"),
                    )
                    .with_hint(hint),
                    &ptr,
                ),
            );
        }
    };
    for (i, name) in spec.profiles.iter().enumerate() {
        resolve(name, format!("/spec/profiles/{i}"), out);
    }
    // Two rootfs targets with one id: one result would overwrite the other
    // (`plan` and `run` refuse it; `validate` says so first).
    let mut rootfs_ids: std::collections::BTreeMap<String, String> = Default::default();
    for (t, target) in spec.targets.iter().enumerate() {
        if let Some(id) = target.rootfs_id(p.base_dir()) {
            let here = if target.name.is_some() {
                format!("/spec/targets/{t}/name")
            } else {
                format!("/spec/targets/{t}/rootfs")
            };
            match rootfs_ids.get(&id) {
                Some(first) => out.push(duplicate_target(p, &id, first, &here)),
                None => {
                    rootfs_ids.insert(id, here);
                }
            }
        }
    }
    for (t, target) in spec.targets.iter().enumerate() {
        for (i, name) in target.profiles.iter().enumerate() {
            resolve(name, format!("/spec/targets/{t}/profiles/{i}"), out);
        }
        target_fit(p, target, t, out);
        // `evidence: probe` and a way of scanning that cannot give it.
        if spec.evidence == super::model::MinEvidence::Probe && !target.is_rootfs() {
            let why = if spec.scanner.is_some() {
                Some("an external scanner reports through exec: its facts are its own word")
            } else if target.approach == super::model::Approach::Api {
                Some(
                    "approach api gathers facts through the target's own shell, which can lie about itself",
                )
            } else {
                None
            };
            if let Some(why) = why {
                out.push(p.at_value(
                    Diagnostic::error(
                        Code::EvidenceTooWeak,
                        format!("the policy requires evidence: probe, but {why}"),
                    )
                    .with_hint("use approach debug, sidecar or auto (with spec.debug.image), or lower spec.evidence to api"),
                    &format!("/spec/targets/{t}/approach"),
                ));
            }
        }
    }
    schedule(p, out);
    token_and_limits(p, out);
    external_scanner(p, out);
    patterns_and_images(p, out);
    results(p, &controls, out);
}

/// `spec`: the schedule: a cron that parses and fires, a time zone, and how often debug scans would run.
fn schedule(p: &Loaded<ScanPolicy>, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // Schedule.
    if let Some(s) = &spec.schedule {
        let ptr = match s {
            super::model::Schedule::Cron(_) => "/spec/schedule",
            super::model::Schedule::Detailed(_) => "/spec/schedule/cron",
        };
        match parse_cron(s.cron()) {
            Err(e) => out.push(p.at_value(
                Diagnostic::error(Code::InvalidCron, format!("invalid cron expression `{}`: {e}", s.cron()))
                    .with_hint("use 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\", or @hourly/@daily/@weekly/@monthly"),
                ptr,
            )),
            Ok(cron) if !fires(&cron) => out.push(p.at_value(
                Diagnostic::warning(
                    Code::CronNeverFires,
                    format!("cron expression `{}` never fires (no such date)", s.cron()),
                )
                .with_hint("check the day of month against the month (February has at most 29 days; April, June, September and November 30)"),
                ptr,
            )),
            Ok(cron) => {
                // Ephemeral containers cannot be removed: each debug scan
                // leaves one in its pod's spec until the pod is replaced.
                let debug = spec.debug.is_some()
                    && spec.targets.iter().any(|t| {
                        !t.is_rootfs()
                            && matches!(
                                t.approach,
                                super::model::Approach::Debug | super::model::Approach::Auto
                            )
                    });
                let per_day = fires_in_a_week(&cron) as f64 / 7.0;
                if debug && per_day > 1.0 {
                    out.push(p.at_value(
                        Diagnostic::warning(
                            Code::EphemeralAccumulation,
                            format!(
                                "schedule `{}` runs about {per_day:.0} times a day, and each debug scan leaves an ephemeral container in its pod for good",
                                s.cron()
                            ),
                        )
                        .with_hint("Kubernetes cannot remove ephemeral containers: a long-lived pod scanned hourly carries hundreds, and its object grows toward the API server's size limit. Scan daily, use a vigil sidecar for such pods, or the api approach where the image has a shell; `vigil plan` counts the vigil containers a pod carries already"),
                        ptr,
                    ));
                }
            }
        }
        if let super::model::Schedule::Detailed(d) = s
            && let Some(tz) = &d.timezone
            && chrono_tz_like(tz).is_err()
        {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::InvalidCron,
                        format!("`{tz}` is not an IANA timezone name"),
                    )
                    .with_hint("use a name such as UTC, Europe/Berlin or America/New_York"),
                    "/spec/schedule/timezone",
                ),
            );
        }
    }
}

/// `spec`: token lifetime and audiences, access scope, and the limits that depend on them.
fn token_and_limits(p: &Loaded<ScanPolicy>, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // Token lifetime.
    let ttl = spec.access.token_ttl.get();
    if !(MIN_TOKEN_TTL..=MAX_TOKEN_TTL).contains(&ttl) {
        out.push(p.at_value(
            Diagnostic::error(
                Code::TokenTtlRange,
                format!("tokenTTL {} is outside 10m–60m", spec.access.token_ttl),
            )
            .with_hint("the TokenRequest API grants at least 10 minutes; vigil caps tokens at 60 minutes to keep them short-lived"),
            "/spec/access/tokenTTL",
        ));
    }
    // A scan starts only on a token with more than `1 - RENEW_AT` of its
    // life left (`access::RunAccess::scoped_for_scan`); a longer scan
    // outlives it and its last requests are refused.
    let scan = spec.limits.scan_timeout.get();
    if scan.as_secs_f64() > ttl.as_secs_f64() * (1.0 - super::model::TOKEN_RENEW_AT) + 0.5 {
        let share = ((1.0 - super::model::TOKEN_RENEW_AT) * 100.0).round();
        out.push(p.at_value(
            Diagnostic::warning(
                Code::ScanOutlivesToken,
                format!(
                    "scanTimeout {} is more than {share}% of tokenTTL {}: a scan can outlive the token it started with",
                    spec.limits.scan_timeout, spec.access.token_ttl
                ),
            )
            .with_hint(format!("a scan starts only on a token with {share}% of its life left (the run renews it at {}%); lengthen tokenTTL or shorten scanTimeout", (super::model::TOKEN_RENEW_AT * 100.0).round())),
            "/spec/limits/scanTimeout",
        ));
    }
    if !spec.access.audiences.is_empty() {
        out.push(p.at_value(
            Diagnostic::warning(
                Code::TokenAudience,
                "access.audiences replaces the API server's own audience in the run's tokens",
            )
            .with_hint("vigil uses its tokens only against the API server, which refuses (401) a token without its own audience (its --api-audiences, by default the service account issuer: https://kubernetes.default.svc.cluster.local on kubeadm, kind and k3s); remove access.audiences unless you list that audience in it"),
            "/spec/access/audiences",
        ));
    }
    if spec.access.scope == crate::policy::model::AccessScope::Namespace
        && spec.access.mode == crate::policy::model::AccessMode::PerRun
    {
        out.push(p.at_value(
            Diagnostic::warning(Code::IgnoredSetting, "access.scope applies to provisioned mode only")
                .with_hint("a per-run Role is made for each run's pods, so it is always pinned to them; remove scope or set mode: provisioned"),
            "/spec/access/scope",
        ));
    }
    if scan > spec.limits.run_deadline.get() {
        out.push(p.at_value(
            Diagnostic::warning(Code::InvalidDuration, "scanTimeout is longer than runDeadline")
                .with_hint("a single scan can never use its whole timeout; shorten scanTimeout or lengthen runDeadline"),
            "/spec/limits/scanTimeout",
        ));
    }
}

/// `spec`: an external scanner: its files exist, and it reaches Kubernetes containers only.
fn external_scanner(p: &Loaded<ScanPolicy>, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // An external scanner: its profile must exist, and it reaches
    // Kubernetes containers only.
    if let Some(ext) = &spec.scanner {
        let base = p.base_dir();
        for (file, ptr) in std::iter::once((&ext.profile, "/spec/scanner/profile"))
            .chain(ext.waivers.iter().map(|w| (w, "/spec/scanner/waivers")))
        {
            if !base.join(file).exists() {
                out.push(
                    p.at_value(
                        Diagnostic::error(Code::ReadFailed, format!("`{file}` does not exist"))
                            .with_hint("paths are relative to the policy file"),
                        ptr,
                    ),
                );
            }
        }
        for (i, t) in spec.targets.iter().enumerate() {
            if t.is_rootfs() {
                out.push(p.at_value(
                    Diagnostic::error(
                        Code::ApproachMismatch,
                        "spec.scanner runs over Kubernetes exec; it cannot scan a rootfs target",
                    )
                    .with_hint("scan root filesystems with vigil's own controls, in a policy without spec.scanner"),
                    &format!("/spec/targets/{i}"),
                ));
            }
        }
    }
}

/// `spec`: redaction patterns, and scanner images pinned by digest with what verifying them needs.
fn patterns_and_images(p: &Loaded<ScanPolicy>, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // Redaction patterns.
    for (i, pattern) in spec.redact.iter().enumerate() {
        if let Err(e) = regex::Regex::new(pattern) {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::InvalidRegex,
                        format!("invalid redaction pattern: {}", first_line(&e.to_string())),
                    )
                    .with_hint(
                        "regexes use Rust `regex` syntax (no look-around or backreferences)",
                    ),
                    &format!("/spec/redact/{i}"),
                ),
            );
        }
    }

    // Images pinned by digest.
    if let Some(d) = &spec.debug {
        pinned(p, &d.image, "/spec/debug/image", out);
        if !d.resources.limits.is_empty() || !d.resources.requests.is_empty() {
            out.push(p.at_value(
                Diagnostic::warning(
                    Code::IgnoredSetting,
                    "Kubernetes refuses resources on ephemeral containers; spec.debug.resources cannot apply",
                )
                .with_hint("remove it; ephemeral containers use the pod's spare resources, and the probe bounds itself (read caps, walk limits, scanTimeout)"),
                "/spec/debug/resources",
            ));
        }
    }
    if let Some(s) = &spec.sidecar
        && let Some(image) = &s.image
    {
        pinned(p, image, "/spec/sidecar/image", out);
    }
    let verifies = [
        spec.debug
            .as_ref()
            .and_then(|d| d.verify.as_ref())
            .map(|v| (v, "/spec/debug/verify")),
        spec.sidecar
            .as_ref()
            .and_then(|s| s.verify.as_ref())
            .map(|v| (v, "/spec/sidecar/verify")),
    ];
    for (v, ptr) in verifies.into_iter().flatten() {
        scanner_verify(p, v, ptr, out);
    }
    if let Some(s) = &spec.sidecar
        && s.verify.is_some()
        && s.image.is_none()
    {
        out.push(p.at_value(
            Diagnostic::error(Code::MissingScannerImage, "spec.sidecar.verify needs spec.sidecar.image: the digest whose signature is checked")
                .with_hint("set spec.sidecar.image to the sidecar image pinned by digest"),
            "/spec/sidecar/verify",
        ));
    }
}

/// `spec`: waivers, the threshold and the recipients.
fn results(p: &Loaded<ScanPolicy>, controls: &BTreeSet<&str>, out: &mut Vec<Diagnostic>) {
    let spec = &p.value.spec;
    // Waivers.
    let now = chrono::Utc::now();
    for (i, w) in spec.waivers.iter().enumerate() {
        let base = format!("/spec/waivers/{i}");
        match parse_expiry(&w.expires) {
            Ok(when) if when < now => out.push(p.at_value(
                Diagnostic::warning(Code::ExpiredWaiver, format!("waiver for `{}` expired on {}", w.control, w.expires))
                    .with_hint("an expired waiver does not apply; renew it with a new approval or remove it"),
                &format!("{base}/expires"),
            )),
            Ok(_) => {}
            Err(msg) => out.push(p.at_value(
                Diagnostic::error(Code::InvalidWaiver, msg.to_string())
                    .with_hint("write an RFC 3339 time with a timezone, e.g. 2027-01-31T00:00:00Z or 2027-01-31T00:00:00+01:00"),
                &format!("{base}/expires"),
            )),
        }
        if !controls.is_empty() && !controls.contains(w.control.as_str()) {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::UnknownControl,
                        format!(
                            "waiver names control `{}`, which none of the policy's profiles define",
                            w.control
                        ),
                    )
                    .with_hint("check the control id against the profiles the policy uses"),
                    &format!("{base}/control"),
                ),
            );
        }
    }

    // Threshold.
    if let Some(t) = &spec.threshold {
        match Threshold::parse(t) {
            Err(errs) => {
                for e in errs {
                    out.push(p.at_key(
                        Diagnostic::error(Code::InvalidThreshold, e.message)
                            .with_hint("see the SAF CLI threshold format: compliance.min, failed.critical.max, passed.total.min, ..."),
                        &format!("/spec/threshold{}", e.pointer),
                    ));
                }
            }
            Ok(_) => {
                // Where `saf validate threshold` would judge otherwise.
                let profiles = spec
                    .targets
                    .iter()
                    .map(|t| {
                        if t.profiles.is_empty() {
                            spec.profiles.len()
                        } else {
                            t.profiles.len()
                        }
                    })
                    .max()
                    .unwrap_or(0);
                for (pointer, why) in crate::policy::threshold::saf_differences(t, profiles) {
                    out.push(p.at_key(
                        Diagnostic::warning(Code::SafDifference, why).with_hint(
                            "vigil keeps the plain meaning; see docs/controls.md, Thresholds",
                        ),
                        &format!("/spec/threshold{pointer}"),
                    ));
                }
            }
        }
    }

    // Recipients.
    for (i, r) in spec.output.recipients.iter().enumerate() {
        if let Err(msg) = check_recipient(r) {
            out.push(p.at_value(
                Diagnostic::error(Code::InvalidRecipient, msg.to_string())
                    .with_hint("use an age recipient (age1…, from `age-keygen -y` or `vigil keygen age`) or an ssh public key line (ssh-ed25519 … / ssh-rsa …)"),
                &format!("/spec/output/recipients/{i}"),
            ));
        }
    }
}

/// The error for a target whose id `id` the target at pointer `first`
/// already has (`here` points at the second).
pub(crate) fn duplicate_target(
    p: &Loaded<ScanPolicy>,
    id: &str,
    first: &str,
    here: &str,
) -> Diagnostic {
    let at = p.doc.value_position(first);
    p.at_value(
        Diagnostic::error(
            Code::DuplicateTarget,
            format!(
                "target id `{id}` is already used by the target at line {}, column {}; each would overwrite the other's result",
                at.line, at.column
            ),
        )
        .with_hint("give one of them a distinct `name:`"),
        here,
    )
}

/// A local target is one of a rootfs, an image or a manifest, and a
/// manifest names its own targets.
fn local_kind(
    p: &Loaded<ScanPolicy>,
    t: &super::model::Target,
    base: &str,
    out: &mut Vec<Diagnostic>,
) {
    let local_kinds = [
        ("rootfs", t.rootfs.is_some()),
        ("image", t.image.is_some()),
        ("manifest", t.manifest.is_some()),
    ];
    if local_kinds.iter().filter(|(_, set)| *set).count() > 1 {
        let last = local_kinds
            .iter()
            .rev()
            .find(|(_, set)| *set)
            .map_or("image", |k| k.0);
        out.push(
            p.at_value(
                Diagnostic::error(
                    Code::InvalidTarget,
                    "a target is one of a rootfs, an image or a manifest, not several",
                )
                .with_hint("split it into one target each"),
                &format!("{base}/{last}"),
            ),
        );
    }
    if t.manifest.is_some() && t.name.is_some() {
        out.push(p.at_key(
            Diagnostic::error(
                Code::InvalidTarget,
                "`name` does not apply to manifest targets: each workload is named <kind>/<namespace>/<name>",
            )
            .with_hint("remove `name:`"),
            &format!("{base}/name"),
        ));
    }
}

/// Targets are either Kubernetes containers or a local root filesystem, and
/// the approach must be one that can reach them.
fn target_fit(p: &Loaded<ScanPolicy>, t: &Target, i: usize, out: &mut Vec<Diagnostic>) {
    let base = format!("/spec/targets/{i}");
    let spec = &p.value.spec;
    // A warning, not an error: the policy may be validated in a policy
    // repository's CI and run on the machine that has the root.
    if let Some(dir) = &t.rootfs
        && !p.base_dir().join(dir).is_dir()
        && !p.base_dir().join(dir).is_file()
    {
        out.push(p.at_value(
            Diagnostic::warning(
                Code::InvalidTarget,
                format!("rootfs `{}` is neither a directory nor an archive on this machine", crate::safeio::excerpt(dir, 200)),
            )
            .with_hint("paths are relative to the policy file; `vigil run` here would refuse it (fine if the policy runs elsewhere)"),
            &format!("{base}/rootfs"),
        ));
    }
    local_kind(p, t, &base, out);
    if let Some(image) = &t.image
        && let Err(e) = crate::image_source::Source::parse(image, p.base_dir())
    {
        out.push(p.at_value(
            Diagnostic::error(Code::InvalidTarget, e.to_string())
                .with_hint("write oci-dir:PATH[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or registry:REF@sha256:<64 hex> (docs/images.md)"),
            &format!("{base}/image"),
        ));
    }
    if t.is_rootfs() {
        let k8s_fields: Vec<&str> = [
            ("namespace", t.namespace.is_some()),
            ("cluster", t.cluster.is_some()),
            ("selector", t.selector.is_some()),
            ("pods", !t.pods.is_empty()),
            ("containers", !t.containers.is_empty()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        if !k8s_fields.is_empty() {
            out.push(
                p.at_value(
                    Diagnostic::error(
                        Code::InvalidTarget,
                        format!("a rootfs target cannot also have {}", k8s_fields.join(", ")),
                    )
                    .with_hint("split it into two targets: one `rootfs:` and one `namespace:`"),
                    &base,
                ),
            );
        }
        if !matches!(t.approach, Approach::Auto | Approach::Local) {
            out.push(p.at_value(
                Diagnostic::error(
                    Code::ApproachMismatch,
                    format!("approach `{}` cannot reach a rootfs target", t.approach.as_str()),
                )
                .with_hint("rootfs targets are scanned locally: use `approach: local` or leave it `auto`"),
                &format!("{base}/approach"),
            ));
        }
        return;
    }
    if t.namespace.is_none() {
        out.push(
            p.at_value(
                Diagnostic::error(
                    Code::InvalidTarget,
                    "a target needs `namespace:` (Kubernetes) or `rootfs:` (local)",
                )
                .with_hint("add `namespace: <ns>` with an optional selector, or `rootfs: <dir>`"),
                &base,
            ),
        );
    }
    if t.name.is_some() {
        out.push(
            p.at_key(
                Diagnostic::error(Code::InvalidTarget, "`name` applies to rootfs targets only")
                    .with_hint("Kubernetes targets are named namespace/pod/container"),
                &format!("{base}/name"),
            ),
        );
    }
    match t.approach {
        Approach::Local => out.push(
            p.at_value(
                Diagnostic::error(
                    Code::ApproachMismatch,
                    "approach `local` only scans rootfs targets",
                )
                .with_hint("use api, debug, sidecar or auto for Kubernetes targets"),
                &format!("{base}/approach"),
            ),
        ),
        Approach::Debug if spec.debug.is_none() => out.push(
            p.at_value(
                Diagnostic::error(
                    Code::MissingScannerImage,
                    "approach `debug` needs `spec.debug.image`",
                )
                .with_hint("set spec.debug.image to the vigil probe image pinned by digest"),
                &format!("{base}/approach"),
            ),
        ),
        _ => {}
    }
    if let Some(sel) = &t.selector {
        for e in sel.validate() {
            out.push(p.at_value(
                Diagnostic::error(Code::InvalidSelector, e.message)
                    .with_hint("label selectors follow Kubernetes rules: matchLabels and matchExpressions with In, NotIn, Exists, DoesNotExist"),
                &format!("{base}/selector{}", e.pointer),
            ));
        }
    }
}

/// A `verify` block's key must be a usable public key and its saved
/// signature (if any) a readable file, before anything runs.
fn scanner_verify(
    p: &Loaded<ScanPolicy>,
    v: &crate::policy::model::ImageVerify,
    ptr: &str,
    out: &mut Vec<Diagnostic>,
) {
    if let Err(e) = crate::cosign::PublicKey::resolve(&v.key, p.base_dir()) {
        out.push(p.at_value(
            Diagnostic::error(Code::InvalidScannerKey, e.to_string())
                .with_hint("give the signer's public key (cosign.pub, or `openssl pkey -pubout` output) as a path relative to the policy file"),
            &format!("{ptr}/key"),
        ));
    }
    if let Some(sig) = &v.signature
        && let Err(e) = crate::safeio::read(&p.base_dir().join(sig), 4 << 20, "signature file")
    {
        out.push(p.at_value(
            Diagnostic::error(Code::ReadFailed, e.to_string())
                .with_hint("save the signature with `cosign download signature IMAGE > FILE`, relative to the policy file"),
            &format!("{ptr}/signature"),
        ));
    }
}

fn pinned(p: &Loaded<ScanPolicy>, image: &str, ptr: &str, out: &mut Vec<Diagnostic>) {
    if !is_pinned(image) {
        out.push(p.at_value(
            Diagnostic::error(Code::UnpinnedImage, format!("image `{image}` is not pinned by digest"))
                .with_hint("reference the image as name@sha256:<64 hex digits> (tags can be moved; digests cannot)"),
            ptr,
        ));
    }
}

/// Returns true if and only if `image` ends in `@sha256:` and 64 lowercase hex digits.
pub(crate) fn is_pinned(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty()
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A cron expression vigil does not accept, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CronError {
    /// Not the standard five fields (seconds and years are refused).
    #[error("expected 5 fields, found {0}")]
    FieldCount(usize),
    /// croner refused the expression.
    #[error("{0}")]
    Syntax(String),
}

/// Parse a standard 5-field cron expression or an `@` nickname.
pub(crate) fn parse_cron(expr: &str) -> Result<croner::Cron, CronError> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(CronError::FieldCount(fields));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| CronError::Syntax(e.to_string()))
}

/// Returns true if and only if `cron` fires at least once in the next 400
/// years (one full Gregorian cycle: a date that exists at all exists in it).
pub(crate) fn fires(cron: &croner::Cron) -> bool {
    use chrono::TimeZone as _;
    let from = chrono::Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date");
    cron.find_next_occurrence(&from, true)
        .is_ok_and(|t| t < from + chrono::Duration::days(366 * 400))
}

/// How often `cron` fires in one week (from a fixed Monday, in UTC).
pub(crate) fn fires_in_a_week(cron: &croner::Cron) -> usize {
    use chrono::TimeZone as _;
    let from = chrono::Utc
        .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .expect("a valid date");
    let until = from + chrono::Duration::days(7);
    cron.iter_after(from)
        .take_while(|t| *t < until)
        .take(10_081)
        .count()
}

/// An IANA timezone name the zone database knows (`UTC`, `Europe/Berlin`).
fn chrono_tz_like(tz: &str) -> Result<(), ()> {
    tz.parse::<chrono_tz::Tz>().map(drop).map_err(drop)
}

/// A waiver expiry that is not an unambiguous instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExpiryError {
    /// A local date or time: which day it ends on depends on the machine.
    #[error("waiver expiry `{0}` has no timezone")]
    NoTimezone(String),
    /// Not RFC 3339 at all.
    #[error("waiver expiry `{text}` is not an RFC 3339 time: {reason}")]
    NotRfc3339 {
        /// The expiry as written.
        text: String,
        /// chrono's reason.
        reason: String,
    },
}

/// Parse a waiver expiry: RFC 3339 with an explicit offset or `Z`.
pub(crate) fn parse_expiry(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ExpiryError> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t.with_timezone(&chrono::Utc)),
        Err(_)
            if chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok()
                || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() =>
        {
            Err(ExpiryError::NoTimezone(text.into()))
        }
        Err(e) => Err(ExpiryError::NotRfc3339 {
            text: text.into(),
            reason: e.to_string(),
        }),
    }
}

/// A recipient the `age` CLI cannot encrypt to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// `age1…` that does not decode.
    #[error("invalid age recipient: {0}")]
    Age(String),
    /// `ssh-ed25519 …` or `ssh-rsa …` that is not a valid public key.
    #[error("not a valid ssh-ed25519 or ssh-rsa public key")]
    Ssh,
    /// Neither kind (the first 24 characters are shown).
    #[error("`{0}…` is neither an age (age1…) nor an ssh-ed25519/ssh-rsa recipient")]
    Unknown(String),
}

/// Parse a recipient as a policy or a flag lists it (`age1…`,
/// `ssh-ed25519 …`, `ssh-rsa …`): the one parser lint and sealing share.
pub(crate) fn parse_recipient(
    r: &str,
) -> Result<Box<dyn age::Recipient + Send + Sync>, RecipientError> {
    if r.starts_with("age1") {
        age::x25519::Recipient::from_str(r)
            .map(|x| Box::new(x) as _)
            .map_err(|e| RecipientError::Age(e.to_string()))
    } else if r.starts_with("ssh-ed25519 ") || r.starts_with("ssh-rsa ") {
        age::ssh::Recipient::from_str(r)
            .map(|x| Box::new(x) as _)
            .map_err(|_| RecipientError::Ssh)
    } else {
        Err(RecipientError::Unknown(r.chars().take(24).collect()))
    }
}

/// Check that a recipient is one the `age` CLI can encrypt to.
fn check_recipient(r: &str) -> Result<(), RecipientError> {
    parse_recipient(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_forms() {
        assert!(parse_cron("0 2 * * *").is_ok());
        // A date that never comes ends the search at croner's year limit:
        // the loop ends (no wall-clock bound here: a timed test fails on a
        // loaded machine, not on a slow search).
        for (expr, ok) in [
            ("0 2 * * *", true),
            ("0 0 29 2 *", true),
            ("0 0 29 2 1", true),
            ("0 0 30 2 *", false),
            ("0 0 31 4,6,9,11 *", false),
            ("0 0 31 2,4 *", false),
        ] {
            assert_eq!(fires(&parse_cron(expr).unwrap()), ok, "{expr}");
        }
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("*/15 * * * MON-FRI").is_ok());
        assert!(
            parse_cron("0 0 2 * * *").is_err(),
            "6 fields (seconds) refused"
        );
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("@fortnightly").is_err());
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        assert!(is_pinned(&format!("reg.example/vigil@sha256:{hex}")));
        assert!(is_pinned(&format!("reg.example/vigil:1.0@sha256:{hex}")));
        assert!(!is_pinned("reg.example/vigil:1.0"));
        assert!(!is_pinned(&format!(
            "reg.example/vigil@sha256:{}",
            &hex[..63]
        )));
        assert!(!is_pinned(&format!("@sha256:{hex}")));
    }

    #[test]
    fn expiry_needs_timezone() {
        assert!(parse_expiry("2027-01-31T00:00:00Z").is_ok());
        assert!(parse_expiry("2027-01-31T00:00:00+01:00").is_ok());
        assert!(
            parse_expiry("2027-01-31T00:00:00")
                .unwrap_err()
                .to_string()
                .contains("no timezone")
        );
        assert!(
            parse_expiry("2027-01-31")
                .unwrap_err()
                .to_string()
                .contains("no timezone")
        );
        assert!(parse_expiry("soon").is_err());
    }

    #[test]
    fn recipients() {
        assert!(
            check_recipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p")
                .is_ok()
        );
        assert!(check_recipient("age1notarecipient").is_err());
        assert!(check_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust").is_ok());
        assert!(check_recipient("ssh-dss AAAA").is_err());
        assert!(check_recipient("bob@example.com").is_err());
    }
}
