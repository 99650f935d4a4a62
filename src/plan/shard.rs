//! Sharding a plan: `vigil run --shard I/N` scans the targets whose stable
//! hash falls in shard `I` of `N`. The hash is the first 8 bytes of the
//! SHA-256 of the target id, so every process that plans the same
//! inventory agrees on the split whatever order pods are listed in, and
//! the shards of one plan are disjoint and together cover it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shard `index` of `count` (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

/// A `--shard` value that is not `I/N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard {0:?} is not I/N with 0 <= I < N <= 1024 (e.g. 0/4)")]
pub struct ShardError(String);

impl Shard {
    /// Parse `I/N` (0 ≤ I < N ≤ 1024).
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > 1024 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether target `id` belongs to this shard.
    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

/// The shard of `count` that target `id` falls in.
pub(crate) fn shard_of(id: &str, count: u32) -> u32 {
    let d = Sha256::digest(id.as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().expect("a digest has 8 bytes"));
    (n % u64::from(count.max(1))) as u32
}

/// A digest of the whole plan's target ids (sorted), the same in every
/// shard of one plan: `vigil merge` uses it to refuse shards of different plans.
pub(crate) fn plan_digest<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    crate::encoding::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Property: for random inventories and N in 1..16, the shards are
    /// disjoint, their union is the plan, and the split does not depend on
    /// the order ids come in.
    #[test]
    fn shards_partition_any_inventory() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let n = (next() % 15 + 1) as u32;
            let len = (next() % 300) as usize;
            let mut ids: Vec<String> = (0..len)
                .map(|_| format!("ns-{}/pod-{:x}/c{}", next() % 7, next(), next() % 3))
                .collect();
            ids.sort();
            ids.dedup();
            let mut seen = std::collections::BTreeMap::new();
            for i in 0..n {
                let shard = Shard { index: i, count: n };
                for id in ids.iter().filter(|id| shard.holds(id)) {
                    assert!(seen.insert(id.clone(), i).is_none(), "{id} in two shards");
                }
            }
            assert_eq!(seen.len(), ids.len(), "every target in some shard");
            // Order does not matter: reversed input, same assignment.
            for id in ids.iter().rev() {
                assert_eq!(shard_of(id, n), seen[id]);
            }
            let reversed: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
            assert_eq!(
                plan_digest(ids.iter().map(String::as_str)),
                plan_digest(reversed)
            );
        }
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "0/0", "1", "a/b", "-1/3", "0/2000"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
