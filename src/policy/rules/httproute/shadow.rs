//! `shadowedMatch`: two routes on the same listener with the same hostname and an identical
//! match. Per the Gateway API's precedence (httproute_types.go `HTTPRouteRule.matches`) the
//! older route takes every such request (then the first by `namespace/name`), so the newer
//! route's rule never runs and its weights split nothing.
//!
//! Only what certainly competes is judged:
//! - both routes attach to a common listener (see [`super::attach`]): a route known not to
//!   attach, by its Gateway's listeners or by a controller's `Accepted: False`, competes with
//!   nobody;
//! - they serve the same hostname there (the intersection with the listener's hostname: a
//!   route without hostnames on a `shop.example.com` listener serves `shop.example.com`); a more
//!   specific hostname wins outright, so `*.example.com` and `shop.example.com` do not tie;
//! - their rules for that match do something different: two routes that send the same requests
//!   to the same backends with the same filters split nothing whichever wins
//!   (the conformance suite's `gateway-with-attached-routes` attaches two such routes);
//! - mesh routes (GEP-1294) compete only within one namespace: producer routes (in the
//!   Service's namespace) apply to everyone else, consumer routes only to their own namespace.
//!
//! Denied only when the route that wins is in the same namespace: a route in another namespace
//! never blocks this one's write (it is a warning naming who to talk to).

use std::collections::{BTreeMap, BTreeSet};

use super::attach::{attach, Listeners};
use super::{finding, GATEWAY_GROUP};
use crate::policy::finding::{Finding, Severity};
use crate::policy::gateway::{hostnames_that_may_serve, text_fingerprint, HttpRoute};
use crate::policy::objects::{HttpRouteInfo, ObjectKey, RouteParent};
use crate::policy::view::ClusterView;

/// Most hostname + match pairs named in one message.
const MAX_LISTED: usize = 3;

/// Where two routes meet: one parent, the listener when known, one hostname.
struct Place<'a> {
    parent: &'a RouteParent,
    listener: Option<&'a str>,
    hostname: &'a str,
}

impl Place<'_> {
    fn describe(&self) -> String {
        let listener = self
            .listener
            .map(|l| format!(" listener {l}"))
            .unwrap_or_default();
        let host = if self.parent.is_service() {
            String::new()
        } else if self.hostname.is_empty() {
            " any hostname".to_owned()
        } else {
            format!(" hostname {}", self.hostname)
        };
        format!("{}{listener}{host}", display_parent(&self.parent.parent))
    }
}

/// The Gateway API's tie-break between routes with identical matches: whether `a` takes the
/// requests rather than `b`, and why. A route without a creation timestamp is being created
/// (newest); manifests read by `check` have none at all, so the name decides there.
pub(super) fn precedence(a: &HttpRouteInfo, b: &HttpRouteInfo) -> (bool, &'static str) {
    match (&a.created, &b.created) {
        (Some(x), Some(y)) if x != y => (x < y, "by creation time"),
        (Some(_), None) => (true, "by creation time"),
        (None, Some(_)) => (false, "by creation time"),
        _ => (
            a.key.to_string() < b.key.to_string(),
            "created at the same time, by namespace/name",
        ),
    }
}

