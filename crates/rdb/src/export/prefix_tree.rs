//! Keys and RDB bytes by `:`-separated key prefix, as memory reports group them (`user:`, `user:42:`…), in a tree
//! whose size is bounded whatever the keys: a file of a billion distinct keys makes at most [`MAX_PREFIX_NODES`]
//! nodes.
//!
//! A key `a:b:c` counts toward the prefixes `a:` and `a:b:` (its last part is the key's own name, not a prefix);
//! a key with no `:` counts only toward the root. Where a new prefix would pass a bound (depth, children of one
//! node, nodes in all, length of a part), the key stops at the deepest prefix it has and counts there as
//! `unlisted`, so every node's figures are still the sums of everything under it.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::json_lines::write_bytes;
use super::json_output::JsonOutput;

/// Most prefix levels below the root (`a:b:c:d:` is four).
pub const MAX_PREFIX_DEPTH: usize = 4;
/// Most children one prefix lists: keys named by ids (`session:<uuid>`) would otherwise make a child per key.
pub const MAX_PREFIX_CHILDREN: usize = 100;
/// Most prefixes in the whole tree.
pub const MAX_PREFIX_NODES: usize = 10_000;
/// Longest part between two `:` that makes a prefix; a longer one is an id or a value, not a name.
pub const MAX_PREFIX_PART: usize = 64;

/// One prefix: the keys under it, and its listed children by their part.
#[derive(Default)]
struct Node {
    keys: u64,
    bytes: u64,
    /// Keys under this prefix not listed in any child (their own name, or a child past a bound).
    unlisted_keys: u64,
    unlisted_bytes: u64,
    children: BTreeMap<Vec<u8>, usize>,
}

/// The prefix tree of the keys counted so far.
pub struct PrefixTree {
    /// Node 0 is the root (the empty prefix).
    nodes: Vec<Node>,
}

impl Default for PrefixTree {
    fn default() -> Self {
        PrefixTree {
            nodes: vec![Node::default()],
        }
    }
}

impl PrefixTree {
    /// Counts `key`, of `bytes` RDB bytes, toward each of its prefixes.
    pub fn add(&mut self, key: &[u8], bytes: u64) {
        let mut at = 0;
        let mut rest = key;
        for depth in 0.. {
            let node = &mut self.nodes[at];
            node.keys += 1;
            node.bytes += bytes;
            let part = rest
                .iter()
                .position(|&b| b == b':')
                .map(|i| &rest[..i])
                .filter(|p| p.len() <= MAX_PREFIX_PART && depth < MAX_PREFIX_DEPTH);
            let existing = part.and_then(|p| node.children.get(p).copied());
            let room =
                node.children.len() < MAX_PREFIX_CHILDREN && self.nodes.len() <= MAX_PREFIX_NODES;
            let next = match (part, existing) {
                (Some(_), Some(child)) => child,
                (Some(part), None) if room => {
                    let child = self.nodes.len();
                    self.nodes[at].children.insert(part.to_vec(), child);
                    self.nodes.push(Node::default());
                    child
                }
                _ => {
                    let node = &mut self.nodes[at];
                    node.unlisted_keys += 1;
                    node.unlisted_bytes += bytes;
                    return;
                }
            };
            rest = &rest[part.map_or(0, |p| p.len() + 1)..];
            at = next;
        }
    }

    /// Prefixes in the tree, the root excepted.
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Whether no key had a prefix.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tree as JSON: `{"prefix", "keys", "bytes", "unlisted_keys", "unlisted_bytes", "children": [...]}`,
    /// children by bytes, most first. The root's prefix is `""`; a prefix is a JSON string, or `{"base64"}` when
    /// it is not UTF-8, as in `replicast rdb`'s lines.
    pub fn to_json(&self) -> Json {
        self.node_json(0, b"")
    }

