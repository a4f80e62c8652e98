//! `Labels`: a small string map in two allocations, for label maps, selectors and annotations
//! the store keeps for every object.
//!
//! A `BTreeMap<String, String>` costs one B-tree node (about half a kilobyte) plus two
//! allocations per entry, and the store keeps several such maps per object: with tens of
//! thousands of objects those maps were most of the store. Here all keys and values live in one
//! string, sorted by key, with one offset array; maps this small are read by binary search or a
//! scan, never edited in place (a changed object is re-read whole).

use std::collections::BTreeMap;
use std::fmt;

/// A sorted, immutable map of strings (keys unique; on duplicate keys the last value wins, as
/// when inserting into a map in order).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Every key and value, concatenated in key order: `key0 value0 key1 value1 …`.
    text: Box<str>,
    /// End offset in `text` of each key and each value (`2 × len` entries).
    ends: Box<[u32]>,
}

impl Labels {
    /// The empty map (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn part(&self, index: usize) -> &str {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        // `get`: offsets saturate at u32::MAX (see `offset`), so a map over 4 GiB, which no
        // request or watch can carry, would read as empty strings rather than panic.
        self.text
            .get(start..self.ends[index] as usize)
            .unwrap_or_default()
    }

    fn key_at(&self, entry: usize) -> &str {
        self.part(2 * entry)
    }

    fn value_at(&self, entry: usize) -> &str {
        self.part(2 * entry + 1)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.key_at(middle).cmp(key) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(self.value_at(middle)),
            }
        }
        None
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + '_ {
        (0..self.len()).map(|entry| (self.key_at(entry), self.value_at(entry)))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        (0..self.len()).map(|entry| self.key_at(entry))
    }

    /// Builds from entries sorted by key with unique keys.
    fn from_sorted<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for (key, value) in entries {
            text.push_str(key);
            ends.push(offset(text.len()));
            text.push_str(value);
            ends.push(offset(text.len()));
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

/// Offsets are `u32`: a label map over 4 GiB cannot come through a webhook or a watch (request
/// bodies are limited far below), so saturating keeps this total without a failure path.
fn offset(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut entries: Vec<(K, V)> = entries.into_iter().collect();
        // Stable sort, then keep the last of equal keys: the map semantics of inserting in order.
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut unique: Vec<(&str, &str)> = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            match unique.last_mut() {
                Some(last) if last.0 == key.as_ref() => last.1 = value.as_ref(),
                _ => unique.push((key.as_ref(), value.as_ref())),
            }
        }
        Self::from_sorted(unique.into_iter())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        Self::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::from(&map)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered as the same entries in a `BTreeMap` would be.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back exactly what a `BTreeMap` built from the same entries holds, in the same
    /// order, whatever the input order and however many duplicates and empty strings.
    #[test]
    fn reads_like_the_btreemap_it_replaces() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("app", "web")],
            vec![
                ("version", "v2"),
                ("app", "web"),
                ("app.kubernetes.io/name", ""),
            ],
            vec![("", ""), ("b", "1"), ("a", "2"), ("b", "3"), ("a", "")],
            (0..40)
                .map(|n| (["k", "key", "z", "a/b"][n % 4], ["x", "", "yy"][n % 3]))
                .collect(),
        ];
        for entries in cases {
            let map: BTreeMap<String, String> = entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let labels: Labels = entries.iter().copied().collect();
            assert_eq!(labels.len(), map.len(), "{entries:?}");
            assert_eq!(labels.is_empty(), map.is_empty());
            let listed: Vec<(&str, &str)> = labels.iter().collect();
            let expected: Vec<(&str, &str)> =
                map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(listed, expected, "{entries:?}");
            for (key, value) in &map {
                assert_eq!(
                    labels.get(key),
                    Some(value.as_str()),
                    "{key} in {entries:?}"
                );
            }
            for absent in ["absent", "app.kubernetes.io", "zz", "0"] {
                assert_eq!(labels.get(absent), map.get(absent).map(String::as_str));
            }
            assert_eq!(Labels::from(&map), labels, "same entries, same value");
            assert_eq!(format!("{labels:?}"), format!("{map:?}"));
        }
    }

    #[test]
    fn orders_like_a_btreemap() {
        let a = Labels::from([("app", "web")]);
        let b = Labels::from([("app", "web"), ("tier", "x")]);
        let c = Labels::from([("app", "wec")]);
        assert!(a < b && b < c && a < c);
        assert!(Labels::new() < a);
    }
}
