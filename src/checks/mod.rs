//! Evaluating controls on [`Facts`]: pure functions, no I/O.
//!
//! Each check yields one or more [`TestResult`]s, one per expectation, with
//! an InSpec-style description ("File /etc/shadow mode is expected to be at
//! most 0640") and a message saying what was found ("…, got 0644").

mod accounts;
mod file;
mod image;
mod package;
pub(crate) mod pss;
mod system;
pub(crate) mod version;
mod workload;

use serde::Serialize;

use crate::facts::Facts;
use crate::policy::model::{Approach, Check, Control, Principal};

/// Outcome of one expectation (HDF result `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The expectation holds.
    Passed,
    /// It does not.
    Failed,
    /// It does not apply or cannot be evaluated by this approach.
    Skipped,
    /// The facts needed could not be gathered.
    Error,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [
        Status::Passed,
        Status::Failed,
        Status::Skipped,
        Status::Error,
    ];

    /// The HDF result status name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Error => "error",
        }
    }

    /// The status an HDF result names, if any.
    pub fn from_hdf_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Most characters of found values or reasons copied into one message.
const MAX_FOUND_CHARS: usize = 240;

/// One evaluated expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// Outcome.
    pub status: Status,
    /// What was expected, InSpec style.
    pub code_desc: String,
    /// What was found (for passed results too, as evidence).
    pub message: String,
    /// Where in a manifest the field that decided it is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::facts::workload::Location>,
    /// A skipped result because the control does not apply to this target
    /// at all (a Pod Security check that does not exist at the chosen
    /// version, or that the level replaces): a control made only of such
    /// results is written with impact 0, which HDF readers count as not
    /// applicable rather than not reviewed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_applicable: bool,
}

impl TestResult {
    fn new(status: Status, code_desc: impl Into<String>, message: impl Into<String>) -> TestResult {
        TestResult {
            status,
            code_desc: code_desc.into(),
            message: message.into(),
            location: None,
            not_applicable: false,
        }
    }

    fn not_applicable(code_desc: String, why: impl Into<String>) -> TestResult {
        TestResult {
            not_applicable: true,
            ..TestResult::skipped(code_desc, why)
        }
    }

    /// The same result, located at a manifest field.
    fn at(mut self, location: Option<crate::facts::workload::Location>) -> TestResult {
        self.location = location;
        self
    }

    /// A passed or failed result from a boolean. What was found comes from
    /// the target (a config value, an os-release field, a version), so it
    /// enters the message only as a short, escaped excerpt.
    fn check(ok: bool, code_desc: String, got: impl Into<String>) -> TestResult {
        let got = crate::safeio::excerpt(&got.into(), MAX_FOUND_CHARS);
        let message = format!("{code_desc}, got {got}");
        TestResult::new(
            if ok { Status::Passed } else { Status::Failed },
            code_desc,
            message,
        )
    }

    fn error(code_desc: String, why: impl Into<String>) -> TestResult {
        let why = crate::safeio::excerpt(&why.into(), MAX_FOUND_CHARS);
        let message = format!("{code_desc}, but {why}");
        TestResult::new(Status::Error, code_desc, message)
    }

    fn skipped(code_desc: String, why: impl Into<String>) -> TestResult {
        TestResult::new(Status::Skipped, code_desc, why.into())
    }
}

/// What evaluation needs to know besides the facts, plus what is derived
/// from the facts once per target (the passwd/group tables).
#[derive(Debug)]
pub struct Context<'a> {
    /// How the facts were gathered (explains skipped process/command checks).
    pub approach: Approach,
    /// The target's pod configuration, for workload controls (`None`: the
    /// target has none, a root filesystem or an image).
    pub workload: Option<&'a crate::facts::workload::Workload>,
    /// The policy's Pod Security Standards version (`latest` when unset).
    pub pod_security_version: Option<&'a str>,
    names: std::cell::OnceCell<Names>,
}

impl<'a> Context<'a> {
    /// A context for one target.
    pub fn new(approach: Approach) -> Context<'a> {
        Context {
            approach,
            workload: None,
            pod_security_version: None,
            names: std::cell::OnceCell::new(),
        }
    }

    /// The same context with the target's pod configuration.
    pub fn with_workload(
        mut self,
        workload: Option<&'a crate::facts::workload::Workload>,
    ) -> Context<'a> {
        self.workload = workload;
        self
    }

    /// The target's user and group names, parsed on first use.
    fn names(&self, facts: &Facts) -> &Names {
        self.names.get_or_init(|| Names::from_facts(facts))
    }
}

