//! What every report format implements ([`Render`]) and may read besides
//! the runs ([`Context`]); `report::ci` chooses the format, each format is
//! one file (`report::{junit, markdown, sarif, oscal}`).

use super::view::ReportRun;

/// Where a control is defined: the profile file as given and the line of
/// its `id` (SARIF results point there).
pub(crate) type Locations = std::collections::BTreeMap<String, (String, u32)>;

/// What a format may need besides the runs: where each control and
/// policy is defined (SARIF locates results there).
pub(crate) struct Context<'a> {
    /// Control id → its profile file and line.
    pub(crate) locations: &'a Locations,
    /// Policy name → its file.
    pub(crate) policy_files: &'a std::collections::BTreeMap<String, String>,
}

/// A report format: renders runs as one document.
pub(crate) trait Render {
    /// The document for `runs`.
    fn render(&self, runs: &[ReportRun], ctx: &Context<'_>) -> String;
}