/// `group/kind/namespace/name` as a message names it (`Gateway gateways/public`).
pub(super) fn display_parent(parent: &str) -> String {
    let mut parts = parent.splitn(4, '/');
    let (group, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (namespace, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if group == GATEWAY_GROUP || group.is_empty() {
        format!("{kind} {namespace}/{name}")
    } else {
        format!("{kind}.{group} {namespace}/{name}")
    }
}

/// Whether `other` serves `hostname` on `listener` (when known) of `mine`'s parent: false when
/// it is known not to attach there (by the Gateway's listeners or a controller's status).
fn other_serves(
    view: &dyn ClusterView,
    other: &HttpRouteInfo,
    mine: &RouteParent,
    listener: Option<&str>,
    hostname: &str,
) -> bool {
    other
        .parents
        .iter()
        .filter(|p| p.parent == mine.parent && !p.rejected)
        .any(
            |p| match attach(view, &other.key.namespace, &other.hostnames, p) {
                Err(_) => false,
                Ok(Listeners::Known(listeners)) => listeners.iter().any(|l| {
                    listener.is_none_or(|name| name == l.name)
                        && l.hostnames.iter().any(|h| h == hostname)
                }),
                Ok(Listeners::Service) => p.overlaps(mine),
                Ok(Listeners::Unknown) => {
                    p.overlaps(mine) && other.hostname_keys_on(p).contains(&hostname)
                }
            },
        )
}

/// Judges `me` (the route written) against the routes it shares a listener, hostname and match
/// with. `attachments` are its own parents with where each attaches (rejected ones left out).
pub(super) fn check_shadowed(
    view: &dyn ClusterView,
    route: &HttpRoute,
    me: &HttpRouteInfo,
    attachments: &[(&RouteParent, Listeners)],
    findings: &mut Vec<Finding>,
) {
    // Canonical text of each of my matches, for the messages.
    let texts: BTreeMap<u64, String> = route
        .spec
        .rules
        .iter()
        .flat_map(|rule| rule.match_keys())
        .map(|text| (text_fingerprint(&text), text))
        .collect();
    let mut places: Vec<Place<'_>> = Vec::new();
    for (parent, listeners) in attachments {
        match listeners {
            Listeners::Known(attached) => {
                for listener in attached {
                    for hostname in &listener.hostnames {
                        places.push(Place {
                            parent,
                            listener: Some(&listener.name),
                            hostname,
                        });
                    }
                }
            }
            Listeners::Service | Listeners::Unknown => {
                for hostname in me.hostname_keys_on(parent) {
                    places.push(Place {
                        parent,
                        listener: None,
                        hostname,
                    });
                }
            }
        }
    }

    // (Other route, why it comes first or after) → where and which match, split by who wins
    // and whether it is in this route's namespace.
    let mut lost: BTreeMap<(ObjectKey, &str), BTreeSet<String>> = BTreeMap::new();
    let mut taken: BTreeMap<(ObjectKey, &str), BTreeSet<String>> = BTreeMap::new();
    for place in &places {
        let lookups = match place.listener {
            // A listener's hostname may turn another route's wildcard or empty hostnames into
            // this one, so every posting that can serve it is looked in.
            Some(_) => hostnames_that_may_serve(place.hostname),
            None => vec![place.hostname.to_owned()],
        };
        let mut seen: BTreeSet<ObjectKey> = BTreeSet::new();
        for lookup in &lookups {
            for other in view.http_routes_sharing(&place.parent.parent, lookup) {
                if other.key == me.key || !seen.insert(other.key.clone()) {
                    continue;
                }
                // GEP-1294: mesh routes of one Service merge only within a namespace.
                if place.parent.is_service() && other.key.namespace != me.key.namespace {
                    continue;
                }
                if !other_serves(view, &other, place.parent, place.listener, place.hostname) {
                    continue;
                }
                let shared = me.matches.iter().filter(|m| {
                    other
                        .action_for(m.requests)
                        .is_some_and(|action| action != m.action)
                });
                let (other_wins, why) = precedence(&other, me);
                for m in shared {
                    let text = texts.get(&m.requests).map_or("", String::as_str);
                    let side = if other_wins { &mut lost } else { &mut taken };
                    side.entry((other.key.clone(), why))
                        .or_default()
                        .insert(format!("{}: {text}", place.describe()));
                }
            }
        }
    }

    let listed = |places: &BTreeSet<String>| {
        let shown: Vec<&str> = places.iter().take(MAX_LISTED).map(String::as_str).collect();
        match places.len().saturating_sub(MAX_LISTED) {
            0 => shown.join("; "),
            more => format!("{} and {more} more", shown.join("; ")),
        }
    };
    for ((other, why), places) in &lost {
        if other.namespace == me.key.namespace {
            findings.push(finding(
                "shadowedMatch",
                Severity::Deny,
                format!(
                    "HTTPRoute {other} has the identical match and comes first ({why}): {}; the \
                     Gateway gives identical matches to the oldest route, so this route's rules \
                     never receive those requests and their weights split nothing; put the split \
                     into {other}, or make this route's matches differ (a header match for the \
                     canary, a hostname)",
                    listed(places)
                ),
            ));
        } else {
            findings.push(finding(
                "shadowedMatch",
                Severity::Warn,
                format!(
                    "HTTPRoute {other} (another namespace) has the identical match and comes first \
                     ({why}): {}; those requests go to its backends, not this route's; agree with \
                     its owners who routes them, or make this route's matches differ",
                    listed(places)
                ),
            ));
        }
    }
    for ((other, why), places) in &taken {
        findings.push(finding(
            "shadowedMatch",
            Severity::Warn,
            format!(
                "HTTPRoute {other} has the identical match and comes after this route ({why}): \
                 {}; the Gateway sends those requests here, not to {other}'s backends",
                listed(places)
            ),
        ));
    }
}
