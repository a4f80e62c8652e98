//! The ReplicaSets of each Deployment, as the rollback rule looks them up.
//!
//! A cluster keeps up to `revisionHistoryLimit` (default 10) ReplicaSets per Deployment, so this
//! is the store's most numerous kind: each entry is a [`ReplicaSetInfo`] (a 16-byte template
//! digest, the revision and two counts; no template, labels or managedFields), and the
//! namespace and Deployment names every ReplicaSet of a Deployment carries are one shared
//! string each, not a copy per ReplicaSet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::policy::objects::{ObjectKey, ReplicaSetInfo, Shared};

/// ReplicaSets by key and by owning Deployment.
#[derive(Debug, Default)]
pub struct ReplicaSetIndex {
    /// Every kept ReplicaSet.
    by_key: HashMap<ObjectKey, Shared<ReplicaSetInfo>>,
    /// The ReplicaSets of each Deployment (`namespace`, Deployment name), in name order.
    by_owner: HashMap<ObjectKey, Vec<Shared<ReplicaSetInfo>>>,
    /// Namespace and Deployment names, one allocation each however many ReplicaSets carry them;
    /// dropped when nothing refers to them any more.
    names: HashSet<Arc<str>>,
}

impl ReplicaSetIndex {
    fn intern(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        self.names.insert(name.clone());
        name.clone()
    }

    /// Forgets an interned name no entry uses (a reader still holding an old entry keeps it
    /// alive until the next relist: harmless).
    fn release(&mut self, name: &str) {
        if self
            .names
            .get(name)
            .is_some_and(|shared| Arc::strong_count(shared) == 1)
        {
            self.names.remove(name);
        }
    }

    /// Adds or replaces a ReplicaSet.
    pub fn apply(&mut self, mut info: ReplicaSetInfo) {
        self.delete(&info.key);
        info.key.namespace = self.intern(&info.key.namespace);
        info.owner = self.intern(&info.owner);
        let owner = ObjectKey {
            namespace: info.key.namespace.clone(),
            name: info.owner.clone(),
        };
        let info = Arc::new(info);
        let siblings = self.by_owner.entry(owner).or_default();
        let at = siblings
            .binary_search_by(|other| other.key.name.cmp(&info.key.name))
            .unwrap_or_else(|at| at);
        siblings.insert(at, info.clone());
        self.by_key.insert(info.key.clone(), info);
    }

    /// Removes a ReplicaSet.
    pub fn delete(&mut self, key: &ObjectKey) {
        let Some(old) = self.by_key.remove(key) else {
            return;
        };
        let owner = ObjectKey {
            namespace: old.key.namespace.clone(),
            name: old.owner.clone(),
        };
        if let Some(siblings) = self.by_owner.get_mut(&owner) {
            siblings.retain(|other| other.key != *key);
            if siblings.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
        // Owned copies: the shared names may only be released once nothing here holds them.
        let (namespace, owner_name) = (old.key.namespace.to_string(), old.owner.to_string());
        drop((owner, old));
        self.release(&namespace);
        self.release(&owner_name);
    }

    /// How many ReplicaSets are kept.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// See [`crate::policy::view::ClusterView::replica_sets_of`].
    pub fn of(&self, namespace: &str, deployment: &str) -> Vec<Shared<ReplicaSetInfo>> {
        self.by_owner
            .get(&ObjectKey::new(namespace, deployment))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::objects::TemplateDigest;

    fn info(namespace: &str, name: &str, owner: &str, revision: u32) -> ReplicaSetInfo {
        ReplicaSetInfo {
            key: ObjectKey::new(namespace, name),
            owner: Arc::from(owner),
            revision,
            template: TemplateDigest([revision as u8; 16]),
            replicas: 1,
            available_replicas: 1,
        }
    }

    fn names(found: &[Shared<ReplicaSetInfo>]) -> Vec<&str> {
        found.iter().map(|r| &*r.key.name).collect()
    }

    #[test]
    fn replica_sets_are_grouped_by_owner_and_share_its_names() {
        let mut index = ReplicaSetIndex::default();
        index.apply(info("shop", "web-b", "web", 2));
        index.apply(info("shop", "web-a", "web", 1));
        index.apply(info("shop", "api-a", "api", 1));
        index.apply(info("other", "web-c", "web", 1));
        assert_eq!(names(&index.of("shop", "web")), ["web-a", "web-b"]);
        assert_eq!(names(&index.of("other", "web")), ["web-c"]);
        assert!(index.of("shop", "db").is_empty());
        assert_eq!(index.len(), 4);

        let web = index.of("shop", "web");
        assert!(Arc::ptr_eq(&web[0].owner, &web[1].owner), "owner interned");
        assert!(Arc::ptr_eq(&web[0].key.namespace, &web[1].key.namespace));
        // "shop", "other", "web", "api".
        assert_eq!(index.names.len(), 4);
        drop(web);

        // Re-applying moves nothing and duplicates nothing.
        index.apply(info("shop", "web-a", "web", 3));
        assert_eq!(index.of("shop", "web")[0].revision, 3);
        assert_eq!(index.len(), 4);

        index.delete(&ObjectKey::new("shop", "api-a"));
        index.delete(&ObjectKey::new("other", "web-c"));
        index.delete(&ObjectKey::new("other", "missing"));
        assert_eq!(index.len(), 2);
        let mut left: Vec<String> = index.names.iter().map(|n| n.to_string()).collect();
        left.sort();
        assert_eq!(left, ["shop", "web"], "unused names are dropped");
        index.delete(&ObjectKey::new("shop", "web-a"));
        index.delete(&ObjectKey::new("shop", "web-b"));
        assert!(index.is_empty() && index.by_owner.is_empty() && index.names.is_empty());
    }
}
