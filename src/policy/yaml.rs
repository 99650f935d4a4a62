//! YAML documents with source positions.
//!
//! Policy files are parsed once into a [`Document`]: a `serde_json::Value`
//! (what the JSON Schema validator and the typed model consume) plus a table
//! from JSON pointers to the line and column each value and each mapping key
//! came from. Schema errors and semantic findings carry JSON pointers; this
//! table is how they are turned back into `file:line:column`.
//!
//! Parsing goes through serde-saphyr with its budgets on (alias bombs, deep
//! nesting, node and document counts) and duplicate keys rejected, so a
//! hostile file costs bounded time and memory and fails with a position.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

/// Nesting deeper than this is refused: no policy needs it, and deep trees
/// are a cheap way to exhaust a recursive consumer's stack.
pub(crate) const MAX_DEPTH: usize = 48;

pub(crate) use crate::diag::Position;

impl Position {
    fn from_location(loc: serde_saphyr::Location) -> Position {
        Position {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX).max(1),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX).max(1),
        }
    }
}

/// One YAML document of a file: its value and where every part of it is.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as JSON data.
    pub value: Value,
    /// Position of the document's root node.
    pub start: Position,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Document {
    /// Where the value at `pointer` (RFC 6901) starts. Falls back to the
    /// nearest ancestor that has a position, so that "missing property"
    /// errors point at the mapping that lacks it.
    pub fn value_position(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.start,
            }
        }
    }

    /// Where the mapping key that names `pointer`'s last segment stands;
    /// unknown-field errors point here rather than at the value.
    pub fn key_position(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value_position(pointer))
    }
}

/// A YAML syntax or structure error with the position the parser gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// What went wrong, without the position.
    pub message: String,
    /// Where, when the parser knows.
    pub position: Option<Position>,
}

/// What one YAML file may expand to once parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Documents in the file.
    pub documents: usize,
    /// Nodes in all.
    pub nodes: usize,
    /// Parser events in all.
    pub events: usize,
    /// Bytes of scalars in all.
    pub scalar_bytes: usize,
    /// Read scalars as Kubernetes' YAML reader does (sigs.k8s.io/yaml on
    /// go-yaml v2, YAML 1.1): `yes`/`no`/`on`/`off` are booleans and
    /// `0644` is octal. Policies use YAML 1.2, where they are not.
    pub yaml_1_1: bool,
}

impl Limits {
    /// Policies and profiles: far above any real policy set, far below
    /// what would hurt the machine.
    pub(crate) const POLICY: Limits = Limits {
        documents: 256,
        nodes: 200_000,
        events: 400_000,
        scalar_bytes: 8 * 1024 * 1024,
        yaml_1_1: false,
    };
    /// Workload manifests: a rendered chart or a repository's `kubectl
    /// apply` file holds thousands of documents.
    pub(crate) const MANIFEST: Limits = Limits {
        documents: 20_000,
        nodes: 4_000_000,
        events: 8_000_000,
        scalar_bytes: 64 * 1024 * 1024,
        yaml_1_1: true,
    };
}

/// Parse every document of `text`. Empty and null documents are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    parse_documents_within(text, Limits::POLICY)
}

/// [`parse_documents`] with other limits.
pub(crate) fn parse_documents_within(
    text: &str,
    limits: Limits,
) -> Result<Vec<Document>, YamlError> {
    Ok(parse_nodes(text, limits)?
        .into_iter()
        .map(|n| {
            let start = Position::from_location(n.referenced);
            let mut doc = Document {
                value: Value::Null,
                start,
                values: HashMap::new(),
                keys: HashMap::new(),
            };
            let mut pointer = String::new();
            doc.value = flatten(n, &mut pointer, &mut doc.values, &mut doc.keys);
            doc
        })
        .collect())
}

/// Where each node of a document is: the same shape as its value, with a
/// position per node and nothing else. Lighter than a [`Document`]'s
/// tables for large inputs (manifests), where only a few fields are ever
/// located.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Where this node starts.
    pub position: Position,
    kids: Kids,
}

