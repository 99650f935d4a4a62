//! Admission of targets to scan under every limit at once: the global
//! concurrency, and at most `perNamespace` scans in
//! one namespace and `perNode` on one node at any moment.
//!
//! Workers ask for the next target; they get the first pending one whose
//! namespace and node have room, or wait until a scan ends and frees some.
//! The pending order is the plan's batch order, which already interleaves
//! namespaces and nodes, so a worker rarely waits while work it could do
//! sits further down the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};

use crate::plan::PlannedTarget;

/// Shared by the workers of one run.
pub(crate) struct Admission<'a> {
    targets: &'a [PlannedTarget],
    per_namespace: Option<u32>,
    per_node: Option<u32>,
    at_most: Option<u32>,
    state: Mutex<State>,
    freed: Condvar,
}

/// What [`Admission::try_next`] says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Scan target `i`.
    Scan(usize),
    /// Every pending target is at a cap until a scan ends.
    Wait,
    /// Nothing is left to admit.
    Finished,
}

#[derive(Default)]
struct State {
    pending: VecDeque<usize>,
    running: u32,
    namespaces: HashMap<String, u32>,
    nodes: HashMap<String, u32>,
}

impl<'a> Admission<'a> {
    /// Admit `targets` in `order` (indices into `targets`; targets not in
    /// `order` are appended in their own order).
    pub(crate) fn new(
        targets: &'a [PlannedTarget],
        order: &[usize],
        per_namespace: Option<u32>,
        per_node: Option<u32>,
    ) -> Admission<'a> {
        let mut seen = vec![false; targets.len()];
        let mut pending = VecDeque::with_capacity(targets.len());
        for i in order.iter().copied().chain(0..targets.len()) {
            if i < targets.len() && !seen[i] {
                seen[i] = true;
                pending.push_back(i);
            }
        }
        Admission {
            targets,
            per_namespace: per_namespace.filter(|&n| n > 0),
            per_node: per_node.filter(|&n| n > 0),
            at_most: None,
            state: Mutex::new(State {
                pending,
                ..State::default()
            }),
            freed: Condvar::new(),
        }
    }

    /// Admit at most `n` targets at once (the policy's `concurrency`,
    /// when there are more workers than that).
    pub(crate) fn at_most(self, n: u32) -> Admission<'a> {
        Admission {
            at_most: Some(n.max(1)),
            ..self
        }
    }

    fn fits(&self, st: &State, t: &PlannedTarget) -> bool {
        let under =
            |map: &HashMap<String, u32>, key: &Option<String>, cap: Option<u32>| match (key, cap) {
                (Some(k), Some(cap)) => map.get(k).copied().unwrap_or(0) < cap,
                _ => true,
            };
        under(&st.namespaces, &t.namespace, self.per_namespace)
            && under(&st.nodes, &t.node, self.per_node)
    }

    /// The next target this worker may scan, waiting while every pending
    /// one is at a cap; `None` when nothing is left.
    pub(crate) fn next(&self) -> Option<usize> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match self.admit(&mut st) {
                Turn::Scan(i) => return Some(i),
                Turn::Finished => return None,
                Turn::Wait => st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// [`Admission::next`] without waiting, for a caller that waits on its
    /// scans in flight instead (one of them ending is what frees a slot).
    pub(crate) fn try_next(&self) -> Turn {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.admit(&mut st)
    }

    fn admit(&self, st: &mut State) -> Turn {
        if st.pending.is_empty() {
            return Turn::Finished;
        }
        let full = self.at_most.is_some_and(|n| st.running >= n);
        let pos = if full {
            None
        } else {
            st.pending
                .iter()
                .position(|&i| self.fits(st, &self.targets[i]))
        };
        let Some(pos) = pos else {
            return Turn::Wait;
        };
        let i = st.pending.remove(pos).expect("position is in range");
        st.running += 1;
        let t = &self.targets[i];
        if let Some(ns) = &t.namespace {
            *st.namespaces.entry(ns.clone()).or_default() += 1;
        }
        if let Some(node) = &t.node {
            *st.nodes.entry(node.clone()).or_default() += 1;
        }
        Turn::Scan(i)
    }

    /// Target `i` is done: free its namespace and node slots.
    pub(crate) fn done(&self, i: usize) {
        let t = &self.targets[i];
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        st.running = st.running.saturating_sub(1);
        for (map, key) in [(&mut st.namespaces, &t.namespace), (&mut st.nodes, &t.node)] {
            if let Some(k) = key
                && let Some(n) = map.get_mut(k)
            {
                *n = n.saturating_sub(1);
            }
        }
        drop(guard);
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn target(i: usize, ns: &str, node: &str) -> PlannedTarget {
        PlannedTarget {
            id: format!("{ns}/p{i}/c"),
            approach: crate::policy::model::Approach::Api,
            namespace: Some(ns.into()),
            pod: Some(format!("p{i}")),
            container: Some("c".into()),
            node: Some(node.into()),
            ..PlannedTarget::default()
        }
    }

    /// Many workers on a skewed inventory: the caps hold at every moment,
    /// every target is handed out exactly once, and the caps are reached.
    #[test]
    fn caps_hold_under_contention_and_every_target_runs_once() {
        let targets: Vec<PlannedTarget> = (0..300)
            .map(|i| target(i, ["a", "a", "a", "b", "c"][i % 5], ["n1", "n2"][i % 2]))
            .collect();
        let adm = Admission::new(&targets, &[], Some(3), Some(4));
        let counts: HashMap<&str, AtomicU32> = ["a", "b", "c", "n1", "n2"]
            .into_iter()
            .map(|k| (k, AtomicU32::new(0)))
            .collect();
        let peak: HashMap<&str, AtomicU32> =
            counts.keys().map(|k| (*k, AtomicU32::new(0))).collect();
        let handed = Mutex::new(vec![0u32; targets.len()]);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    while let Some(i) = adm.next() {
                        handed.lock().unwrap()[i] += 1;
                        let t = &targets[i];
                        let keys = [t.namespace.as_deref().unwrap(), t.node.as_deref().unwrap()];
                        for k in keys {
                            let now = counts[k].fetch_add(1, Ordering::SeqCst) + 1;
                            peak[k].fetch_max(now, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                        for k in keys {
                            counts[k].fetch_sub(1, Ordering::SeqCst);
                        }
                        adm.done(i);
                    }
                });
            }
        });
        assert!(handed.into_inner().unwrap().iter().all(|&n| n == 1));
        for ns in ["a", "b", "c"] {
            assert!(peak[ns].load(Ordering::SeqCst) <= 3, "{ns}");
        }
        for node in ["n1", "n2"] {
            assert!(peak[node].load(Ordering::SeqCst) <= 4, "{node}");
        }
    }
}
