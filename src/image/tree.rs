//! The storage of an image's final filesystem: an arena of nodes, each
//! holding its name component as bytes, linked to its directory and its
//! siblings, found by (directory, name) through one hash table. Nothing
//! here knows layer rules (`index` applies them); this module only bounds
//! what a tree may hold.
//!
//! Memory per node is fixed (about 80 bytes, plus its name once, plus a
//! few bytes of table), so the caps below bound the whole tree: nodes
//! (implicit parents included) and the bytes of names and link targets.
//! Slots and names live in fixed-size chunks, so growing never copies (or
//! doubles) what is already held.

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::hash::BuildHasher as _;

use crate::facts::Kind;

/// Nodes of the final filesystem, implicit parents included (a large
/// distribution image has ~50k).
pub(crate) const MAX_NODES: usize = 1_000_000;
/// Bytes of node names and symlink targets held at once.
pub(crate) const MAX_NAME_BYTES: usize = 64 << 20;

/// A node.
pub(crate) type Id = u32;
/// The image's root directory.
pub(crate) const ROOT: Id = 0;
const NONE: Id = Id::MAX;

const SLOT_CHUNK: usize = 1 << 14;
const NAME_CHUNK: usize = 1 << 20;

/// One file of the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Its type.
    pub kind: Kind,
    /// `mode & 0o7777` (a symlink's is 0o777, as `lstat` reports it).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (regular files; a symlink's is its target's length).
    pub size: u64,
    /// Symlink target, as written.
    pub link: Option<Box<[u8]>>,
    /// Where its bytes are: (layer, entry ordinal in that layer).
    pub data: Option<(u32, u32)>,
}

impl Node {
    /// A directory owned by root, mode 0755.
    pub(crate) fn dir() -> Node {
        Node {
            kind: Kind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            link: None,
            data: None,
        }
    }
}

struct Slot {
    node: Node,
    /// Where its name is in the name chunks, and its length (≤ 255).
    name_at: u32,
    name_len: u8,
    live: bool,
    parent: Id,
    first_child: Id,
    next: Id,
    prev: Id,
    /// 1 + the last layer that wrote this path or one under it.
    touched: u32,
}

/// The tree is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Full;

/// The arena.
pub(super) struct Tree {
    slots: Vec<Vec<Slot>>,
    names: Vec<Vec<u8>>,
    table: HashTable<Id>,
    hasher: DefaultHashBuilder,
    free: Vec<Id>,
    live: usize,
    /// Bytes of names and link targets of live nodes.
    held: usize,
    /// Bytes in the name chunks, live or not (compacted when mostly dead).
    stored: usize,
}

fn slot_ref(slots: &[Vec<Slot>], id: Id) -> &Slot {
    &slots[id as usize / SLOT_CHUNK][id as usize % SLOT_CHUNK]
}

fn name_ref<'a>(names: &'a [Vec<u8>], s: &Slot) -> &'a [u8] {
    let at = s.name_at as usize;
    &names[at / NAME_CHUNK][at % NAME_CHUNK..at % NAME_CHUNK + usize::from(s.name_len)]
}

impl Default for Tree {
    fn default() -> Tree {
        let mut t = Tree {
            slots: Vec::new(),
            names: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
            live: 0,
            held: 0,
            stored: 0,
        };
        t.push_slot(Slot {
            node: Node::dir(),
            name_at: 0,
            name_len: 0,
            live: true,
            parent: ROOT,
            first_child: NONE,
            next: NONE,
            prev: NONE,
            touched: 0,
        });
        t.live = 1;
        t
    }
}

impl Tree {
    fn slot(&self, id: Id) -> &Slot {
        slot_ref(&self.slots, id)
    }

    fn slot_mut(&mut self, id: Id) -> &mut Slot {
        &mut self.slots[id as usize / SLOT_CHUNK][id as usize % SLOT_CHUNK]
    }

    fn push_slot(&mut self, s: Slot) -> Id {
        if self.slots.last().is_none_or(|c| c.len() == SLOT_CHUNK) {
            self.slots.push(Vec::with_capacity(SLOT_CHUNK));
        }
        let chunk = self.slots.len() - 1;
        self.slots[chunk].push(s);
        (chunk * SLOT_CHUNK + self.slots[chunk].len() - 1) as Id
    }

    fn hash(hasher: &DefaultHashBuilder, dir: Id, name: &[u8]) -> u64 {
        hasher.hash_one((dir, name))
    }

    /// Nodes, the root included.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The node `id`.
    pub(super) fn node(&self, id: Id) -> &Node {
        &self.slot(id).node
    }

    /// The node `id`, to change its metadata.
    pub(super) fn node_mut(&mut self, id: Id) -> &mut Node {
        &mut self.slot_mut(id).node
    }

    /// The directory holding `id` (the root's is the root).
    pub(super) fn parent(&self, id: Id) -> Id {
        self.slot(id).parent
    }

    /// The name of `id` in its directory.
    pub(super) fn name(&self, id: Id) -> &[u8] {
        name_ref(&self.names, self.slot(id))
    }

    /// Whether `id` is still in the tree.
    pub(super) fn is_live(&self, id: Id) -> bool {
        self.slot(id).live
    }

    /// The last layer mark of `id` (see [`Tree::touch`]).
    pub(super) fn touched(&self, id: Id) -> u32 {
        self.slot(id).touched
    }

