//! Evaluation tests: every control type, every status, on hand-built facts.

use std::collections::BTreeMap;

use super::*;
use crate::facts::compile::{APK_DB, DPKG_STATUS, DPKG_STATUS_D, GROUP, PASSWD, SHADOW};
use crate::facts::{
    CommandFact, Content, FileFact, Kind, ProcessFact, StatFact, WalkEntry, WalkFact,
};

fn stat(kind: Kind, mode: u32, uid: u32, gid: u32) -> StatFact {
    StatFact {
        kind,
        mode,
        uid,
        gid,
        size: 10,
    }
}

fn file(mode: u32, uid: u32, gid: u32, content: Option<&str>) -> FileFact {
    let st = stat(Kind::File, mode, uid, gid);
    FileFact {
        lstat: Some(st),
        stat: Some(st),
        content: content.map(|c| Content::Text(c.into())),
        ..FileFact::default()
    }
}

fn facts() -> Facts {
    let mut f = Facts::default();
    f.files.insert(PASSWD.into(), file(0o644, 0, 0, Some("root:x:0:0:root:/root:/bin/bash\nsync:x:4:65534:sync:/bin:/bin/sync\napp:x:1000:1000::/home/app:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n")));
    f.files.insert(
        SHADOW.into(),
        file(0o640, 0, 42, Some("root:*:1::::::\napp:!:1::::::\n")),
    );
    f.files.insert(
        GROUP.into(),
        file(
            0o644,
            0,
            0,
            Some("root:x:0:\nshadow:x:42:\napp:x:1000:\nwheel:x:10:app\n"),
        ),
    );
    f.files.insert(
        "/etc/shadow-link".into(),
        FileFact {
            lstat: Some(stat(Kind::Symlink, 0o777, 0, 0)),
            stat: Some(stat(Kind::File, 0o640, 0, 42)),
            link_target: Some("/etc/shadow".into()),
            ..FileFact::default()
        },
    );
    f.files.insert(
        "/etc/motd".into(),
        file(0o644, 1000, 1000, Some("Welcome\nAuthorized use only\n")),
    );
    f.files.insert(
        "/etc/big".into(),
        FileFact {
            truncated: true,
            ..file(0o644, 0, 0, Some("aaaa"))
        },
    );
    f.files.insert("/missing".into(), FileFact::default());
    f.files.insert(
        "/denied".into(),
        FileFact {
            error: Some("permission denied".into()),
            ..FileFact::default()
        },
    );
    f.files.insert(
        "/etc/login.defs".into(),
        file(0o644, 0, 0, Some("PASS_MAX_DAYS 90\nUMASK 027\n# c\n")),
    );
    f.files.insert(
        "/etc/os-release".into(),
        file(
            0o644,
            0,
            0,
            Some("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n"),
        ),
    );
    f.files.insert(DPKG_STATUS.into(), file(0o644, 0, 0, Some("Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\n\nPackage: telnet\nStatus: deinstall ok config-files\nVersion: 0.17\n")));
    let mut statusd = BTreeMap::new();
    statusd.insert(
        "tzdata".to_string(),
        file(
            0o644,
            0,
            0,
            Some("Package: tzdata\nVersion: 2024a-0+deb12u1\n"),
        ),
    );
    f.dirs.insert(DPKG_STATUS_D.into(), statusd);
    f.walks.insert(
        "/usr".into(),
        WalkFact {
            entries: vec![
                WalkEntry {
                    path: "/usr/bin/passwd".into(),
                    stat: stat(Kind::File, 0o4755, 0, 0),
                },
                WalkEntry {
                    path: "/usr/bin/evil".into(),
                    stat: stat(Kind::File, 0o4755, 0, 0),
                },
                WalkEntry {
                    path: "/usr/tmp".into(),
                    stat: stat(Kind::Directory, 0o1777, 0, 0),
                },
                WalkEntry {
                    path: "/usr/share/x".into(),
                    stat: stat(Kind::File, 0o666, 1000, 0),
                },
            ],
            visited: 40,
            ..WalkFact::default()
        },
    );
    f.walks.insert(
        "/opt".into(),
        WalkFact {
            missing: true,
            ..WalkFact::default()
        },
    );
    f.walks.insert(
        "/big".into(),
        WalkFact {
            truncated: true,
            visited: 5,
            ..WalkFact::default()
        },
    );
    f
}

