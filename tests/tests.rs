//! The one integration test binary: every test module below shares the temp-dir harness in
//! `common`. Run with `cargo test` (or `cargo nextest run`).

mod common;

mod chaos;
mod cli;
mod cloud_scenario;
mod crash;
mod guards;
mod keyring;
mod mail;
mod mount;
mod planner;
mod property;
mod resync;
mod service;
mod side_s3;
mod side_webdav;
mod tidy;