    /// The entry `name` of directory `dir`.
    pub(super) fn child(&self, dir: Id, name: &[u8]) -> Option<Id> {
        let h = Self::hash(&self.hasher, dir, name);
        let (slots, names) = (&self.slots, &self.names);
        self.table
            .find(h, |&id| {
                let s = slot_ref(slots, id);
                s.parent == dir && name_ref(names, s) == name
            })
            .copied()
    }

    /// The entries of directory `dir`, in byte order of their names.
    pub(super) fn children(&self, dir: Id) -> Vec<(&[u8], Id)> {
        let mut out = Vec::new();
        let mut at = self.slot(dir).first_child;
        while at != NONE {
            out.push((self.name(at), at));
            at = self.slot(at).next;
        }
        out.sort_unstable();
        out
    }

    /// Whether directory `dir` has more than `n` entries.
    pub(super) fn has_more_children_than(&self, dir: Id, n: usize) -> bool {
        let mut at = self.slot(dir).first_child;
        let mut count = 0;
        while at != NONE {
            count += 1;
            if count > n {
                return true;
            }
            at = self.slot(at).next;
        }
        false
    }

    /// The absolute path of `id`, as bytes.
    pub(super) fn path(&self, id: Id) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut at = id;
        while at != ROOT {
            parts.push(self.name(at));
            at = self.parent(at);
        }
        if parts.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        out
    }

    fn store_name(&mut self, name: &[u8]) -> u32 {
        if self
            .names
            .last()
            .is_none_or(|c| c.len() + name.len() > NAME_CHUNK)
        {
            self.names.push(Vec::with_capacity(NAME_CHUNK));
        }
        let chunk = self.names.len() - 1;
        let at = chunk * NAME_CHUNK + self.names[chunk].len();
        self.names[chunk].extend_from_slice(name);
        self.stored += name.len();
        at as u32
    }

    /// Add `name` (at most 255 bytes) to directory `parent`, which has no
    /// entry of that name.
    pub(super) fn insert(&mut self, parent: Id, name: &[u8], node: Node) -> Result<Id, Full> {
        let bytes = name.len() + node.link.as_ref().map_or(0, |l| l.len());
        let name_len = u8::try_from(name.len()).map_err(|_| Full)?;
        if self.live >= MAX_NODES || self.held + bytes > MAX_NAME_BYTES {
            return Err(Full);
        }
        self.compact_names();
        let name_at = self.store_name(name);
        let first = self.slot(parent).first_child;
        let slot = Slot {
            node,
            name_at,
            name_len,
            live: true,
            parent,
            first_child: NONE,
            next: first,
            prev: NONE,
            touched: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                *self.slot_mut(id) = slot;
                id
            }
            None => self.push_slot(slot),
        };
        if first != NONE {
            self.slot_mut(first).prev = id;
        }
        self.slot_mut(parent).first_child = id;
        self.live += 1;
        self.held += bytes;
        let h = Self::hash(&self.hasher, parent, name);
        let (slots, names, hasher) = (&self.slots, &self.names, &self.hasher);
        self.table.insert_unique(h, id, |&other| {
            let s = slot_ref(slots, other);
            Self::hash(hasher, s.parent, name_ref(names, s))
        });
        Ok(id)
    }

    /// Remove `id` and everything under it (never the root).
    pub(super) fn remove(&mut self, id: Id) {
        if id == ROOT || !self.slot(id).live {
            return;
        }
        // Unlink from its directory's list.
        let (parent, prev, next) = {
            let s = self.slot(id);
            (s.parent, s.prev, s.next)
        };
        if prev == NONE {
            self.slot_mut(parent).first_child = next;
        } else {
            self.slot_mut(prev).next = next;
        }
        if next != NONE {
            self.slot_mut(next).prev = prev;
        }
        let mut todo = vec![id];
        while let Some(at) = todo.pop() {
            let mut c = self.slot(at).first_child;
            while c != NONE {
                todo.push(c);
                c = self.slot(c).next;
            }
            let h = {
                let s = self.slot(at);
                Self::hash(&self.hasher, s.parent, name_ref(&self.names, s))
            };
            if let Ok(e) = self.table.find_entry(h, |&x| x == at) {
                e.remove();
            }
            let s = self.slot_mut(at);
            let bytes = usize::from(s.name_len) + s.node.link.as_ref().map_or(0, |l| l.len());
            s.live = false;
            s.node.link = None;
            s.first_child = NONE;
            self.held -= bytes;
            self.live -= 1;
            self.free.push(at);
        }
    }

    /// Mark `id` and its ancestors with `mark` (stops at the first already
    /// marked: its ancestors are too).
    pub(super) fn touch(&mut self, mut id: Id, mark: u32) {
        while id != ROOT && self.slot(id).touched != mark {
            self.slot_mut(id).touched = mark;
            id = self.parent(id);
        }
    }

    /// Rewrite the name chunks when most of what they hold is dead, so
    /// replaced and removed entries cannot make them grow without bound.
    fn compact_names(&mut self) {
        let live_names = self.held;
        if self.stored < 4 * NAME_CHUNK || self.stored < 2 * live_names.max(1) {
            return;
        }
        let old = std::mem::take(&mut self.names);
        self.stored = 0;
        for chunk in 0..self.slots.len() {
            for i in 0..self.slots[chunk].len() {
                let s = &self.slots[chunk][i];
                if !s.live || s.name_len == 0 {
                    continue;
                }
                let name = name_ref(&old, s).to_vec();
                let at = self.store_name(&name);
                self.slots[chunk][i].name_at = at;
            }
        }
    }
}
