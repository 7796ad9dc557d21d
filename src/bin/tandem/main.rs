//! The `tandem` command: parses flags, calls `tandem::api`, prints, exits with the code the
//! result calls for (0 in sync, 1 some operations failed, 2 usage or config error, 3 stopped
//! by a safety guard). No sync logic lives here.
//! Layout: `cli` declares the flags, `commands` carries out one subcommand each, `output`
//! prints, `winservice` runs under the Windows service control manager; this file only
//! parses, dispatches and turns errors into exit codes.

mod cli;
mod commands;
mod output;
#[cfg(windows)]
mod winservice;

use clap::Parser;
use tandem::api::ApiError;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                0
            } else {
                2
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    commands::init_console_log(&cli);
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = match (e.downcast_ref::<ApiError>(), e.downcast_ref::<tandem::config::ConfigError>()) {
                (Some(api), _) => (api.exit_code(), format!("{api} [{}]", api.code())),
                (None, Some(c)) => (2, format!("{c} [config_invalid]")),
                (None, None) => (1, format!("{e:#}")),
            };
            eprintln!("tandem: {msg}");
            code
        }
    };
    std::process::exit(code);
}
