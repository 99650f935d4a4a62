//! `image: config` checks: how the image was built, from its configuration
//! (user, environment, healthcheck, ports, labels, age). Only image scans
//! carry that configuration; for any other target the check is an error,
//! never a pass.

use super::TestResult;
use crate::facts::{Facts, ImageFacts};
use crate::policy::model::ImageCheck;

pub(super) fn image(c: &ImageCheck, facts: &Facts) -> Vec<TestResult> {
    let Some(img) = &facts.image else {
        return vec![TestResult::error(
            "Image configuration is expected to be known".into(),
            "this target is not an image scan (image: targets or `vigil run --image`); a running container's facts do not include how its image was built",
        )];
    };
    let e = &c.expect;
    let mut out = Vec::new();
    if let Some(want) = e.non_root_user {
        let root = is_root(&img.user);
        let got = if img.user.is_empty() {
            "no USER (root)".to_string()
        } else {
            format!("USER {}", img.user)
        };
        out.push(TestResult::check(
            root != want,
            format!(
                "Image user is expected to be {}",
                if want { "non-root" } else { "root" }
            ),
            got,
        ));
    }
    if let Some(want) = e.no_secret_env {
        let got = if img.secret_env.is_empty() {
            "none".to_string()
        } else {
            // Names only: the values never left the image reader.
            img.secret_env.join(", ")
        };
        out.push(TestResult::check(
            img.secret_env.is_empty() == want,
            "Image environment is expected to carry no secrets".into(),
            got,
        ));
    }
    if let Some(want) = e.healthcheck {
        out.push(TestResult::check(
            img.healthcheck == want,
            format!(
                "Image HEALTHCHECK is expected to be {}",
                if want { "set" } else { "absent" }
            ),
            if img.healthcheck { "set" } else { "none" },
        ));
    }
    if !e.ports_not.is_empty() {
        let exposed: Vec<&String> = img
            .exposed_ports
            .iter()
            .filter(|p| e.ports_not.iter().any(|n| same_port(p, n)))
            .collect();
        out.push(TestResult::check(
            exposed.is_empty(),
            format!("Image is expected not to expose {}", e.ports_not.join(", ")),
            if exposed.is_empty() {
                format!("exposed: {}", display_list(&img.exposed_ports))
            } else {
                format!(
                    "exposed: {}",
                    exposed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    }
    for l in &e.labels {
        out.push(TestResult::check(
            img.labels.contains_key(l),
            format!("Image label {l} is expected to be set"),
            img.labels
                .get(l)
                .cloned()
                .unwrap_or_else(|| "not set".into()),
        ));
    }
    if let Some(days) = e.max_age_days {
        out.push(age(img, days));
    }
    if out.is_empty() {
        out.push(TestResult::skipped(
            "Image configuration".into(),
            "the check names no expectation",
        ));
    }
    out
}

/// `USER` as root: empty, `root`, uid 0, with or without a group.
fn is_root(user: &str) -> bool {
    let who = user.split(':').next().unwrap_or_default().trim();
    who.is_empty() || who == "root" || who.trim_start_matches('0').is_empty()
}

/// `22` matches `22/tcp` and `22/udp`; `22/tcp` only itself.
fn same_port(exposed: &str, named: &str) -> bool {
    exposed == named || (!named.contains('/') && exposed.split('/').next() == Some(named))
}

fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn age(img: &ImageFacts, days: u32) -> TestResult {
    let code = format!("Image is expected to be built within {days} days");
    let Some(created) = &img.created else {
        return TestResult::error(code, "the image config has no creation date");
    };
    match chrono::DateTime::parse_from_rfc3339(created) {
        Ok(t) => {
            let age = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_days();
            TestResult::check(
                age <= i64::from(days),
                code,
                format!("built {created} ({age} days ago)"),
            )
        }
        Err(_) => TestResult::error(
            code,
            format!("its creation date {created:?} is not RFC 3339"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::policy::model::{ImageExpect, ImageSubject};

    fn facts(user: &str) -> Facts {
        Facts {
            image: Some(ImageFacts {
                user: user.into(),
                exposed_ports: vec!["22/tcp".into(), "8080/tcp".into()],
                secret_env: vec!["DB_PASSWORD".into()],
                created: Some("2020-01-01T00:00:00Z".into()),
                ..ImageFacts::default()
            }),
            ..Facts::default()
        }
    }

    fn statuses(expect: ImageExpect, f: &Facts) -> Vec<Status> {
        image(
            &ImageCheck {
                image: ImageSubject::Config,
                expect,
            },
            f,
        )
        .into_iter()
        .map(|r| r.status)
        .collect()
    }

    #[test]
    fn each_expectation_judges_the_config() {
        for (user, root) in [
            ("", true),
            ("root", true),
            ("0", true),
            ("0:0", true),
            ("00", true),
            ("app", false),
            ("1000:1000", false),
        ] {
            let want = ImageExpect {
                non_root_user: Some(true),
                ..Default::default()
            };
            assert_eq!(
                statuses(want, &facts(user)),
                [if root { Status::Failed } else { Status::Passed }],
                "{user:?}"
            );
        }
        let f = facts("app");
        assert_eq!(
            statuses(
                ImageExpect {
                    no_secret_env: Some(true),
                    ..Default::default()
                },
                &f
            ),
            [Status::Failed]
        );
        assert_eq!(
            statuses(
                ImageExpect {
                    ports_not: vec!["22".into()],
                    ..Default::default()
                },
                &f
            ),
            [Status::Failed]
        );
        assert_eq!(
            statuses(
                ImageExpect {
                    ports_not: vec!["22/udp".into()],
                    ..Default::default()
                },
                &f
            ),
            [Status::Passed]
        );
        assert_eq!(
            statuses(
                ImageExpect {
                    healthcheck: Some(true),
                    ..Default::default()
                },
                &f
            ),
            [Status::Failed]
        );
        assert_eq!(
            statuses(
                ImageExpect {
                    labels: vec!["a".into()],
                    ..Default::default()
                },
                &f
            ),
            [Status::Failed]
        );
        assert_eq!(
            statuses(
                ImageExpect {
                    max_age_days: Some(365),
                    ..Default::default()
                },
                &f
            ),
            [Status::Failed]
        );
        let msg = image(
            &ImageCheck {
                image: ImageSubject::Config,
                expect: ImageExpect {
                    no_secret_env: Some(true),
                    ..Default::default()
                },
            },
            &f,
        );
        assert!(msg[0].message.contains("DB_PASSWORD"));
    }

    #[test]
    fn a_target_without_image_facts_is_an_error_never_a_pass() {
        let r = image(
            &ImageCheck {
                image: ImageSubject::Config,
                expect: ImageExpect {
                    non_root_user: Some(true),
                    ..Default::default()
                },
            },
            &Facts::default(),
        );
        assert_eq!(r[0].status, Status::Error);
    }
}
