//! The live cluster as an inventory: pods listed through the API (as the
//! caller's identity), cached per namespace for the duration of a plan.

use k8s_openapi::api::core::v1::Pod;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::runtime::Handle;

use super::{Inventory, InventoryError, PodInfo};
use crate::cluster::Cluster;

/// Pods from a live cluster.
pub struct Live {
    cluster: Cluster,
    runtime: Handle,
    /// Each namespace's pods, or why they could not be listed (the
    /// client has already retried what was worth retrying).
    cache: Mutex<HashMap<String, Result<Vec<PodInfo>, String>>>,
    /// Each namespace's context, once asked.
    contexts: Mutex<HashMap<String, Result<crate::facts::workload::NamespaceContext, String>>>,
    /// Keep each pod's configuration (`PodInfo::workload`) for workload
    /// controls; without, a listed pod is its planning facts only.
    workloads: bool,
}

impl Live {
    /// Wrap a connected cluster; `runtime` runs its requests.
    pub fn new(cluster: Cluster, runtime: Handle) -> Live {
        Live {
            cluster,
            runtime,
            cache: Mutex::new(HashMap::new()),
            contexts: Mutex::new(HashMap::new()),
            workloads: true,
        }
    }

    /// The same, keeping no pod's configuration: for runs whose profiles
    /// have no workload control (a big namespace's pod specs are most of
    /// what a listing holds).
    pub(crate) fn without_workloads(self) -> Live {
        Live {
            workloads: false,
            ..self
        }
    }

    /// How a listed pod is kept.
    fn keep(&self) -> &'static (dyn Fn(Pod) -> Option<PodInfo> + Sync) {
        if self.workloads {
            &PodInfo::from_owned
        } else {
            &|pod: Pod| PodInfo::without_workload(&pod)
        }
    }
}

impl Live {
    /// List `namespaces` concurrently and keep the answers, failures
    /// included (the client retried what was worth it; the planner reports
    /// the failure when it asks). Planning then waits for one round trip,
    /// not one per namespace.
    pub fn prefetch<'a>(&self, namespaces: impl IntoIterator<Item = &'a str>) {
        let mut unique: Vec<&str> = namespaces.into_iter().collect();
        unique.sort_unstable();
        unique.dedup();
        let listed = self.runtime.block_on(futures_util::future::join_all(
            unique
                .iter()
                .map(|ns| self.cluster.list_pods(ns, self.keep())),
        ));
        let listed = listed.into_iter().map(|r| r.map(sorted));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (ns, pods) in unique.into_iter().zip(listed) {
            cache.insert(ns.to_string(), pods.map_err(|e| e.to_string()));
        }
    }
}

impl Inventory for Live {
    fn namespace_context(
        &self,
        _cluster: Option<&str>,
        namespace: &str,
    ) -> Result<crate::facts::workload::NamespaceContext, String> {
        if let Some(c) = self
            .contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
        {
            return c.clone();
        }
        // Both reads at once: one round trip per namespace.
        let (ns, policies) = self.runtime.block_on(futures_util::future::join(
            self.cluster.get_namespace(namespace),
            self.cluster.list_network_policies(namespace),
        ));
        let read = match (ns, policies) {
            (Ok(ns), Ok(policies)) => Ok(crate::facts::workload::NamespaceContext {
                source: "the cluster",
                labels: Some(ns.metadata.labels.unwrap_or_default()),
                network_policies: Some(
                    policies
                        .into_iter()
                        .map(|p| {
                            let sel = p.spec.and_then(|s| s.pod_selector).unwrap_or_default();
                            (
                                p.metadata.name.unwrap_or_default(),
                                crate::policy::selector::LabelSelector::from_k8s(&sel),
                            )
                        })
                        .collect(),
                ),
                unread: None,
            }),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        self.contexts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(namespace.to_string(), read.clone());
        read
    }

    fn pods(
        &self,
        _cluster: Option<&str>,
        namespace: &str,
    ) -> Result<Cow<'_, [PodInfo]>, InventoryError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
            .cloned();
        let listed = match cached {
            Some(r) => r,
            None => {
                let r = self
                    .runtime
                    .block_on(self.cluster.list_pods(namespace, self.keep()))
                    .map(sorted)
                    .map_err(|e| e.to_string());
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(namespace.to_string(), r.clone());
                r
            }
        };
        listed
            .map(Cow::Owned)
            .map_err(|reason| InventoryError::Read {
                path: format!("cluster {:?}", self.cluster),
                reason,
            })
    }
}

/// The planner's view of listed pods (each converted as it was read), by
/// name.
fn sorted(mut infos: Vec<PodInfo>) -> Vec<PodInfo> {
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}
