//! The user's configuration: one TOML file with global options, per-pair overrides and the
//! optional `[email]` and `[desktop]` tables. Owns parsing and validation (every error names the file, the
//! key and what was expected) and the default ignore list. Must not touch: the disk beyond
//! reading the file it is given, SQLite, the planner's decisions.
//!
//! This file holds the types and the entry points; `parse` reads TOML into the types and
//! `edit` changes the file's text in place (keeping its comments) and writes it back.

pub use crate::engine::pair::*;
pub use crate::engine::plan::{ClashOption, PropsOption, Rules};
pub use crate::model::names::*;
pub use crate::model::units::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod edit;
mod parse;

pub use edit::{edit_text, remove_schedule, write_atomic};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailGranularity {
    PerConflict,
    Summary,
    Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// An entry of the OS credential store (service `tandem`, account this name) holding
    /// the SMTP password; at most one of `password_env`, `password_file`, `keyring`.
    pub keyring: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
    /// Which mails: one kind, or several (`["per-conflict", "summary"]`).
    pub granularity: Vec<MailGranularity>,
}

/// What the desktop app shows as toasts (ordered as declared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToastKind {
    /// A new conflict waits for a decision or was settled with clash copies.
    Conflicts,
    /// A safety guard paused a pair (mass delete, root missing or emptied).
    Guard,
    /// A pair is in error, or a run ended with failed operations.
    Errors,
    /// A sync that took longer than `summary_after` finished.
    Summary,
}

/// The `[desktop]` table: the tray app's own settings (the headless service ignores it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesktopConfig {
    pub toasts: Vec<ToastKind>,
    /// A `summary` toast only after a sync that took at least this long.
    pub summary_after_ms: u64,
    /// Start the tray app when the user logs in.
    pub autostart: bool,
}

impl Default for DesktopConfig {
    fn default() -> Self {
        DesktopConfig {
            toasts: vec![ToastKind::Conflicts, ToastKind::Guard, ToastKind::Errors],
            summary_after_ms: 5 * 60_000,
            autostart: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The file this came from (for messages).
    pub file: PathBuf,
    pub state: Option<PathBuf>,
    pub defaults: SyncOptions,
    pub pairs: Vec<PairConfig>,
    pub email: Option<EmailConfig>,
    /// Where the continuous service's API listens (loopback only).
    pub listen: Option<std::net::SocketAddr>,
    /// Where the continuous service writes its rotating log files.
    pub log_dir: Option<PathBuf>,
    pub desktop: DesktopConfig,
}

impl Config {
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Config::parse(file, &text)
    }

    /// Parse and validate a config text; `file` is where it came from (errors name it, and
    /// relative folders are relative to its folder).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        parse::config(file, text)
    }

    pub fn pair(&self, name: &str) -> Option<&PairConfig> {
        self.pairs.iter().find(|p| p.name == name)
    }
}
