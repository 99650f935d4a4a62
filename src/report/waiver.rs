//! Waivers: a control accepted as not applicable to a target until a date,
//! with a justification and an approver. An expired waiver is reported and
//! does not apply.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::model::Waiver;

/// How a waiver bears on one control of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaiverState {
    /// Why it was granted.
    pub justification: String,
    /// Who approved it.
    pub approver: String,
    /// Until when (as written in the policy).
    pub expires: String,
    /// In force (the control counts as not applicable); false when expired
    /// (the control is evaluated normally and the waiver only reported).
    pub active: bool,
}

impl WaiverState {
    /// Returns true if and only if the waiver is in force.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// The waiver (if any) for `control` on `target` at `now`. Among several,
/// an active one wins over an expired one. A waiver with `targets` applies
/// only to those target ids.
pub(crate) fn find(
    waivers: &[Waiver],
    control: &str,
    target: &str,
    now: DateTime<Utc>,
) -> Option<WaiverState> {
    let mut best: Option<WaiverState> = None;
    for w in waivers.iter().filter(|w| {
        w.control == control && (w.targets.is_empty() || w.targets.iter().any(|t| t == target))
    }) {
        // Expiry was validated when the policy loaded; an unparsable one
        // here is treated as expired (never silently in force).
        let active = crate::policy::lint::parse_expiry(&w.expires).is_ok_and(|t| t > now);
        let state = WaiverState {
            justification: w.justification.clone(),
            approver: w.approver.clone(),
            expires: w.expires.clone(),
            active,
        };
        if active || best.is_none() {
            best = Some(state);
        }
        if active {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(control: &str, expires: &str, targets: &[&str]) -> Waiver {
        Waiver {
            control: control.into(),
            expires: expires.into(),
            justification: "j".into(),
            approver: "a".into(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn active_expired_scoped() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ws = vec![
            w("A", "2027-01-01T00:00:00Z", &[]),
            w("B", "2026-11-26T11:59:59Z", &[]),
            w("C", "2030-01-01T00:00:00+02:00", &["rootfs/x"]),
        ];
        assert!(find(&ws, "A", "any", now).unwrap().is_active());
        assert!(!find(&ws, "B", "any", now).unwrap().is_active(), "expired");
        assert!(find(&ws, "C", "rootfs/x", now).unwrap().is_active());
        assert_eq!(
            find(&ws, "C", "rootfs/y", now),
            None,
            "scoped to other targets"
        );
        assert_eq!(find(&ws, "Z", "any", now), None);
        // Timezone offsets count: 00:30+01:00 is 23:30Z the day before.
        let ws = vec![w("T", "2026-11-27T00:30:00+01:00", &[])];
        assert!(
            find(&ws, "T", "x", "2026-11-26T23:29:00Z".parse().unwrap())
                .unwrap()
                .is_active()
        );
        assert!(
            !find(&ws, "T", "x", "2026-11-26T23:31:00Z".parse().unwrap())
                .unwrap()
                .is_active()
        );
        // An active waiver wins over an expired duplicate.
        let ws = vec![
            w("D", "2020-01-01T00:00:00Z", &[]),
            w("D", "2030-01-01T00:00:00Z", &[]),
        ];
        assert!(find(&ws, "D", "x", now).unwrap().is_active());
    }
}