/// Compile a regex once per process: the same profile patterns are
/// evaluated on every target.
fn regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(r) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return Ok(r.clone());
    }
    let r = regex::Regex::new(pattern)?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pattern.to_string(), r.clone());
    Ok(r)
}

pub use package::installed as installed_packages;

/// Evaluate a control.
pub fn evaluate(control: &Control, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    evaluate_check(&control.check, facts, ctx)
}

/// Evaluate one check (recursively for combinators).
pub fn evaluate_check(check: &Check, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    match check {
        Check::File(c) => file::file(c, facts, ctx),
        Check::Directory(c) => file::directory(c, facts, ctx),
        Check::Package(c) => package::package(c, facts),
        Check::Users(c) => accounts::users(c, facts),
        Check::Groups(c) => accounts::groups(c, facts),
        Check::Os(c) => system::os(c, facts),
        Check::Config(c) => system::config(c, facts),
        Check::Process(c) => system::process(c, facts, ctx),
        Check::Command(c) => system::command(c, facts, ctx),
        Check::Image(c) => image::image(c, facts),
        Check::PodSecurity(c) => workload::pod_security(c, ctx),
        Check::Workload(c) => workload::workload(c, ctx),
        Check::All(a) => a
            .all
            .iter()
            .flat_map(|c| evaluate_check(c, facts, ctx))
            .collect(),
        Check::Any(a) => vec![any(&a.any, facts, ctx)],
        Check::None(a) => vec![none(&a.none, facts, ctx)],
    }
}

/// The status of a group of results taken together (Heimdall's order:
/// error, then failed, then passed, then skipped).
pub fn overall(results: &[TestResult]) -> Status {
    if results.iter().any(|r| r.status == Status::Error) {
        Status::Error
    } else if results.iter().any(|r| r.status == Status::Failed) {
        Status::Failed
    } else if results.iter().any(|r| r.status == Status::Passed) {
        Status::Passed
    } else {
        Status::Skipped
    }
}

