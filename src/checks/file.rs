//! `file:` and `directory:` checks.

use sha2::{Digest, Sha256};

use super::{
    Context, Status, TestResult, expected, list_some, octal, parse_mode, principal_text, regex,
};
use crate::facts::{Facts, Kind, StatFact};
use crate::policy::model::{DirectoryCheck, FileCheck, FileType};

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::Char => "char",
        FileType::Block => "block",
    }
}

pub(super) fn file(c: &FileCheck, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    let path = &c.file;
    let e = &c.expect;
    let subject = format!("File {path}");
    let Some(fact) = facts.files.get(path) else {
        return vec![TestResult::error(
            format!("{subject} is inspected"),
            "the collector returned no fact for it",
        )];
    };
    if let Some(why) = &fact.error {
        return vec![TestResult::error(
            format!("{subject} is inspected"),
            format!("it could not be inspected: {why}"),
        )];
    }
    let mut out = Vec::new();
    let exists = fact.exists();
    if let Some(want) = e.exists {
        let desc = expected(&subject, want, "exist");
        let got = if exists {
            "it exists"
        } else if fact.lstat.is_some() {
            "a dangling symlink"
        } else {
            "no such file"
        };
        out.push(TestResult::check(exists == want, desc, got));
        if !want {
            return out;
        }
    }
    let names = ctx.names(facts);
    let Some(st) = fact.stat else {
        // Every other expectation needs the file.
        let wanted = [
            e.file_type.is_some(),
            e.mode.is_some(),
            e.mode_max.is_some(),
            e.owner.is_some(),
            e.group.is_some(),
            e.content_matches.is_some() || e.content_not_matches.is_some() || e.sha256.is_some(),
        ];
        if wanted.iter().any(|w| *w) && e.exists != Some(true) {
            out.push(TestResult::check(
                false,
                format!("{subject} is expected to exist"),
                "no such file",
            ));
        }
        return out;
    };
    if let Some(t) = e.file_type {
        let got = if t == FileType::Symlink {
            fact.lstat.map_or(Kind::Unknown, |l| l.kind)
        } else {
            st.kind
        };
        out.push(TestResult::check(
            got.as_str() == kind_name(t),
            format!("{subject} is expected to be a {}", kind_name(t)),
            got.as_str(),
        ));
    }
    if let Some(m) = &e.mode {
        let want = parse_mode(m);
        out.push(TestResult::check(
            st.mode == want,
            format!("{subject} mode is expected to be {}", octal(want)),
            octal(st.mode),
        ));
    }
    if let Some(m) = &e.mode_max {
        let max = parse_mode(m);
        out.push(TestResult::check(
            st.mode & !max == 0,
            format!("{subject} mode is expected to be at most {}", octal(max)),
            octal(st.mode),
        ));
    }
    for (p, id, user, what) in [
        (&e.owner, st.uid, true, "owner"),
        (&e.group, st.gid, false, "group"),
    ] {
        let Some(p) = p else { continue };
        let desc = format!("{subject} {what} is expected to be {}", principal_text(p));
        match names.unresolvable(p, user) {
            Some(why) => out.push(TestResult::error(desc, why)),
            None => out.push(TestResult::check(
                names.is(id, p, user),
                desc,
                names.show(id, user),
            )),
        }
    }
    content(&subject, fact, st, e, &mut out);
    out
}

fn content(
    subject: &str,
    fact: &crate::facts::FileFact,
    st: StatFact,
    e: &crate::policy::model::FileExpect,
    out: &mut Vec<TestResult>,
) {
    let wants_content =
        e.content_matches.is_some() || e.content_not_matches.is_some() || e.sha256.is_some();
    if !wants_content {
        return;
    }
    if st.kind != Kind::File {
        out.push(TestResult::check(
            false,
            format!("{subject} content is inspected"),
            format!("a {}, not a regular file", st.kind.as_str()),
        ));
        return;
    }
    let Some(body) = &fact.content else {
        out.push(TestResult::error(
            format!("{subject} content is inspected"),
            "its content was not collected",
        ));
        return;
    };
    let text = body.text();
    let cut = if fact.truncated {
        format!(" (only the first {} bytes were read)", text.len())
    } else {
        String::new()
    };
    if let Some(re) = &e.content_matches {
        let desc = format!("{subject} content is expected to match /{re}/");
        match regex(re) {
            Ok(r) if r.is_match(&text) => out.push(TestResult::new(
                Status::Passed,
                desc.clone(),
                format!("{desc}, and it does"),
            )),
            Ok(_) if fact.truncated => out.push(TestResult::error(desc, format!("no match{cut}"))),
            Ok(_) => out.push(TestResult::check(false, desc, "no match")),
            Err(err) => out.push(TestResult::error(desc, err.to_string())),
        }
    }
    if let Some(re) = &e.content_not_matches {
        let desc = format!("{subject} content is expected not to match /{re}/");
        match regex(re) {
            Ok(r) => match r.find(&text) {
                Some(m) => {
                    let line = text[..m.start()].matches('\n').count() + 1;
                    out.push(TestResult::check(
                        false,
                        desc,
                        format!("a match on line {line}"),
                    ));
                }
                None if fact.truncated => out.push(TestResult::error(
                    desc,
                    format!("no match in what was read{cut}"),
                )),
                None => out.push(TestResult::check(true, desc, "no match")),
            },
            Err(err) => out.push(TestResult::error(desc, err.to_string())),
        }
    }
    if let Some(want) = &e.sha256 {
        let desc = format!("{subject} sha256 is expected to be {want}");
        if fact.truncated {
            out.push(TestResult::error(
                desc,
                format!("the file is larger than the read cap{cut}"),
            ));
        } else {
            let got = crate::encoding::hex(&Sha256::digest(body.bytes()));
            out.push(TestResult::check(&got == want, desc, got));
        }
    }
}