fn ctx() -> Context<'static> {
    Context::new(Approach::Local)
}

/// Evaluate a check written as YAML and return the statuses.
fn eval_on(f: &Facts, check: &str) -> Vec<(Status, String)> {
    let value = crate::policy::yaml::parse_documents(check)
        .unwrap()
        .remove(0)
        .value;
    let check: Check = serde_json::from_value(value).unwrap();
    evaluate_check(&check, f, &ctx())
        .into_iter()
        .map(|r| (r.status, r.message))
        .collect()
}

fn statuses(check: &str) -> Vec<Status> {
    eval_on(&facts(), check)
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

use Status::{Error, Failed, Passed, Skipped};

#[test]
fn file_expectations() {
    assert_eq!(
        statuses(
            "{file: /etc/shadow, expect: {exists: true, type: file, mode: '0640', mode_max: '0640', owner: root, group: shadow}}"
        ),
        vec![Passed; 6]
    );
    assert_eq!(
        statuses("{file: /etc/shadow, expect: {mode_max: '0600', owner: 1000, group: 0}}"),
        vec![Failed; 3]
    );
    assert_eq!(
        statuses("{file: /etc/shadow-link, expect: {type: symlink, mode: '0640'}}"),
        vec![Passed, Passed],
        "mode follows the link"
    );
    assert_eq!(
        statuses(
            "{file: /etc/motd, expect: {owner: app, content_matches: 'Authorized', content_not_matches: 'password'}}"
        ),
        vec![Passed; 3]
    );
    assert_eq!(
        statuses(
            "{file: /etc/motd, expect: {content_matches: 'nope', content_not_matches: 'Welcome'}}"
        ),
        vec![Failed, Failed]
    );
    let sha = crate::encoding::hex(&sha2::Sha256::digest(b"Welcome\nAuthorized use only\n"));
    assert_eq!(
        statuses(&format!("{{file: /etc/motd, expect: {{sha256: '{sha}'}}}}")),
        vec![Passed]
    );
    assert_eq!(
        statuses(&format!(
            "{{file: /etc/motd, expect: {{sha256: '{}'}}}}",
            "0".repeat(64)
        )),
        vec![Failed]
    );
    assert_eq!(
        statuses("{file: /missing, expect: {exists: false}}"),
        vec![Passed]
    );
    assert_eq!(
        statuses("{file: /missing, expect: {exists: true, mode_max: '0644'}}"),
        vec![Failed]
    );
    assert_eq!(
        statuses("{file: /missing, expect: {mode_max: '0644'}}"),
        vec![Failed],
        "a missing file fails its expectations"
    );
    assert_eq!(
        statuses("{file: /denied, expect: {exists: false}}"),
        vec![Error],
        "permission denied is an error, not absence"
    );
    assert_eq!(
        statuses(
            "{file: /etc/big, expect: {sha256: '0000000000000000000000000000000000000000000000000000000000000000'}}"
        ),
        vec![Error],
        "truncated content cannot be hashed"
    );
    assert_eq!(
        statuses("{file: /etc/big, expect: {content_matches: aaaa}}"),
        vec![Passed],
        "a match in what was read counts"
    );
    assert_eq!(
        statuses("{file: /etc/big, expect: {content_not_matches: zzz}}"),
        vec![Error],
        "absence cannot be proven past the cap"
    );
    let msgs = eval_on(&facts(), "{file: /etc/motd, expect: {mode_max: '0600'}}");
    assert_eq!(
        msgs[0].1,
        "File /etc/motd mode is expected to be at most 0600, got 0644"
    );
}

use sha2::Digest as _;

#[test]
fn directory_walks() {
    let r = eval_on(
        &facts(),
        "{directory: /usr, expect: {no_world_writable: true, no_setuid: true, allowed_setuid: [/usr/bin/passwd], owner: root, mode_max: '0755'}}",
    );
    let st: Vec<Status> = r.iter().map(|x| x.0).collect();
    assert_eq!(st, vec![Failed, Failed, Failed, Failed]);
    assert!(
        r[0].1.contains("/usr/share/x (0666)") && !r[0].1.contains("/usr/tmp"),
        "sticky dirs are fine: {}",
        r[0].1
    );
    assert!(
        r[1].1.contains("/usr/bin/evil") && !r[1].1.contains("passwd"),
        "{}",
        r[1].1
    );
    assert_eq!(
        statuses(
            "{directory: /usr, expect: {no_setuid: true, allowed_setuid: [/usr/bin/passwd, /usr/bin/evil]}}"
        ),
        vec![Passed]
    );
    assert_eq!(
        statuses("{directory: /opt, expect: {no_setuid: true}}"),
        vec![Skipped]
    );
    assert_eq!(
        statuses("{directory: /big, expect: {no_setuid: true}}"),
        vec![Error],
        "a truncated walk is an error, and no pass beside it"
    );
}

#[test]
fn packages_dpkg_status_d_and_apk() {
    assert_eq!(
        statuses("{package: bash, expect: {installed: true, version: '>= 5.2.15-1'}}"),
        vec![Passed, Passed]
    );
    assert_eq!(
        statuses("{package: bash, expect: {version: '<< 5.2.15-2'}}"),
        vec![Failed]
    );
    assert_eq!(
        statuses("{package: telnet, expect: {installed: false}}"),
        vec![Passed],
        "config-files only is not installed"
    );
    assert_eq!(
        statuses("{package: tzdata, expect: {installed: true, version: '>= 2023c'}}"),
        vec![Passed, Passed],
        "status.d"
    );
    assert_eq!(
        statuses("{package: nginx, expect: {installed: true}}"),
        vec![Failed]
    );
    assert_eq!(
        statuses("{package: bash, manager: apk, expect: {installed: true}}"),
        vec![Skipped],
        "no apk database"
    );
    let mut f = facts();
    f.files.insert(
        APK_DB.into(),
        file(
            0o644,
            0,
            0,
            Some("P:busybox\nV:1.36.1-r29\n\nP:musl\nV:1.2.5-r0\n"),
        ),
    );
    let st: Vec<Status> = eval_on(
        &f,
        "{package: busybox, manager: apk, expect: {installed: true, version: '>= 1.36.1-r5'}}",
    )
    .into_iter()
    .map(|x| x.0)
    .collect();
    assert_eq!(st, vec![Passed, Passed], "apk ordering: r29 > r5");
    let mut empty = Facts::default();
    empty.files.insert(DPKG_STATUS.into(), FileFact::default());
    let r = eval_on(&empty, "{package: telnet, expect: {installed: false}}");
    assert_eq!(r[0].0, Skipped, "no package database at all: cannot tell");
}

#[test]
fn users_and_groups() {
    assert_eq!(
        statuses(
            "{users: all, expect: {uid0_only_root: true, no_empty_passwords: true, unique_uids: true, unique_names: true, shells_allowed: [/bin/bash, /usr/sbin/nologin]}}"
        ),
        vec![Passed; 5]
    );
    assert_eq!(
        statuses("{users: app, expect: {exists: true, uid: 1000, shell: /bin/bash}}"),
        vec![Passed; 3]
    );
    assert_eq!(
        statuses("{users: ghost, expect: {exists: true}}"),
        vec![Failed]
    );
    assert_eq!(
        statuses("{users: ghost, expect: {exists: false}}"),
        vec![Passed]
    );
    assert_eq!(
        statuses("{users: all, expect: {shells_allowed: [/usr/sbin/nologin]}}"),
        vec![Failed],
        "root and app use bash; sync (uid 4) is a system account"
    );
    let mut f = facts();
    f.files.insert(PASSWD.into(), file(0o644, 0, 0, Some("root:x:0:0::/:/bin/sh\ntoor:x:0:0::/:/bin/sh\nbob::1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n")));
    assert_eq!(
        eval_on(&f, "{users: all, expect: {uid0_only_root: true, no_empty_passwords: true, unique_uids: true, unique_names: true}}").into_iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![Failed; 4]
    );
    assert_eq!(
        statuses("{groups: all, expect: {unique_gids: true, unique_names: true}}"),
        vec![Passed, Passed]
    );
    assert_eq!(
        statuses("{groups: shadow, expect: {exists: true, gid: 42, members_allowed: []}}"),
        vec![Passed; 3]
    );
    assert_eq!(
        statuses("{groups: wheel, expect: {members_allowed: []}}"),
        vec![Failed]
    );
    let mut denied = facts();
    denied.files.insert(
        SHADOW.into(),
        FileFact {
            error: Some("permission denied".into()),
            ..FileFact::default()
        },
    );
    assert_eq!(
        eval_on(&denied, "{users: all, expect: {no_empty_passwords: true}}")[0].0,
        Error
    );
}

#[test]
fn os_and_config() {
    assert_eq!(
        statuses("{os: release, expect: {id: [ubuntu], family: [debian], version: '>= 20.04'}}"),
        vec![Passed; 3]
    );
    assert_eq!(
        statuses("{os: release, expect: {id: [alpine], version: '>= 24.04'}}"),
        vec![Failed, Failed]
    );
    assert_eq!(
        statuses(
            "{config: /etc/login.defs, expect: {PASS_MAX_DAYS: {max: 90, min: 1}, UMASK: {equals: '027'}, ENCRYPT_METHOD: {absent: true}}}"
        ),
        vec![Passed; 4]
    );
    assert_eq!(
        statuses(
            "{config: /etc/login.defs, expect: {PASS_MAX_DAYS: {max: 30}, UMASK: {matches: '^077$'}, PASS_MIN_DAYS: {min: 1}}}"
        ),
        vec![Failed; 3]
    );
    assert_eq!(
        statuses("{config: /etc/login.defs, expect: {PASS_MIN_DAYS: {default: '1', min: 1}}}"),
        vec![Passed],
        "compiled-in default"
    );
    assert_eq!(
        statuses(
            "{config: /etc/login.defs, ignore_case: true, expect: {pass_max_days: {equals: '90'}}}"
        ),
        vec![Passed]
    );
    assert_eq!(
        statuses("{config: /missing, expect: {A: {equals: b}}}"),
        vec![Failed]
    );
    assert_eq!(
        statuses("{config: /denied, expect: {A: {equals: b}}}"),
        vec![Error]
    );
}

#[test]
fn processes_and_commands_depend_on_the_approach() {
    let r = eval_on(&facts(), "{process: nginx, expect: {running: true}}");
    assert_eq!(r[0].0, Skipped);
    assert!(
        r[0].1.contains("local approach cannot see processes"),
        "{}",
        r[0].1
    );
    let r = eval_on(&facts(), "{command: 'nginx -t', expect: {exit_status: 0}}");
    assert_eq!(r[0].0, Skipped);
    assert!(r[0].1.contains("cannot run commands"), "{}", r[0].1);
    let mut f = facts();
    f.processes = Some(vec![
        ProcessFact {
            pid: 1,
            uid: 0,
            cmdline: "nginx: master process".into(),
        },
        ProcessFact {
            pid: 7,
            uid: 1000,
            cmdline: "nginx: worker".into(),
        },
    ]);
    let mut cmds = BTreeMap::new();
    cmds.insert(
        "nginx -t".to_string(),
        CommandFact {
            exit_status: 0,
            stdout: "syntax is ok".into(),
        },
    );
    f.commands = Some(cmds);
    let st = |c: &str| eval_on(&f, c).into_iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(
        st("{process: '^nginx', expect: {running: true, not_user: root}}"),
        vec![Passed, Failed]
    );
    assert_eq!(st("{process: 'worker', expect: {user: app}}"), vec![Passed]);
    assert_eq!(
        st("{process: sshd, expect: {running: false}}"),
        vec![Passed]
    );
    assert_eq!(
        st(
            "{command: 'nginx -t', expect: {exit_status: 0, stdout_matches: ok, stdout_not_matches: error}}"
        ),
        vec![Passed; 3]
    );
    assert_eq!(
        st("{command: 'nginx -t', expect: {exit_status: 1}}"),
        vec![Failed]
    );
}

#[test]
fn combinators() {
    assert_eq!(
        statuses(
            "{all: [{file: /etc/motd, expect: {exists: true}}, {file: /missing, expect: {exists: true}}]}"
        ),
        vec![Passed, Failed]
    );
    assert_eq!(
        statuses(
            "{any: [{file: /missing, expect: {exists: true}}, {file: /etc/motd, expect: {exists: true}}]}"
        ),
        vec![Passed]
    );
    assert_eq!(
        statuses(
            "{any: [{file: /missing, expect: {exists: true}}, {file: /denied, expect: {exists: true}}]}"
        ),
        vec![Error]
    );
    assert_eq!(
        statuses("{any: [{command: x}, {process: yy}]}"),
        vec![Skipped]
    );
    assert_eq!(
        statuses(
            "{none: [{package: telnet, expect: {installed: true}}, {file: /missing, expect: {exists: true}}]}"
        ),
        vec![Passed]
    );
    let r = eval_on(
        &facts(),
        "{none: [{package: bash, expect: {installed: true}}]}",
    );
    assert_eq!(r[0].0, Failed);
    assert!(
        r[0].1
            .contains("Package bash is expected to be installed, got installed 5.2.15-2 (dpkg)"),
        "{}",
        r[0].1
    );
    assert_eq!(
        statuses(
            "{none: [{all: [{file: /etc/motd, expect: {exists: true}}, {file: /missing, expect: {exists: true}}]}]}"
        ),
        vec![Passed],
        "nested"
    );
}

#[test]
fn overall_status_order() {
    let r = |s| TestResult {
        location: None,
        not_applicable: false,
        status: s,
        code_desc: String::new(),
        message: String::new(),
    };
    assert_eq!(overall(&[r(Passed), r(Skipped)]), Passed);
    assert_eq!(overall(&[r(Passed), r(Failed)]), Failed);
    assert_eq!(overall(&[r(Failed), r(Error)]), Error);
    assert_eq!(overall(&[r(Skipped)]), Skipped);
}

/// A failed `any` says what decided each alternative: the parts that
/// failed, never the parts that held ("owner … got root" is no reason).
#[test]
fn a_failed_any_names_only_the_deciding_clauses() {
    let mut f = facts();
    f.files
        .insert(SHADOW.into(), file(0o644, 0, 42, Some("root:*:1::::::\n")));
    let r = eval_on(
        &f,
        "{any: [{file: /etc/shadow, expect: {exists: false}}, {file: /etc/shadow, expect: {owner: root, mode_max: '0640'}}]}",
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, Failed);
    let msg = &r[0].1;
    assert!(msg.starts_with("none satisfied: "), "{msg}");
    assert!(msg.contains("0644"), "the deciding mode is named: {msg}");
    assert!(
        !msg.contains("got root"),
        "the owner held and is no reason: {msg}"
    );
}
