//! Tandem: a two-way folder synchroniser that never loses a version.
//!
//! Functional core, imperative shell. Layers, lowest first (each imports only from the
//! ones before it; `tests/tidy.rs` checks it): [`model`] (pure types and names),
//! [`side`] (the replicas: every read and write of a synced tree) and [`state`] (the
//! SQLite store), [`engine`] (scan, the pure planner, the executor and the sync pipeline),
//! [`config`] (the TOML file), [`mail`], [`service`] (the continuous service), [`api`]
//! (the façade the shells call), [`http`] and [`desktop`]. See ARCHITECTURE.md.

pub mod model;

pub mod side;
pub mod state;

pub mod engine;

pub mod config;

pub mod mail;
pub mod service;

pub mod api;

pub mod desktop;
pub mod http;
