//! Compiling controls into one [`FactRequest`]: the union of everything the
//! controls of a target's profiles will look at.

use crate::policy::model::{Check, Control, PackageManager, Principal};

use super::{DEFAULT_WALK_DEPTH, DEFAULT_WALK_LIMIT, FactRequest, WalkRequest};

/// Account database paths.
pub const PASSWD: &str = "/etc/passwd";
/// Group database.
pub const GROUP: &str = "/etc/group";
/// Password hashes.
pub const SHADOW: &str = "/etc/shadow";
/// os-release, in order of precedence.
pub const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// dpkg's database.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Distroless images' per-package dpkg records.
pub const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d";
/// apk's database.
pub const APK_DB: &str = "/lib/apk/db/installed";

/// Build the request for a set of controls.
pub fn compile<'a>(
    controls: impl IntoIterator<Item = &'a Control>,
    max_file_bytes: u64,
) -> FactRequest {
    let mut req = FactRequest {
        max_file_bytes,
        ..FactRequest::default()
    };
    for c in controls {
        add(&c.check, &mut req);
    }
    req
}

fn names(p: &Option<Principal>, passwd: bool, req: &mut FactRequest) {
    if let Some(Principal::Name(_)) = p {
        req.read
            .insert(if passwd { PASSWD } else { GROUP }.to_string());
    }
}

fn add(check: &Check, req: &mut FactRequest) {
    match check {
        Check::File(f) => {
            req.stat.insert(f.file.clone());
            let e = &f.expect;
            if e.content_matches.is_some() || e.content_not_matches.is_some() || e.sha256.is_some()
            {
                req.read.insert(f.file.clone());
            }
            names(&e.owner, true, req);
            names(&e.group, false, req);
        }
        Check::Directory(d) => {
            let e = &d.expect;
            req.walks.insert(WalkRequest {
                path: d.directory.clone(),
                depth: d.depth.unwrap_or(DEFAULT_WALK_DEPTH),
                limit: d.limit.unwrap_or(DEFAULT_WALK_LIMIT),
                all: e.owner.is_some() || e.mode_max.is_some(),
            });
            names(&e.owner, true, req);
        }
        Check::Package(p) => {
            if matches!(p.manager, PackageManager::Auto | PackageManager::Dpkg) {
                req.read.insert(DPKG_STATUS.into());
                req.read_dirs.insert(DPKG_STATUS_D.into());
            }
            if matches!(p.manager, PackageManager::Auto | PackageManager::Apk) {
                req.read.insert(APK_DB.into());
            }
        }
        Check::Users(_) => {
            req.read.insert(PASSWD.into());
            req.read.insert(SHADOW.into());
        }
        Check::Groups(_) => {
            req.read.insert(GROUP.into());
        }
        // Image facts come with every image scan; nothing to request.
        Check::Image(_) | Check::PodSecurity(_) | Check::Workload(_) => {}
        Check::Os(_) => {
            for p in OS_RELEASE {
                req.read.insert(p.into());
            }
        }
        Check::Config(c) => {
            req.read.insert(c.config.clone());
        }
        Check::Process(p) => {
            req.processes = true;
            names(&p.expect.user, true, req);
            names(&p.expect.not_user, true, req);
        }
        Check::Command(c) => {
            req.commands.insert(c.command.clone());
        }
        Check::All(a) => a.all.iter().for_each(|c| add(c, req)),
        Check::Any(a) => a.any.iter().for_each(|c| add(c, req)),
        Check::None(a) => a.none.iter().for_each(|c| add(c, req)),
    }
}
