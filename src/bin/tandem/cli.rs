//! The command line of `tandem`: the clap `Cli` struct, its subcommands and their flags.
//! Only declarations: the doc comments here are the `--help` text, the fields are what the
//! commands receive.
//! Must not touch: state, config files, the service or sync decisions; it only describes
//! flags (parsing is clap's, acting on them is `commands`').

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "tandem", version, about = "Two-way folder sync that never loses a version")]
pub struct Cli {
    /// State file (default: the user's data directory). A folder means FOLDER/tandem.db.
    #[arg(long, global = true, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Clone)]
pub struct Target {
    /// Left folder (ad-hoc pair, SPEC defaults).
    pub left: Option<PathBuf>,
    /// Right folder.
    pub right: Option<PathBuf>,
    /// Config file with [[pair]] tables.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this pair of the config.
    #[arg(long, value_name = "NAME")]
    pub pair: Option<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Sync once: LEFT RIGHT, or --config FILE [--pair NAME].
    Sync {
        #[command(flatten)]
        target: Target,
        /// Show the plan; change no file and no state.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per line: actions, then a summary.
        #[arg(long)]
        json: bool,
        /// Go ahead even when a side is empty or more than max_delete_percent of the files
        /// would be deleted (a missing root still stops).
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// Forget what the state knows at and below PATH and decide again from both sides:
    /// equal contents become synced, different ones get clash copies, one-sided ones are
    /// copied; nothing is deleted. PATH is relative to the pair, or absolute below a root.
    Resync {
        path: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Dry-run summary: files on each side, only left, only right, on both, differing.
    Scan {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file.
    CheckConfig { file: PathBuf },
    /// Conflicts awaiting a decision.
    Conflicts {
        #[command(subcommand)]
        cmd: ConflictCmd,
    },
    /// Run history (or, with --run N, every action of one run).
    History {
        /// The actions of this run: path, side, operation, rule, outcome.
        #[arg(long, value_name = "N")]
        run: Option<i64>,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
        /// Most recent runs to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Status: from the running service when there is one, else from the state file.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run the continuous service in the foreground: LEFT RIGHT, or --config FILE.
    Run {
        #[command(flatten)]
        target: Target,
        /// Where the local API listens (loopback only; port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Rotating log files go here (default: the config's log_dir, else next to the state).
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
    /// Stop the running service (`tandem run`, the desktop app or the Windows service)
    /// gracefully: copies in flight finish or roll back, the state is flushed. Waits until
    /// it has stopped.
    Stop {
        /// Stop waiting after this many seconds (the service goes on stopping).
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
    },
    /// The Windows service (Windows only; on Linux the systemd units do this, see the
    /// README): install it for a config file, start, stop, status, uninstall.
    Service {
        #[command(subcommand)]
        cmd: ServiceCmd,
    },
    /// Pause the running service (one pair, or all).
    Pause {
        #[arg(long)]
        pair: Option<String>,
    },
    /// Resume the running service (one pair, or all).
    Resume {
        #[arg(long)]
        pair: Option<String>,
        /// Let the next run delete beyond max_delete_percent (after the guard paused it).
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// A full sync now, by the running service (one pair, or all).
    SyncNow {
        #[arg(long)]
        pair: Option<String>,
    },
    /// Print the API token of the running service (for scripts); fails when none runs.
    Token,
    /// Print a fresh one-time link that signs a browser in to the running service's API
    /// (it sets the token as an HttpOnly cookie).
    LoginLink,
    /// Send a test mail with the config's [email] settings, and say what failed.
    NotifyTest {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Scheduled runs: list, pause, resume.
    Schedules {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
    /// Secrets in the OS keyring (entry "tandem/NAME"), named in the config by
    /// `keyring = "NAME"` in [remote], [pair.remote] or [email]. No command prints a secret.
    Secret {
        #[command(subcommand)]
        cmd: SecretCmd,
    },
}

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Register the service "Tandem" (starts with the machine, as LocalSystem; restarted
    /// if it fails) running `tandem run --config FILE`. State and logs go to
    /// %ProgramData%\Tandem unless the config names others.
    Install {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where its API and web UI listen (loopback only; default: the config's, else
        /// 127.0.0.1:7587).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Start it by hand (`tandem service start`) rather than with the machine.
        #[arg(long)]
        manual: bool,
    },
    /// Stop it if it runs, and remove it.
    Uninstall,
    Start,
    /// Stop it gracefully and wait until it has stopped.
    Stop,
    Status {
        #[arg(long)]
        json: bool,
    },
    /// What the service control manager starts (not for use by hand).
    #[command(hide = true)]
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
pub enum SecretCmd {
    /// Store the secret of entry NAME, replacing any: read from stdin (without its trailing
    /// newline), or typed twice at a prompt without echo when stdin is a terminal.
    Set { name: String },
    /// Say whether the entry NAME exists (exit 0) or not (exit 1); the secret is not shown.
    Check { name: String },
    /// Remove the entry NAME (exit 1 when there was none).
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum ScheduleCmd {
    /// Every schedule with its next and last run and last outcome.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    Pause {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    Resume {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a schedule from the config file (comments and the rest are kept).
    Remove {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ConflictCmd {
    List {
        #[arg(long)]
        pair: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Resolve {
        /// Path relative to the pair's roots.
        path: String,
        #[arg(long, value_enum)]
        keep: KeepArg,
        #[arg(long)]
        pair: Option<String>,
        /// Config file (to use the pair's configured options).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeepArg {
    Left,
    Right,
    Both,
}