    fn node_json(&self, at: usize, prefix: &[u8]) -> Json {
        let node = &self.nodes[at];
        let mut children: Vec<(&Vec<u8>, usize)> = node
            .children
            .iter()
            .map(|(part, &child)| (part, child))
            .collect();
        children.sort_by(|a, b| {
            self.nodes[b.1]
                .bytes
                .cmp(&self.nodes[a.1].bytes)
                .then_with(|| a.0.cmp(b.0))
        });
        let children: Vec<Json> = children
            .into_iter()
            .map(|(part, child)| {
                let mut name = prefix.to_vec();
                name.extend_from_slice(part);
                name.push(b':');
                self.node_json(child, &name)
            })
            .collect();
        json!({
            "prefix": bytes_json(prefix),
            "keys": node.keys,
            "bytes": node.bytes,
            "unlisted_keys": node.unlisted_keys,
            "unlisted_bytes": node.unlisted_bytes,
            "children": children,
        })
    }
}

/// Bytes as `replicast rdb` writes them: a JSON string when UTF-8, else `{"base64": …}`.
pub(super) fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(text) => Json::String(text.to_string()),
        Err(_) => {
            let mut written = Vec::new();
            // Writing to a Vec cannot fail, and what it writes is JSON.
            let mut out = JsonOutput::with_capacity(0, &mut written);
            let _ = write_bytes(&mut out, bytes);
            drop(out);
            serde_json::from_slice(&written).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child<'a>(node: &'a Json, prefix: &str) -> &'a Json {
        node["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["prefix"] == prefix)
            .unwrap_or_else(|| panic!("no child {prefix} in {node}"))
    }

    #[test]
    fn keys_count_toward_every_prefix_and_their_own_name_is_unlisted() {
        let mut tree = PrefixTree::default();
        tree.add(b"user:1:profile", 10);
        tree.add(b"user:1:cart", 5);
        tree.add(b"user:2", 7);
        tree.add(b"plain", 3);
        let root = tree.to_json();
        assert_eq!(root["keys"], 4);
        assert_eq!(root["bytes"], 25);
        assert_eq!(root["unlisted_keys"], 1);
        assert_eq!(root["unlisted_bytes"], 3);
        let user = child(&root, "user:");
        assert_eq!(
            (user["keys"].as_u64(), user["bytes"].as_u64()),
            (Some(3), Some(22))
        );
        assert_eq!(user["unlisted_keys"], 1);
        let one = child(user, "user:1:");
        assert_eq!(
            (one["keys"].as_u64(), one["bytes"].as_u64()),
            (Some(2), Some(15))
        );
        assert_eq!(one["children"].as_array().unwrap().len(), 0);
        // Children come by bytes, most first.
        assert_eq!(user["children"][0]["prefix"], "user:1:");
        assert_eq!(tree.len(), 2);
    }

    #[test]
    fn bounds_stop_keys_at_their_deepest_listed_prefix() {
        let mut tree = PrefixTree::default();
        for i in 0..(MAX_PREFIX_CHILDREN + 50) {
            tree.add(format!("session:{i}:data").as_bytes(), 1);
        }
        tree.add(b"a:b:c:d:e:f:g", 1);
        tree.add(
            format!("{}:x", "l".repeat(MAX_PREFIX_PART + 1)).as_bytes(),
            1,
        );
        let root = tree.to_json();
        let session = child(&root, "session:");
        assert_eq!(session["keys"], (MAX_PREFIX_CHILDREN + 50) as u64);
        assert_eq!(
            session["children"].as_array().unwrap().len(),
            MAX_PREFIX_CHILDREN
        );
        assert_eq!(session["unlisted_keys"], 50);
        let d = child(
            child(child(child(&root, "a:"), "a:b:"), "a:b:c:"),
            "a:b:c:d:",
        );
        assert_eq!(d["unlisted_keys"], 1);
        assert_eq!(d["children"].as_array().unwrap().len(), 0);
        // The over-long part is no prefix: that key is the root's own.
        assert_eq!(root["unlisted_keys"], 1);
    }

    #[test]
    fn the_whole_tree_never_passes_its_node_cap() {
        let mut tree = PrefixTree::default();
        for a in 0..200 {
            for b in 0..200 {
                tree.add(format!("{a}:{b}:k").as_bytes(), 1);
            }
        }
        assert!(tree.len() <= MAX_PREFIX_NODES, "{}", tree.len());
        assert_eq!(tree.to_json()["keys"], 40_000);
    }

    #[test]
    fn prefixes_that_are_not_utf8_are_base64() {
        let mut tree = PrefixTree::default();
        tree.add(b"\xff:k", 1);
        assert_eq!(tree.to_json()["children"][0]["prefix"]["base64"], "/zo=");
    }
}