pub(super) fn directory(c: &DirectoryCheck, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    let subject = format!("Directory {}", c.directory);
    let e = &c.expect;
    let Some(walk) = facts.walks.get(&c.directory) else {
        return vec![TestResult::error(
            format!("{subject} is walked"),
            "the collector returned no walk for it",
        )];
    };
    if walk.missing {
        return vec![TestResult::skipped(
            format!("{subject} is walked"),
            format!("{subject} does not exist; nothing to check"),
        )];
    }
    let names = ctx.names(facts);
    let mut out = Vec::new();
    let files = walk
        .entries
        .iter()
        .filter(|en| en.stat.kind != Kind::Symlink);
    // An owner name the target's passwd cannot resolve: an error, pushed
    // after the rules.
    let owner_unresolved = e.owner.as_ref().and_then(|p| {
        names.unresolvable(p, true).map(|why| {
            TestResult::error(
                format!(
                    "{subject} entries are expected to be owned by {}",
                    principal_text(p)
                ),
                why,
            )
        })
    });
    // Entries that vanished while the root was walked are not evidence of
    // anything; the message says they were skipped.
    let vanished = if walk.vanished.is_empty() {
        String::new()
    } else {
        format!(
            " ({} vanished during the walk and were skipped: {})",
            walk.vanished.len(),
            list_some(&walk.vanished, 3)
        )
    };
    // An incomplete walk is no evidence that nothing is wrong: a rule it
    // found nothing against gives no result (the walk's error stands for
    // the control), while what it did find still fails.
    let incomplete = walk.truncated || !walk.errors.is_empty();
    let mut rule = |desc: String, bad: Vec<String>| {
        let ok = bad.is_empty();
        if ok && incomplete {
            return;
        }
        let got = if ok {
            format!("none in {} entries{vanished}", walk.visited)
        } else {
            format!("{}: {}{vanished}", bad.len(), list_some(&bad, 10))
        };
        out.push(TestResult::check(ok, desc, got));
    };
    if e.no_world_writable {
        // World-writable directories with the sticky bit (/tmp) are the norm.
        let bad = files
            .clone()
            .filter(|en| {
                en.stat.mode & 0o002 != 0
                    && !(en.stat.kind == Kind::Directory && en.stat.mode & 0o1000 != 0)
            })
            .map(|en| format!("{} ({})", en.path, octal(en.stat.mode)))
            .collect();
        rule(
            format!("{subject} is expected to contain no world-writable files"),
            bad,
        );
    }
    if e.no_setuid {
        let bad = files
            .clone()
            .filter(|en| {
                en.stat.kind == Kind::File
                    && en.stat.mode & 0o4000 != 0
                    && !e.allowed_setuid.contains(&en.path)
            })
            .map(|en| en.path.clone())
            .collect();
        rule(
            format!("{subject} is expected to contain no unexpected setuid files"),
            bad,
        );
    }
    if e.no_setgid {
        let bad = files
            .clone()
            .filter(|en| {
                en.stat.kind == Kind::File
                    && en.stat.mode & 0o2000 != 0
                    && !e.allowed_setuid.contains(&en.path)
            })
            .map(|en| en.path.clone())
            .collect();
        rule(
            format!("{subject} is expected to contain no unexpected setgid files"),
            bad,
        );
    }
    if let Some(p) = &e.owner
        && owner_unresolved.is_none()
    {
        let bad = files
            .clone()
            .filter(|en| !names.is(en.stat.uid, p, true))
            .map(|en| format!("{} ({})", en.path, names.show(en.stat.uid, true)))
            .collect();
        rule(
            format!(
                "{subject} entries are expected to be owned by {}",
                principal_text(p)
            ),
            bad,
        );
    }
    if let Some(m) = &e.mode_max {
        let max = parse_mode(m);
        let bad = files
            .clone()
            .filter(|en| en.stat.mode & !max != 0)
            .map(|en| format!("{} ({})", en.path, octal(en.stat.mode)))
            .collect();
        rule(
            format!(
                "{subject} entries are expected to have mode at most {}",
                octal(max)
            ),
            bad,
        );
    }
    out.extend(owner_unresolved);
    if walk.truncated {
        out.push(TestResult::error(
            format!("{subject} is walked completely"),
            format!(
                "the walk stopped after {} entries (raise `limit`)",
                walk.visited
            ),
        ));
    }
    if !walk.errors.is_empty() {
        let errs: Vec<String> = walk
            .errors
            .iter()
            .map(|(p, r)| format!("{p}: {r}"))
            .collect();
        out.push(TestResult::error(
            format!("{subject} is walked completely"),
            format!(
                "{} entries could not be inspected: {}",
                errs.len(),
                list_some(&errs, 5)
            ),
        ));
    }
    out
}