fn describe(results: &[TestResult]) -> String {
    results
        .iter()
        .map(|r| r.code_desc.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn any(checks: &[Check], facts: &Facts, ctx: &Context) -> TestResult {
    let subs: Vec<Vec<TestResult>> = checks
        .iter()
        .map(|c| evaluate_check(c, facts, ctx))
        .collect();
    let code_desc = format!(
        "Any of: {}",
        subs.iter()
            .map(|s| format!("({})", describe(s)))
            .collect::<Vec<_>>()
            .join(" or ")
    );
    if let Some(ok) = subs.iter().find(|s| overall(s) == Status::Passed) {
        return TestResult::new(
            Status::Passed,
            code_desc,
            format!("satisfied: {}", messages(ok)),
        );
    }
    let status = if subs.iter().any(|s| overall(s) == Status::Error) {
        Status::Error
    } else if subs.iter().all(|s| overall(s) == Status::Skipped) {
        Status::Skipped
    } else {
        Status::Failed
    };
    // Each alternative by what decided it: its failed (or error) parts,
    // never the parts of it that held.
    let why = subs
        .iter()
        .map(|s| deciding(s))
        .collect::<Vec<_>>()
        .join("; ");
    TestResult::new(status, code_desc, format!("none satisfied: {why}"))
}

fn none(checks: &[Check], facts: &Facts, ctx: &Context) -> TestResult {
    let subs: Vec<Vec<TestResult>> = checks
        .iter()
        .map(|c| evaluate_check(c, facts, ctx))
        .collect();
    let code_desc = format!(
        "None of: {}",
        subs.iter()
            .map(|s| format!("({})", describe(s)))
            .collect::<Vec<_>>()
            .join(" or ")
    );
    let hits: Vec<String> = subs
        .iter()
        .filter(|s| overall(s) == Status::Passed)
        .map(|s| messages(s))
        .collect();
    if !hits.is_empty() {
        return TestResult::new(
            Status::Failed,
            code_desc,
            format!("but found: {}", hits.join("; ")),
        );
    }
    if subs.iter().any(|s| overall(s) == Status::Error) {
        let why = subs
            .iter()
            .filter(|s| overall(s) == Status::Error)
            .map(|s| messages(s))
            .collect::<Vec<_>>()
            .join("; ");
        return TestResult::new(Status::Error, code_desc, why);
    }
    if subs.iter().all(|s| overall(s) == Status::Skipped) {
        return TestResult::new(
            Status::Skipped,
            code_desc,
            subs.iter()
                .map(|s| messages(s))
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    TestResult::new(Status::Passed, code_desc, "none present")
}

/// The messages of the results that decided `results`' overall status
/// (its errors, else its failures, …).
fn deciding(results: &[TestResult]) -> String {
    let status = overall(results);
    results
        .iter()
        .filter(|r| r.status == status)
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn messages(results: &[TestResult]) -> String {
    results
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `"File /x is expected to exist"` / `"… is expected not to exist"` (and
/// likewise for other predicates such as "be installed").
fn expected(subject: &str, want: bool, predicate: &str) -> String {
    if want {
        format!("{subject} is expected to {predicate}")
    } else {
        format!("{subject} is expected not to {predicate}")
    }
}

/// `("Users", true)` for `all`, `("User app", false)` for one name.
fn subject_of(plural: &str, singular: &str, name: &str) -> (String, bool) {
    if name == "all" {
        (plural.to_string(), true)
    } else {
        (format!("{singular} {name}"), false)
    }
}

/// `0o640` → `"0640"`.
pub fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

/// Parse a policy's octal mode string (already schema-checked).
pub fn parse_mode(text: &str) -> u32 {
    u32::from_str_radix(text, 8).unwrap_or(0)
}

/// Show a principal as written in the policy.
fn principal_text(p: &Principal) -> String {
    match p {
        Principal::Id(i) => i.to_string(),
        Principal::Name(n) => n.clone(),
    }
}

/// Resolve ids to names through the target's own passwd/group.
#[derive(Debug)]
pub(crate) struct Names {
    users: Vec<(u32, String)>,
    groups: Vec<(u32, String)>,
    /// Why passwd could not be read, when it could not.
    users_unreadable: Option<String>,
    /// Why group could not be read, when it could not.
    groups_unreadable: Option<String>,
}

impl Names {
    fn from_facts(facts: &Facts) -> Names {
        // Absent tables are empty; unreadable ones are remembered, so that
        // a name that cannot be resolved is an error, never "nobody has it".
        let text = |p: &str| match facts.files.get(p).map(|f| f.evidence()) {
            Some(Ok(Some(c))) => (c.text().into_owned(), None),
            Some(Err(why)) => (String::new(), Some(format!("{p}: {why}"))),
            _ => (String::new(), None),
        };
        let (passwd, users_unreadable) = text(crate::facts::compile::PASSWD);
        let (group, groups_unreadable) = text(crate::facts::compile::GROUP);
        let users = crate::facts::parse::passwd(&passwd)
            .0
            .into_iter()
            .map(|e| (e.uid, e.name))
            .collect();
        let groups = crate::facts::parse::group(&group)
            .0
            .into_iter()
            .map(|e| (e.gid, e.name))
            .collect();
        Names {
            users,
            groups,
            users_unreadable,
            groups_unreadable,
        }
    }

    /// Why `p` cannot be resolved on this target, if it cannot: a name
    /// other than root while the table that would resolve it was
    /// unreadable. (uid and gid 0 are root without any table.)
    fn unresolvable(&self, p: &Principal, user: bool) -> Option<String> {
        let Principal::Name(name) = p else {
            return None;
        };
        let why = if user {
            &self.users_unreadable
        } else {
            &self.groups_unreadable
        };
        why.as_ref()
            .filter(|_| name != "root")
            .map(|w| format!("the name {name} cannot be resolved ({w})"))
    }

    /// `root (0)` style display of an id.
    fn show(&self, id: u32, user: bool) -> String {
        let table = if user { &self.users } else { &self.groups };
        match table.iter().find(|(i, _)| *i == id) {
            Some((_, n)) => format!("{n} ({id})"),
            None if id == 0 => format!("root ({id})"),
            None => id.to_string(),
        }
    }

    /// Returns true if and only if `id` is the principal `p`.
    fn is(&self, id: u32, p: &Principal, user: bool) -> bool {
        match p {
            Principal::Id(want) => id == *want,
            Principal::Name(name) => {
                let table = if user { &self.users } else { &self.groups };
                match table.iter().find(|(_, n)| n == name) {
                    Some((i, _)) => *i == id,
                    // Images without a passwd entry for root still mean uid 0.
                    None => name == "root" && id == 0,
                }
            }
        }
    }
}

/// At most `n` items of a list, with a count of the rest.
fn list_some(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

#[cfg(test)]
mod tests;
