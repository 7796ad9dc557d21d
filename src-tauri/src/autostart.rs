//! The start-at-login entry: writes or removes it as the `[desktop] autostart` setting says,
//! through `tandem::desktop` (which decides the entry's place and contents). Must not decide
//! whether Tandem starts at login, nor touch any other file.

use std::path::Path;

/// Make the start-at-login entry match the setting.
pub fn apply(config: &Path, enabled: bool) {
    #[cfg(target_os = "linux")]
    {
        use tandem::desktop;
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("autostart: cannot tell this program's path: {e}");
                return;
            }
        };
        match desktop::set_autostart(&desktop::autostart_file(), enabled, &exe, config) {
            Ok(true) => tracing::info!(enabled, file = %desktop::autostart_file().display(), "autostart entry updated"),
            Ok(false) => {}
            Err(e) => tracing::warn!("autostart: {e}"),
        }
    }
    // Windows: the user's "Run" registry value.
    #[cfg(windows)]
    {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("autostart: cannot tell this program's path: {e}");
                return;
            }
        };
        match tandem::desktop::set_autostart_windows(enabled, &exe, config) {
            Ok(true) => tracing::info!(enabled, "autostart entry (HKCU Run) updated"),
            Ok(false) => {}
            Err(e) => tracing::warn!("autostart: {e}"),
        }
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    if enabled {
        let _ = config;
        tracing::warn!("autostart: start at login is not set up on this platform yet");
    }
}
