//! Results in the formats CI systems and assessors read, one file per
//! format behind [`Render`]: JUnit XML (`report::junit`), markdown
//! (`report::markdown`), SARIF (`report::sarif`) and OSCAL assessment
//! results (`report::oscal`). Each renders the one model of a run,
//! [`ReportRun`], which `vigil run` builds from its summary and `vigil
//! open` from a verified statement.
//!
//! These are plaintext copies written only where the user asks
//! (`--report FORMAT=PATH`); the sealed bundle stays the record.

use std::path::PathBuf;

pub(crate) use super::render::{Context, Locations, Render};

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// JUnit XML.
    Junit,
    /// Markdown.
    Markdown,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// OSCAL 1.1 assessment results (JSON).
    Oscal,
}

/// One `--report FORMAT=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The format.
    pub format: Format,
    /// Where to write it.
    pub path: PathBuf,
}

impl std::str::FromStr for Request {
    type Err = String;

    fn from_str(s: &str) -> Result<Request, String> {
        let (format, path) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: use FORMAT=PATH, e.g. junit=results.xml"))?;
        let format = match format {
            "junit" => Format::Junit,
            "markdown" | "md" => Format::Markdown,
            "sarif" => Format::Sarif,
            "oscal" => Format::Oscal,
            other => {
                return Err(format!(
                    "unknown report format `{other}`; use junit, sarif, markdown or oscal"
                ));
            }
        };
        if path.is_empty() {
            return Err(format!("`{s}`: the path is empty"));
        }
        Ok(Request {
            format,
            path: PathBuf::from(path),
        })
    }
}

use super::view::ReportRun;

impl Format {
    /// The renderer of this format.
    fn renderer(self) -> &'static dyn Render {
        match self {
            Format::Junit => &super::junit::Junit,
            Format::Markdown => &super::markdown::Markdown,
            Format::Sarif => &super::sarif::Sarif,
            Format::Oscal => &super::oscal::Oscal,
        }
    }
}

/// The locations of every control of the loaded profiles.
pub(crate) fn locations(set: &crate::policy::PolicySet) -> Locations {
    let mut out = Locations::new();
    for p in &set.profiles {
        for (i, c) in p.value.controls.iter().enumerate() {
            let line = p
                .doc
                .value_position(&format!("/controls/{i}/id"))
                .line
                .max(1);
            out.entry(c.id.clone())
                .or_insert_with(|| (p.source.path.display().to_string(), line));
        }
    }
    out
}

/// A report path refused before a run (the path is shown escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReportPathError {
    /// Reports never overwrite unless asked to.
    #[error(
        "report {0} already exists; reports never overwrite: choose another path, or pass --force to replace it"
    )]
    Exists(String),
    /// Its directory is missing.
    #[error("report {0}: its directory does not exist")]
    NoDirectory(String),
}

/// Refuse, before a run, report paths that exist (reports never overwrite)
/// or whose directory does not.
pub(crate) fn check_paths(requests: &[Request], force: bool) -> Result<(), ReportPathError> {
    for r in requests {
        let shown = crate::safeio::printable(&r.path.display().to_string()).into_owned();
        match std::fs::symlink_metadata(&r.path) {
            // --force replaces a regular file, and nothing else.
            Ok(m) if force && m.file_type().is_file() => {}
            Ok(_) => return Err(ReportPathError::Exists(shown)),
            Err(_) => {}
        }
        if let Some(dir) = r.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(ReportPathError::NoDirectory(shown));
        }
    }
    Ok(())
}

/// Write every requested report for the run summaries (mode 0600: they are
/// plaintext results).
pub(crate) fn write(
    requests: &[Request],
    runs: &[ReportRun],
    locations: &Locations,
    policy_files: &std::collections::BTreeMap<String, String>,
    force: bool,
) -> std::io::Result<()> {
    for r in requests {
        let ctx = Context {
            locations,
            policy_files,
        };
        let text = r.format.renderer().render(runs, &ctx);
        crate::safeio::write_private(&r.path, text.as_bytes(), force).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot write report {}: {}",
                    r.path.display(),
                    crate::safeio::io_reason(&e)
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_requests_parse() {
        let r: Request = "junit=out/r.xml".parse().unwrap();
        assert_eq!(
            (r.format, r.path),
            (Format::Junit, PathBuf::from("out/r.xml"))
        );
        assert_eq!("sarif=x".parse::<Request>().unwrap().format, Format::Sarif);
        assert!("html=x".parse::<Request>().is_err());
        assert!("junit".parse::<Request>().is_err());
    }
}
