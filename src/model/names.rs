//! Names Tandem gives and keeps away from on every side (SPEC "naming"): the trash folder,
//! its temporary files, and the ignore patterns that leave paths out of a pair.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Name of the trash folder at each root (never synced).
pub const TRASH_DIR: &str = ".sync_trash";
/// Prefix of Tandem's own temporary files.
pub const TEMP_PREFIX: &str = ".tandem-";
/// Suffix of Tandem's own temporary files.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Ignored everywhere unless `use_default_ignores = false`.
pub const DEFAULT_IGNORES: &[&str] = &["~$*", "*.tmp", "*~", ".DS_Store", "Thumbs.db", "desktop.ini", "*.swp"];

/// One ignore pattern, compiled as Tandem matches it.
pub fn glob(p: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(p)
        .case_insensitive(true)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// Compiled ignore patterns.
#[derive(Clone, Debug)]
pub struct Ignore {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Ignore {
    /// `patterns`: the user's (glob; matched against the name, or the relative path when
    /// the pattern holds a `/`; case-insensitive); `defaults`: add [`DEFAULT_IGNORES`].
    pub fn new(patterns: &[String], defaults: bool) -> Result<Ignore, globset::Error> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        let defaults = if defaults { DEFAULT_IGNORES } else { &[] };
        for p in defaults.iter().copied().chain(patterns.iter().map(String::as_str)) {
            let p = p.trim_start_matches('/');
            if p.contains('/') {
                by_path.add(glob(p)?);
            } else {
                by_name.add(glob(p)?);
            }
        }
        Ok(Ignore {
            by_name: by_name.build()?,
            by_path: by_path.build()?,
        })
    }

    /// Whether a relative path (its last component is `name`) is ignored. The trash folder
    /// at the root and Tandem's temporary files always are.
    pub fn is_ignored(&self, rel: &str, name: &str) -> bool {
        rel == TRASH_DIR || is_temp_name(name) || self.by_name.is_match(name) || (!self.by_path.is_empty() && self.by_path.is_match(rel))
    }
}

/// Tandem's temporary copy names: `.tandem-<anything>.tmp`.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}
