//! rollout-guard: a Kubernetes admission webhook and policy engine that keeps releases safe.
//!
//! Layers point one way: `server` (HTTP/TLS edge) → `admission` (decode, dispatch, respond) →
//! `policy` (pure rules). The store and the policy reloader feed the core only through the
//! `ClusterView` trait and an `Arc` of the active `PolicySet`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admission;
pub mod audit;
pub mod certs;
pub mod check;
pub mod cli;
pub mod evaluate;
pub mod formats;
pub mod manifest;
pub mod policy;
pub mod policytest;
pub mod reload;
pub mod server;
pub mod store;
#[cfg(test)]
pub mod testing;
