//! An order-statistics multiset of floats: insert, remove by value, count, min, max, sum, rank and quantile
//! queries, each in O(log n).
//!
//! It is a treap in an arena: nodes live in one `Vec`, linked by `u32` indexes, and freed nodes are reused, so a
//! window that keeps its size allocates nothing once warm. Equal values share a node with a multiplicity, which
//! keeps dashboards of repeated readings (`0.0`, `100.0`) small. Priorities come from a small deterministic PRNG
//! (xorshift), never from the values, so sorted or otherwise adversarial insertion orders keep the expected
//! height at O(log n), and two runs over the same input build the same tree.
//!
//! Only finite values enter: NaN has no place in an order and ±∞ would make every mean meaningless, so both are
//! rejected with [`NotFinite`]. `-0.0` is stored as `0.0`.
//!
//! Quantiles use the **nearest-rank** definition: the `q`-quantile (`q` in thousandths, `per_mille`) of `n`
//! values is the value at 1-based rank `max(1, ⌈n · per_mille / 1000⌉)` in ascending order, computed in integers
//! so that it matches a sort-based reference exactly. p50 of `[1, 2, 3, 4]` is `2`, p95 is `4`.

use thiserror::Error;

const NIL: u32 = u32::MAX;

/// A value that cannot enter the multiset.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[error("{} is not a finite number", ryu::Buffer::new().format(*.0))]
pub struct NotFinite(pub f64);

#[derive(Debug, Clone)]
struct Node {
    value: f64,
    /// How many copies of `value` (0 marks a free node).
    copies: u32,
    /// Copies in this subtree, this node included.
    size: u32,
    /// The sum of this subtree's values, copies included.
    sum: f64,
    priority: u32,
    left: u32,
    right: u32,
}

/// A multiset of finite `f64` with O(log n) order statistics; see the module docs.
#[derive(Debug, Clone)]
pub struct OrderStats {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    rng: u32,
}

impl Default for OrderStats {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderStats {
    /// An empty multiset.
    pub fn new() -> Self {
        OrderStats {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            rng: 0x9E37_79B9,
        }
    }

    /// How many values (copies included).
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// No values.
    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// Adds one copy of `value`.
    pub fn insert(&mut self, value: f64) -> Result<(), NotFinite> {
        let value = finite(value)?;
        let priority = self.next_priority();
        self.root = self.insert_at(self.root, value, priority);
        Ok(())
    }

    /// Removes one copy of `value`; `false` when there was none.
    pub fn remove(&mut self, value: f64) -> bool {
        let Ok(value) = finite(value) else {
            return false;
        };
        let (root, removed) = self.remove_at(self.root, value);
        self.root = root;
        removed
    }

    /// Replaces the contents with the finite ones of `values` (the others left out), in any order: sorted, then
    /// built as one tree in a pass (a right spine on a stack), where inserting them one by one would cost a
    /// descent and rotations each. What a group's statistics are filled with when read after a change.
    pub fn fill(&mut self, values: impl IntoIterator<Item = f64>) {
        self.clear();
        for value in values {
            if let Ok(value) = finite(value) {
                self.nodes.push(Node {
                    value,
                    copies: 1,
                    size: 1,
                    sum: value,
                    priority: 0,
                    left: NIL,
                    right: NIL,
                });
            }
        }
        crate::sort::sort_by(&mut self.nodes, |a, b| a.value.total_cmp(&b.value));
        // Equal values share a node, as `insert` makes them.
        self.nodes.dedup_by(|next, kept| {
            let same = next.value == kept.value;
            kept.copies += u32::from(same);
            same
        });
        // The nodes in value order, each below the spine's last node of a higher priority; a node leaves the
        // spine complete (its right child the one that left before it), so its size and sum are final then.
        let mut spine: Vec<u32> = Vec::new();
        for t in 0..self.nodes.len() as u32 {
            let priority = self.next_priority();
            let mut left = NIL;
            while let Some(&top) = spine.last() {
                if self.nodes[top as usize].priority >= priority {
                    break;
                }
                spine.pop();
                self.update(top);
                left = top;
            }
            let node = &mut self.nodes[t as usize];
            node.priority = priority;
            node.left = left;
            if let Some(&top) = spine.last() {
                self.nodes[top as usize].right = t;
            }
            spine.push(t);
        }
        self.root = spine.first().copied().unwrap_or(NIL);
        while let Some(top) = spine.pop() {
            self.update(top);
        }
    }

