//! The one integration test binary: every test module below shares the temp-dir harness in
//! `common`. Run with `cargo test` (or `cargo nextest run`).

mod common;

mod chaos;
mod cli;
// Unix only: it starts Linux test servers (moto, rclone, wsgidav) that a Windows test
// binary under wine cannot run.
#[cfg(unix)]
mod cloud_scenario;
mod crash;
mod guards;
// Unix only: it starts dbus-daemon and gnome-keyring-daemon (and rclone), Linux programs
// that a Windows test binary under wine cannot run; the Windows Credential Manager store
// is compiled, not run, here.
#[cfg(unix)]
mod keyring;
mod mail;
mod mount;
mod planner;
mod property;
mod resync;
mod service;
// Unix only: it starts Linux test servers (moto, `rclone serve s3`) that a Windows test
// binary under wine cannot run.
#[cfg(unix)]
mod side_s3;
// Unix only: it starts Linux test servers (wsgidav, `rclone serve webdav`) that a
// Windows test binary under wine cannot run.
#[cfg(unix)]
mod side_webdav;
mod tidy;
