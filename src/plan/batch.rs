//! Batch layout: the waves of targets a run can scan at once under the
//! policy's limits (global concurrency, per namespace, per node).
//!
//! The runner schedules continuously rather than wave by wave, so the waves
//! are the worst-case shape of a run: they show a reviewer how many scans
//! touch a namespace or node at once, and how many rounds the run takes.

use std::collections::{HashMap, VecDeque};

use super::PlannedTarget;
use crate::policy::model::Limits;

/// Greedy first-fit waves over targets in id order. Every target lands in
/// exactly one wave; no wave exceeds any limit.
pub fn batches(targets: &[PlannedTarget], limits: &Limits) -> Vec<Vec<String>> {
    let cap = limits.concurrency.max(1) as usize;
    let per_ns = limits
        .per_namespace
        .map_or(usize::MAX, |n| n.max(1) as usize);
    let per_node = limits.per_node.map_or(usize::MAX, |n| n.max(1) as usize);
    let mut pending: VecDeque<&PlannedTarget> = targets.iter().collect();
    let mut waves = Vec::new();
    while !pending.is_empty() {
        let mut wave = Vec::new();
        let mut ns_count: HashMap<&str, usize> = HashMap::new();
        let mut node_count: HashMap<&str, usize> = HashMap::new();
        let mut deferred = VecDeque::new();
        while let Some(t) = pending.pop_front() {
            if wave.len() == cap {
                deferred.push_back(t);
                deferred.extend(pending.drain(..));
                break;
            }
            let ns_ok = t
                .namespace
                .as_deref()
                .is_none_or(|ns| ns_count.get(ns).copied().unwrap_or(0) < per_ns);
            let node_ok = t
                .node
                .as_deref()
                .is_none_or(|n| node_count.get(n).copied().unwrap_or(0) < per_node);
            if ns_ok && node_ok {
                if let Some(ns) = t.namespace.as_deref() {
                    *ns_count.entry(ns).or_default() += 1;
                }
                if let Some(n) = t.node.as_deref() {
                    *node_count.entry(n).or_default() += 1;
                }
                wave.push(t.id.clone());
            } else {
                deferred.push_back(t);
            }
        }
        waves.push(wave);
        pending = deferred;
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Approach;

    fn target(id: &str, ns: &str, node: &str) -> PlannedTarget {
        PlannedTarget {
            id: id.into(),
            approach: Approach::Api,
            namespace: Some(ns.into()),
            pod: Some(id.into()),
            container: Some("c".into()),
            node: Some(node.into()),
            ..PlannedTarget::default()
        }
    }

    #[test]
    fn every_wave_respects_every_limit() {
        let mut targets = Vec::new();
        for i in 0..40 {
            targets.push(target(
                &format!("t{i:02}"),
                ["a", "b", "c"][i % 3],
                ["n1", "n2"][i % 2],
            ));
        }
        let limits = Limits {
            concurrency: 5,
            per_namespace: Some(2),
            per_node: Some(3),
            ..Limits::default()
        };
        let waves = batches(&targets, &limits);
        let mut seen: Vec<String> = waves.iter().flatten().cloned().collect();
        seen.sort();
        assert_eq!(seen.len(), 40, "every target exactly once");
        seen.dedup();
        assert_eq!(seen.len(), 40);
        for w in &waves {
            assert!(w.len() <= 5);
            let by = |f: &dyn Fn(&PlannedTarget) -> String| {
                let mut m: HashMap<String, usize> = HashMap::new();
                for id in w {
                    let t = targets.iter().find(|t| &t.id == id).unwrap();
                    *m.entry(f(t)).or_default() += 1;
                }
                m.into_values().max().unwrap_or(0)
            };
            assert!(by(&|t| t.namespace.clone().unwrap()) <= 2);
            assert!(by(&|t| t.node.clone().unwrap()) <= 3);
        }
        // 3 namespaces x 2 = 6 > 5, so waves are full at 5 until the tail.
        assert_eq!(waves[0].len(), 5);
        assert_eq!(waves.len(), 8);
    }
}
