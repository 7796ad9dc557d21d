//! The engine: one sync of a pair, from two sides and a base to a durable result.
//! [`scan`] reads a side's tree (metadata only), [`plan`] decides (pure: no I/O, no clock),
//! [`exec`] applies a plan safely, [`sync`] is the pipeline that runs them in order with
//! the guards (roots, mass deletions) and records what happened in the state store.
//! Must not touch: the configuration file, the service, the web UI.

pub mod exec;
pub mod pair;
pub mod plan;
pub mod records;
pub mod scan;
pub mod sync;
