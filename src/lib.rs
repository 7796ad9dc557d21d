//! Tandem: a two-way folder synchroniser that never loses a version.
//!
//! Functional core, imperative shell: [`plan`] is a pure function of three trees (left,
//! right, base); everything that touches the disk goes through [`fs::Fs`]; [`api`] is the
//! one façade the CLI the continuous service, the web UI's API and the desktop app call. See ARCHITECTURE.md.

pub mod api;
pub mod config;
pub mod desktop;
pub mod events;
pub mod exec;
pub mod fs;
pub mod http;
pub mod model;
pub mod notify;
pub mod plan;
pub mod scan;
pub mod schedule;
pub mod service;
pub mod state;
pub mod throttle;
pub mod watch;
