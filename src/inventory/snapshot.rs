//! A cluster snapshot: the JSON of `kubectl get pods -A -o json`.
//!
//! Lets `vigil plan` run offline (in CI, in a pull request) against the
//! pods a cluster had when the snapshot was taken.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::{Inventory, InventoryError, PodInfo};

/// Snapshots larger than this are refused (10,000 pods take about 40 MiB).
pub(super) const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

/// Pods from a snapshot file, indexed by namespace.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_namespace: HashMap<String, Vec<PodInfo>>,
    total: usize,
}

/// `kubectl get pods -o json` output. Pods are converted to [`PodInfo`] as
/// they are read, so a full `Pod` object never exists for more than one pod
/// at a time (10,000 full pods would cost hundreds of MB).
#[derive(Deserialize)]
struct PodList {
    items: PodInfos,
}

struct PodInfos(Vec<PodInfo>);

impl<'de> Deserialize<'de> for PodInfos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PodInfos;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of pods")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PodInfos, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pod) = seq.next_element::<Pod>()? {
                    out.extend(PodInfo::from_owned(pod));
                }
                Ok(PodInfos(out))
            }
        }
        d.deserialize_seq(V)
    }
}

impl Snapshot {
    /// Read a snapshot file.
    pub fn from_path(path: &Path) -> Result<Snapshot, InventoryError> {
        let shown = path.display().to_string();
        let read_err = |reason: String| InventoryError::Read {
            path: shown.clone(),
            reason,
        };
        let bytes = crate::safeio::read(path, MAX_SNAPSHOT_BYTES, "inventory")
            .map_err(|e| read_err(e.problem.to_string()))?;
        Snapshot::from_slice(&bytes).map_err(|e| InventoryError::Parse {
            path: shown,
            reason: e.to_string(),
        })
    }

    /// Parse snapshot bytes; the error says where the JSON went wrong.
    pub fn from_slice(bytes: &[u8]) -> Result<Snapshot, serde_json::Error> {
        let list: PodList = serde_json::from_slice(bytes)?;
        Ok(Snapshot::from_pods(list.items.0))
    }

    /// Build from already-extracted pods.
    pub fn from_pods(pods: impl IntoIterator<Item = PodInfo>) -> Snapshot {
        let mut s = Snapshot::default();
        for p in pods {
            s.total += 1;
            s.by_namespace
                .entry(p.namespace.clone())
                .or_default()
                .push(p);
        }
        for list in s.by_namespace.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        s
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Returns true if and only if the snapshot holds no pods.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Inventory for Snapshot {
    fn pods(
        &self,
        _cluster: Option<&str>,
        namespace: &str,
    ) -> Result<Cow<'_, [PodInfo]>, InventoryError> {
        // A snapshot is one cluster's view; targets naming a context are
        // planned against it too (the plan records the context).
        Ok(Cow::Borrowed(
            self.by_namespace
                .get(namespace)
                .map_or(&[][..], Vec::as_slice),
        ))
    }
}