    /// Removes every value, keeping the room they took for the next.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.free.clear();
        self.root = NIL;
    }

    /// The smallest value.
    pub fn min(&self) -> Option<f64> {
        let mut t = self.root;
        if t == NIL {
            return None;
        }
        while self.nodes[t as usize].left != NIL {
            t = self.nodes[t as usize].left;
        }
        Some(self.nodes[t as usize].value)
    }

    /// The largest value.
    pub fn max(&self) -> Option<f64> {
        let mut t = self.root;
        if t == NIL {
            return None;
        }
        while self.nodes[t as usize].right != NIL {
            t = self.nodes[t as usize].right;
        }
        Some(self.nodes[t as usize].value)
    }

    /// The sum of the values: `0.0` when empty; overflows to ±∞ past `f64::MAX`.
    ///
    /// Each node keeps its subtree's sum, recomputed from its children on every change, so the sum is a function
    /// of the current contents and tree shape only: no rounding error survives the removal of the values that
    /// caused it (a running `+=`/`-=` total would keep them forever). Its error is at most about
    /// `(height + 1) · ε · Σ|x|`.
    pub fn sum(&self) -> f64 {
        if self.root == NIL {
            0.0
        } else {
            self.nodes[self.root as usize].sum
        }
    }

    /// The arithmetic mean.
    pub fn mean(&self) -> Option<f64> {
        let n = self.len();
        (n > 0).then(|| self.sum() / n as f64)
    }

