//! The fault-injecting side: wraps any side and makes chosen calls fail, for tests of what
//! the engine does when one file cannot be read, written, renamed or removed (that
//! operation fails, never the run; nothing is lost; the next run converges). It can also
//! let "another client" act at a chosen moment ([`FaultSide::meddle`]): a file changed on
//! a server between the listing and the download.

use super::{Caps, DirItem, FileWriter, Node, Replica};
use crate::model::RelPath;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which call an injected failure applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Stat,
    ReadDir,
    Read,
    /// Creating a file or folder, or a second name (hard link, server copy).
    Create,
    Rename,
    Remove,
    SetMeta,
    Flush,
}

/// A side whose calls fail where a test says.
pub struct FaultSide {
    inner: Arc<dyn Replica>,
    faults: Mutex<Vec<Fault>>,
    meddles: Mutex<Vec<Meddle>>,
}

/// Something done once, just before the first matching call goes through.
struct Meddle {
    op: FaultOp,
    needle: String,
    act: Box<dyn FnOnce() + Send>,
}

struct Fault {
    op: FaultOp,
    needle: String,
    /// Matching calls let through before failing.
    skip: usize,
    /// Matching calls failed from then on.
    times: usize,
}

impl FaultSide {
    pub fn new(inner: Arc<dyn Replica>) -> FaultSide {
        FaultSide {
            inner,
            faults: Mutex::new(Vec::new()),
            meddles: Mutex::new(Vec::new()),
        }
    }

    /// Run `act` once, just before the first `op` on `needle` (a path or a final name)
    /// goes through to the wrapped side: what another client does at that moment.
    pub fn meddle(&self, op: FaultOp, needle: &str, act: impl FnOnce() + Send + 'static) {
        self.meddles.lock().unwrap().push(Meddle {
            op,
            needle: needle.to_string(),
            act: Box::new(act),
        });
    }

    /// Fail every `op` on a path that is `needle` or whose final name is `needle` (until
    /// [`FaultSide::clear`]).
    pub fn inject(&self, op: FaultOp, needle: &str) {
        self.inject_after(op, needle, 0, usize::MAX);
    }

    /// Let `skip` matching calls through, then fail the next `times` of them.
    pub fn inject_after(&self, op: FaultOp, needle: &str, skip: usize, times: usize) {
        self.faults.lock().unwrap().push(Fault {
            op,
            needle: needle.to_string(),
            skip,
            times,
        });
    }

    pub fn clear(&self) {
        self.faults.lock().unwrap().clear();
        self.meddles.lock().unwrap().clear();
    }

    fn check(&self, op: FaultOp, p: &RelPath) -> io::Result<()> {
        let due = {
            let mut meddles = self.meddles.lock().unwrap();
            let at = meddles
                .iter()
                .position(|m| m.op == op && (p.as_str() == m.needle || p.name() == m.needle));
            at.map(|i| meddles.remove(i))
        };
        if let Some(m) = due {
            (m.act)();
        }
        let mut faults = self.faults.lock().unwrap();
        let hit = faults
            .iter_mut()
            .filter(|f| f.op == op && (p.as_str() == f.needle || p.name() == f.needle))
            .any(|f| {
                if f.skip > 0 {
                    f.skip -= 1;
                    false
                } else if f.times > 0 {
                    f.times -= 1;
                    true
                } else {
                    false
                }
            });
        drop(faults);
        if hit {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: injected {op:?} failure", self.inner.describe(p)),
            ));
        }
        Ok(())
    }
}

impl Replica for FaultSide {
    fn caps(&self) -> Caps {
        self.inner.caps()
    }
    fn describe(&self, p: &RelPath) -> String {
        self.inner.describe(p)
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn note(&self) -> Option<String> {
        self.inner.note()
    }
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        self.check(FaultOp::Stat, p)?;
        self.inner.stat(p)
    }
    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        self.check(FaultOp::ReadDir, p)?;
        let mut items = self.inner.read_dir(p)?;
        // A listing reports each child's metadata: a child whose stat fails shows the
        // failure there, as a real file system would.
        for item in &mut items {
            if let Ok(name) = &item.name {
                if let Ok(child) = p.join(name) {
                    if let Err(e) = self.check(FaultOp::Stat, &child) {
                        item.node = Err(e);
                    }
                }
            }
        }
        Ok(items)
    }
    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        self.check(FaultOp::Read, p)?;
        self.inner.open_read(p)
    }
    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        self.check(FaultOp::Create, p)?;
        self.inner.create_new(p)
    }
    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.check(FaultOp::Rename, from)?;
        self.check(FaultOp::Rename, to)?;
        self.inner.rename(from, to)
    }
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.check(FaultOp::Create, to)?;
        self.inner.keep_copy(from, to)
    }
    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        self.check(FaultOp::Remove, p)?;
        self.inner.remove_file(p)
    }
    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        self.check(FaultOp::Remove, p)?;
        self.inner.remove_dir(p)
    }
    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        self.check(FaultOp::Create, p)?;
        self.inner.create_dir_all(p)
    }
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        self.check(FaultOp::SetMeta, p)?;
        self.inner.set_mtime(p, mtime_ns)
    }
    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        self.check(FaultOp::SetMeta, p)?;
        self.inner.set_mode(p, mode)
    }
    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> io::Result<()> {
        for p in files.iter().chain(dirs) {
            self.check(FaultOp::Flush, p)?;
        }
        self.inner.make_durable(files, dirs)
    }
}