#[derive(Debug, Clone)]
enum Kids {
    None,
    Seq(Vec<Tree>),
    Map(Vec<(Box<str>, Tree)>),
}

impl Tree {
    /// Where the value at `pointer` (RFC 6901) starts, else its nearest
    /// ancestor that exists (a missing field points at the mapping that
    /// lacks it).
    pub fn value_position(&self, pointer: &str) -> Position {
        let mut at = self;
        for raw in pointer.split('/').skip(1) {
            let seg: std::borrow::Cow<str> = if raw.contains('~') {
                raw.replace("~1", "/").replace("~0", "~").into()
            } else {
                raw.into()
            };
            let next = match &at.kids {
                Kids::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                Kids::Map(entries) => entries.iter().find(|(k, _)| **k == *seg).map(|(_, t)| t),
                Kids::None => None,
            };
            match next {
                Some(t) => at = t,
                None => break,
            }
        }
        at.position
    }
}

/// Parse every document of `text` into its value and its [`Tree`]; empty
/// and null documents are skipped.
pub(crate) fn parse_located(text: &str, limits: Limits) -> Result<Vec<(Value, Tree)>, YamlError> {
    Ok(parse_nodes(text, limits)?
        .into_iter()
        .map(located)
        .collect())
}

fn located(node: Spanned<Node>) -> (Value, Tree) {
    let position = Position::from_location(node.referenced);
    let (value, kids) = match node.value {
        Node::Null => (Value::Null, Kids::None),
        Node::Bool(b) => (Value::Bool(b), Kids::None),
        Node::Int(i) => (Value::Number(i.into()), Kids::None),
        Node::Float(f) => (
            Number::from_f64(f).map_or(Value::Null, Value::Number),
            Kids::None,
        ),
        Node::Str(s) => (Value::String(s), Kids::None),
        Node::Seq(items) => {
            let (values, trees) = items.into_iter().map(located).unzip();
            (Value::Array(values), Kids::Seq(trees))
        }
        Node::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            let mut trees = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let (v, t) = located(value);
                trees.push((key.value.as_str().into(), t));
                out.insert(key.value, v);
            }
            (Value::Object(out), Kids::Map(trees))
        }
    };
    (value, Tree { position, kids })
}

fn parse_nodes(text: &str, limits: Limits) -> Result<Vec<Spanned<Node>>, YamlError> {
    let mut options = Options::default();
    options.with_snippet = false;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    // Policies: YAML 1.2 booleans only: `y`, `no`, `on` stay strings (the
    // "Norway problem"), and `mode: 0640` stays the string "0640" instead
    // of the integer 640. Manifests: as Kubernetes reads them.
    options.strict_booleans = !limits.yaml_1_1;
    options.leading_zero_numbers_as_strings = !limits.yaml_1_1;
    options.legacy_octal_numbers = limits.yaml_1_1;
    let mut budget = Budget::default();
    // Policies are small; these caps are far above any real policy set and far
    // below what would hurt the machine.
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = limits.nodes;
    budget.max_aliases = 1_000;
    budget.max_events = limits.events;
    budget.max_documents = limits.documents;
    budget.max_total_scalar_bytes = limits.scalar_bytes;
    options.budget = Some(budget);
    let nodes: Vec<Spanned<Node>> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| {
            let inner = e.without_snippet();
            YamlError {
                message: clean_message(&inner.to_string()),
                position: inner
                    .location()
                    .filter(|l| l.line() > 0)
                    .map(Position::from_location),
            }
        })?;
    Ok(nodes
        .into_iter()
        .filter(|n| !matches!(n.value, Node::Null))
        .collect())
}