    /// The value at 0-based `rank` in ascending order (copies counted).
    pub fn nth(&self, rank: usize) -> Option<f64> {
        let mut rank = u32::try_from(rank).ok()?;
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            let left = self.size(node.left);
            if rank < left {
                t = node.left;
            } else if rank < left + node.copies {
                return Some(node.value);
            } else {
                rank -= left + node.copies;
                t = node.right;
            }
        }
        None
    }

    /// The nearest-rank quantile at `per_mille` thousandths (500 = median, 950 = p95; clamped to 0..=1000).
    pub fn quantile(&self, per_mille: u32) -> Option<f64> {
        self.nth(nearest_rank(self.len(), per_mille)?)
    }

    /// How many values are `<= x`.
    pub fn count_at_most(&self, x: f64) -> usize {
        let mut count = 0u64;
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            if x < node.value {
                t = node.left;
            } else {
                count += u64::from(self.size(node.left) + node.copies);
                t = node.right;
            }
        }
        count as usize
    }

    /// How many values are `> x` (e.g. hosts above a CPU threshold).
    pub fn count_above(&self, x: f64) -> usize {
        self.len() - self.count_at_most(x)
    }

    /// How many values are `< x`.
    pub fn count_below(&self, x: f64) -> usize {
        let mut count = 0u64;
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            if x <= node.value {
                t = node.left;
            } else {
                count += u64::from(self.size(node.left) + node.copies);
                t = node.right;
            }
        }
        count as usize
    }

    /// The tree's height (0 when empty); O(n), for tests of the balance.
    pub fn height(&self) -> usize {
        let mut deepest = 0;
        let mut stack = Vec::new();
        if self.root != NIL {
            stack.push((self.root, 1));
        }
        while let Some((t, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            let node = &self.nodes[t as usize];
            for child in [node.left, node.right] {
                if child != NIL {
                    stack.push((child, depth + 1));
                }
            }
        }
        deepest
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size
        }
    }

    fn subtree_sum(&self, t: u32) -> f64 {
        if t == NIL {
            0.0
        } else {
            self.nodes[t as usize].sum
        }
    }

    fn update(&mut self, t: u32) {
        let node = &self.nodes[t as usize];
        let size = self.size(node.left) + node.copies + self.size(node.right);
        let sum = self.subtree_sum(node.left)
            + node.value * f64::from(node.copies)
            + self.subtree_sum(node.right);
        let node = &mut self.nodes[t as usize];
        node.size = size;
        node.sum = sum;
    }

    fn next_priority(&mut self) -> u32 {
        // xorshift32: plenty for treap priorities, and deterministic.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    fn alloc(&mut self, value: f64, priority: u32) -> u32 {
        let node = Node {
            value,
            copies: 1,
            size: 1,
            sum: value,
            priority,
            left: NIL,
            right: NIL,
        };
        match self.free.pop() {
            Some(t) => {
                self.nodes[t as usize] = node;
                t
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn insert_at(&mut self, t: u32, value: f64, priority: u32) -> u32 {
        if t == NIL {
            return self.alloc(value, priority);
        }
        let here = self.nodes[t as usize].value;
        if value == here {
            self.nodes[t as usize].copies += 1;
            self.update(t);
            return t;
        }
        let mut t = t;
        if value < here {
            let child = self.insert_at(self.nodes[t as usize].left, value, priority);
            self.nodes[t as usize].left = child;
            if self.nodes[child as usize].priority > self.nodes[t as usize].priority {
                t = self.rotate_right(t);
            }
        } else {
            let child = self.insert_at(self.nodes[t as usize].right, value, priority);
            self.nodes[t as usize].right = child;
            if self.nodes[child as usize].priority > self.nodes[t as usize].priority {
                t = self.rotate_left(t);
            }
        }
        self.update(t);
        t
    }

    fn remove_at(&mut self, t: u32, value: f64) -> (u32, bool) {
        if t == NIL {
            return (NIL, false);
        }
        let here = self.nodes[t as usize].value;
        let removed = if value < here {
            let (child, removed) = self.remove_at(self.nodes[t as usize].left, value);
            self.nodes[t as usize].left = child;
            removed
        } else if value > here {
            let (child, removed) = self.remove_at(self.nodes[t as usize].right, value);
            self.nodes[t as usize].right = child;
            removed
        } else if self.nodes[t as usize].copies > 1 {
            self.nodes[t as usize].copies -= 1;
            true
        } else {
            let node = &mut self.nodes[t as usize];
            let (left, right) = (node.left, node.right);
            node.copies = 0;
            self.free.push(t);
            return (self.merge(left, right), true);
        };
        if removed {
            self.update(t);
        }
        (t, removed)
    }

    /// Joins two treaps whose values are all ordered (`a` before `b`).
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let child = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = child;
            self.update(a);
            a
        } else {
            let child = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = child;
            self.update(b);
            b
        }
    }

    fn rotate_right(&mut self, t: u32) -> u32 {
        let l = self.nodes[t as usize].left;
        self.nodes[t as usize].left = self.nodes[l as usize].right;
        self.nodes[l as usize].right = t;
        self.update(t);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, t: u32) -> u32 {
        let r = self.nodes[t as usize].right;
        self.nodes[t as usize].right = self.nodes[r as usize].left;
        self.nodes[r as usize].left = t;
        self.update(t);
        self.update(r);
        r
    }
}

/// The 0-based index of the nearest-rank `per_mille` quantile among `n` sorted values; `None` when `n == 0`.
pub fn nearest_rank(n: usize, per_mille: u32) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let per_mille = u64::from(per_mille.min(1000));
    let rank = (n as u64 * per_mille).div_ceil(1000).max(1);
    Some(rank as usize - 1)
}

fn finite(value: f64) -> Result<f64, NotFinite> {
    if value.is_finite() {
        // Folds -0.0 into 0.0, so the two never look like different values.
        Ok(value + 0.0)
    } else {
        Err(NotFinite(value))
    }
}

#[cfg(test)]
#[path = "order_stats_tests.rs"]
mod tests;
