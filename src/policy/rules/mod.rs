//! Rules, one module per resource kind, each exposing the table of rules the engine runs.

pub mod deployment;
pub mod httproute;
pub mod ingress;
pub mod service;