/// serde-saphyr appends " at line X column Y" to its messages (and, for
/// aliases, "(defined at …) (used at …)"); positions are rendered
/// separately, so strip exactly that tail — never text in the middle — and
/// say in words what a budget breach means.
fn clean_message(message: &str) -> String {
    use std::sync::OnceLock;
    static TAIL: OnceLock<regex::Regex> = OnceLock::new();
    let tail = TAIL.get_or_init(|| {
        regex::Regex::new(r"(?:\s*\(?(?:defined|used)? ?at line \d+,? column \d+\)?)+\s*$")
            .expect("valid regex")
    });
    let trimmed = tail.replace(message, "");
    let trimmed = trimmed.trim();
    // The library's advice to its own callers is not the user's.
    if let Some(key) = trimmed
        .strip_prefix("duplicate mapping key: ")
        .and_then(|k| k.split(", set DuplicateKeyPolicy").next())
    {
        return format!("duplicate key `{key}`: given twice in one mapping; keep one");
    }
    if let Some(rest) = trimmed.strip_prefix("budget breached: ") {
        let what = rest.split([' ', '{']).next().unwrap_or(rest);
        return format!(
            "the YAML is too large once parsed ({what} budget exceeded); aliases that expand \
             exponentially (an \"alias bomb\"), very deep nesting and huge documents are refused"
        );
    }
    trimmed.to_string()
}

/// Escape one JSON pointer segment (RFC 6901).
pub(crate) fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn flatten(
    node: Spanned<Node>,
    pointer: &mut String,
    values: &mut HashMap<String, Position>,
    keys: &mut HashMap<String, Position>,
) -> Value {
    values.insert(pointer.clone(), Position::from_location(node.referenced));
    match node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::Number(i.into()),
        Node::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => {
            let len = pointer.len();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                pointer.push('/');
                pointer.push_str(&i.to_string());
                out.push(flatten(item, pointer, values, keys));
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let len = pointer.len();
            let mut out = Map::with_capacity(entries.len());
            for (key, value) in entries {
                pointer.push('/');
                pointer.push_str(&escape_segment(&key.value));
                keys.insert(pointer.clone(), Position::from_location(key.referenced));
                let v = flatten(value, pointer, values, keys);
                pointer.truncate(len);
                out.insert(key.value, v);
            }
            Value::Object(out)
        }
    }
}

/// A YAML node whose children remember where they came from.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Node::Int(i)),
            Err(_) => Ok(Node::Float(v as f64)),
        }
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        Err(E::custom("binary values are not supported in policies"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    #[test]
    fn positions_of_values_and_keys() {
        let text = "a: 1\nb:\n  c: [x, y]\n  d: {e: true}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.value["b"]["c"][1], "y");
        assert_eq!(d.key_position("/b/c"), pos(3, 3));
        assert_eq!(d.value_position("/b/c/1"), pos(3, 10));
        assert_eq!(d.key_position("/b/d/e"), pos(4, 7));
        // Missing pointers fall back to the nearest ancestor.
        assert_eq!(d.value_position("/b/d/zzz"), d.value_position("/b/d"));
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].key_position("/b"), pos(4, 1));
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let e = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.line), Some(3), "{e:?}");
        assert!(e.message.to_lowercase().contains("duplicate"), "{e:?}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_documents(&text).unwrap_err();
        assert!(e.position.is_some(), "{e:?}");
        // Whole words, no cut-off "(used" tail, no library internals.
        assert!(e.message.contains("alias bomb"), "{}", e.message);
        assert!(
            !e.message.contains("(used") && !e.message.contains('{'),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_keys_are_said_in_the_users_terms() {
        let e = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            e.message,
            "duplicate key `a`: given twice in one mapping; keep one"
        );
    }

    #[test]
    fn only_the_position_tail_is_stripped() {
        assert_eq!(clean_message("bad thing at line 3 column 4"), "bad thing");
        assert_eq!(
            clean_message("x (defined at line 8, column 9) (used at line 9 column 10)"),
            "x"
        );
        assert_eq!(
            clean_message("key `at line 2` is odd at line 5 column 1"),
            "key `at line 2` is odd"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(200) + &"]".repeat(200);
        assert!(parse_documents(&text).is_err());
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert!(parse_documents(&block).is_err());
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let docs = parse_documents("\"a/b\": {\"c~d\": 1}\n").unwrap();
        assert_eq!(docs[0].key_position("/a~1b/c~0d"), pos(1, 9));
    }
}
