//! The ReplicaSets of each Deployment, as the rollback rule looks them up.
//!
//! A cluster keeps up to `revisionHistoryLimit` (default 10) ReplicaSets per Deployment, so this
//! is the store's most numerous kind, and it is kept as small as the lookup allows: per
//! Deployment one entry holding its ReplicaSets inline (name, revision, two counts and the
//! 16-byte template digest: no template, labels or managedFields), the namespace string shared
//! by every entry of the namespace, and no second map by ReplicaSet name. A delete, which names
//! only the ReplicaSet, finds its Deployment from the name: the controller names a ReplicaSet
//! `<deployment>-<pod-template-hash>`; the few named otherwise (adopted ones) are remembered in
//! a small side map. bench/store_memory.rs measures the bytes per ReplicaSet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::policy::objects::{ObjectKey, ReplicaSetInfo, Shared, TemplateDigest};

/// One ReplicaSet inside its Deployment's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Arc<str>,
    revision: u32,
    template: TemplateDigest,
    replicas: i32,
    available_replicas: i32,
}

/// ReplicaSets by owning Deployment.
#[derive(Debug, Default)]
pub struct ReplicaSetIndex {
    /// The ReplicaSets of each Deployment (`namespace`, Deployment name), in name order.
    by_owner: HashMap<ObjectKey, Vec<Entry>>,
    /// The owner of each ReplicaSet whose name is not `<owner>-<suffix without '-'>`.
    irregular: HashMap<ObjectKey, Arc<str>>,
    /// Namespace names, one allocation each however many entries carry them.
    namespaces: HashSet<Arc<str>>,
    count: usize,
}

/// The Deployment the controller's naming gives `name` (`web-5d8f7c9b6` → `web`).
fn named_owner(name: &str) -> Option<&str> {
    name.rsplit_once('-').map(|(owner, _)| owner)
}

impl ReplicaSetIndex {
    fn namespace(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.namespaces.get(name) {
            return shared.clone();
        }
        self.namespaces.insert(name.clone());
        name.clone()
    }

    /// Adds or replaces a ReplicaSet.
    pub fn apply(&mut self, info: ReplicaSetInfo) {
        self.delete(&info.key);
        let namespace = self.namespace(&info.key.namespace);
        if named_owner(&info.key.name) != Some(&*info.owner) {
            self.irregular.insert(
                ObjectKey {
                    namespace: namespace.clone(),
                    name: info.key.name.clone(),
                },
                info.owner.clone(),
            );
        }
        let kept = Entry {
            name: info.key.name,
            revision: info.revision,
            template: info.template,
            replicas: info.replicas,
            available_replicas: info.available_replicas,
        };
        let siblings = self
            .by_owner
            .entry(ObjectKey {
                namespace,
                name: info.owner,
            })
            .or_default();
        let at = siblings
            .binary_search_by(|other| other.name.cmp(&kept.name))
            .unwrap_or_else(|at| at);
        siblings.insert(at, kept);
        siblings.shrink_to_fit();
        self.count += 1;
    }

    /// Removes a ReplicaSet.
    pub fn delete(&mut self, key: &ObjectKey) {
        let owner = match self.irregular.remove(key) {
            Some(owner) => owner,
            None => match named_owner(&key.name) {
                Some(owner) => Arc::from(owner),
                None => return,
            },
        };
        let owner_key = ObjectKey {
            namespace: key.namespace.clone(),
            name: owner,
        };
        let Some(siblings) = self.by_owner.get_mut(&owner_key) else {
            return;
        };
        let Ok(at) = siblings.binary_search_by(|other| (*other.name).cmp(&key.name)) else {
            return;
        };
        siblings.remove(at);
        self.count -= 1;
        if siblings.is_empty() {
            self.by_owner.remove(&owner_key);
            drop(owner_key);
            // The namespace string is dropped once no entry of the namespace is left.
            if self
                .namespaces
                .get(&*key.namespace)
                .is_some_and(|shared| Arc::strong_count(shared) == 1)
            {
                self.namespaces.remove(&*key.namespace);
            }
        }
    }

    /// How many ReplicaSets are kept.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// See [`crate::policy::view::ClusterView::replica_sets_of`].
    pub fn of(&self, namespace: &str, deployment: &str) -> Vec<Shared<ReplicaSetInfo>> {
        let Some((owner, siblings)) = self
            .by_owner
            .get_key_value(&ObjectKey::new(namespace, deployment))
        else {
            return Vec::new();
        };
        siblings
            .iter()
            .map(|kept| {
                Arc::new(ReplicaSetInfo {
                    key: ObjectKey {
                        namespace: owner.namespace.clone(),
                        name: kept.name.clone(),
                    },
                    owner: owner.name.clone(),
                    revision: kept.revision,
                    template: kept.template,
                    replicas: kept.replicas,
                    available_replicas: kept.available_replicas,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Adopted, named by hand: not `<owner>-<hash>`.
        index.apply(info("shop", "legacy-web", "web", 5));
        index.apply(info("shop", "web-canary-x", "web", 6));
        assert_eq!(
            names(&index.of("shop", "web")),
            ["legacy-web", "web-a", "web-b", "web-canary-x"]
        );
        assert_eq!(names(&index.of("other", "web")), ["web-c"]);
        assert!(index.of("shop", "db").is_empty());
        assert_eq!(index.len(), 6);
        assert_eq!(index.irregular.len(), 2);

        let web = index.of("shop", "web");
        assert!(Arc::ptr_eq(&web[0].owner, &web[1].owner), "owner shared");
        assert!(Arc::ptr_eq(
            &web[0].key.namespace,
            &index.of("shop", "api")[0].key.namespace
        ));
        assert_eq!(web[0].revision, 5);
        drop(web);

        // Re-applying replaces and duplicates nothing.
        index.apply(info("shop", "web-a", "web", 3));
        assert_eq!(index.of("shop", "web")[1].revision, 3);
        assert_eq!(index.len(), 6);

        index.delete(&ObjectKey::new("shop", "api-a"));
        index.delete(&ObjectKey::new("other", "web-c"));
        index.delete(&ObjectKey::new("other", "missing"));
        index.delete(&ObjectKey::new("shop", "nodash"));
        index.delete(&ObjectKey::new("shop", "legacy-web"));
        index.delete(&ObjectKey::new("shop", "web-canary-x"));
        assert_eq!(names(&index.of("shop", "web")), ["web-a", "web-b"]);
        assert_eq!(index.len(), 2);
        assert!(index.irregular.is_empty());
        let left: Vec<&str> = index.namespaces.iter().map(|n| &**n).collect();
        assert_eq!(left, ["shop"], "unused namespaces are dropped");
        index.delete(&ObjectKey::new("shop", "web-a"));
        index.delete(&ObjectKey::new("shop", "web-b"));
        assert!(index.is_empty() && index.by_owner.is_empty() && index.namespaces.is_empty());
    }
}
