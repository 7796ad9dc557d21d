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
    #[cfg(not(target_os = "linux"))]
    if enabled {
        let _ = config;
        tracing::warn!("autostart: start at login is set up by the installer on this platform");
    }
}
