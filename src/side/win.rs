//! Windows facts the standard library does not give the local side: a file's id (file index
//! and volume serial) and change time, read for a whole folder with one enumeration
//! (`FileIdBothDirectoryInfo`, no handle per file); the attributes Tandem carries (read-only,
//! hidden, system, archive) and setting them; what a volume is (file system, hard links,
//! network drive). Pure conversions at the top are tested on every platform.

/// The attributes carried as a file's properties (R11-R13): read-only, hidden, system, archive.
pub const CARRIED: u32 = 0x1 | 0x2 | 0x4 | 0x20;
/// Set in every Windows [`crate::model::Entry::mode`]: "keeps attributes", so a file without
/// any carried attribute (mode would be 0) is not taken for a side that keeps none.
pub const MARK: u32 = 0x1000_0000;

const ATTR_DIRECTORY: u32 = 0x10;
const ATTR_REPARSE_POINT: u32 = 0x400;
const ATTR_NORMAL: u32 = 0x80;
const TAG_SYMLINK: u32 = 0xA000_000C;
const TAG_MOUNT_POINT: u32 = 0xA000_0003;

/// 100 ns ticks since 1601 -> ns since 1970.
pub fn filetime_ns(ft: i64) -> i64 {
    (ft - 116_444_736_000_000_000).saturating_mul(100)
}

/// A file's [`Entry::mode`](crate::model::Entry::mode) from its attributes.
pub fn mode_of(attributes: u32) -> u32 {
    MARK | (attributes & CARRIED)
}

/// The attributes to set for `mode` on a file that has `current` (other bits kept).
pub fn attributes_for(current: u32, mode: u32) -> u32 {
    let a = (current & !CARRIED & !ATTR_NORMAL) | (mode & CARRIED);
    // Only these bits may be set through SetFileAttributes; none at all is "normal".
    let a = a & (CARRIED | 0x100 /* temporary */ | 0x2000 /* not content indexed */ | 0x1000/* offline */);
    if a == 0 {
        ATTR_NORMAL
    } else {
        a
    }
}

/// What an entry is, from its attributes and (for a reparse point) its tag: symbolic links
/// and junctions are links (never followed); other reparse points (cloud placeholders of
/// OneDrive, pCloud, dedup) are the files or folders they stand for.
pub fn link_or_dir(attributes: u32, tag: u32) -> (bool, bool) {
    let link = attributes & ATTR_REPARSE_POINT != 0 && (tag == TAG_SYMLINK || tag == TAG_MOUNT_POINT);
    (link, attributes & ATTR_DIRECTORY != 0)
}

/// A file id from the volume serial and the file index (as on Unix, inode ^ device).
pub fn file_id(serial: u32, index: u64) -> u64 {
    (index ^ (serial as u64).rotate_left(40)).max(1)
}

#[cfg(windows)]
pub use os::*;

#[cfg(windows)]
mod os {
    use super::*;
    use crate::model::{Entry, Kind};
    use crate::side::Node;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, ERROR_NO_MORE_FILES, HANDLE, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::Storage::FileSystem::*;

    const DRIVE_REMOTE: u32 = 4;
    const FILE_SUPPORTS_HARD_LINKS: u32 = 0x0040_0000;

    fn wide(p: &Path) -> Vec<u16> {
        p.as_os_str().encode_wide().chain(std::iter::once(0)).collect()
    }

    struct Handle(HANDLE);
    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: a handle we opened and own.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Open `path` itself (a folder too; a link is not followed) for reading attributes or
    /// listing, sharing everything (a file open in another program is still read).
    fn open(path: &Path, access: u32) -> io::Result<Handle> {
        let w = wide(path);
        // SAFETY: a valid wide string; the returned handle is checked and owned.
        let h = unsafe {
            CreateFileW(
                w.as_ptr(),
                access,
                FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                std::ptr::null_mut(),
            )
        };
        if h == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        Ok(Handle(h))
    }

    fn serial(h: &Handle) -> io::Result<(u32, u64)> {
        // SAFETY: a zeroed plain struct filled by the call on an open handle.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
        if unsafe { GetFileInformationByHandle(h.0, &mut info) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((
            info.dwVolumeSerialNumber,
            ((info.nFileIndexHigh as u64) << 32) | info.nFileIndexLow as u64,
        ))
    }

    /// The id, change time (ns) and attributes of `path` itself.
    pub fn ids(path: &Path) -> io::Result<(u64, i64, u32)> {
        let h = open(path, FILE_READ_ATTRIBUTES)?;
        let (vol, index) = serial(&h)?;
        // SAFETY: a zeroed plain struct of the size passed.
        let mut basic: FILE_BASIC_INFO = unsafe { std::mem::zeroed() };
        let ok = unsafe {
            GetFileInformationByHandleEx(
                h.0,
                FileBasicInfo,
                (&mut basic as *mut FILE_BASIC_INFO).cast(),
                std::mem::size_of::<FILE_BASIC_INFO>() as u32,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((file_id(vol, index), filetime_ns(basic.ChangeTime), basic.FileAttributes))
    }

    /// Every entry of folder `dir` with its node, ids and change times included: one
    /// enumeration of the folder (64 KiB of entries per call), no handle per file.
    /// A name that is not valid UTF-16 comes as `Err(lossy name)`.
    pub fn read_dir(dir: &Path) -> io::Result<Vec<(Result<String, String>, Node)>> {
        let h = open(dir, FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES)?;
        let (vol, _) = serial(&h)?;
        let mut buf = vec![0u64; 8 * 1024];
        let mut out = Vec::new();
        let mut class = FileIdBothDirectoryRestartInfo;
        loop {
            // SAFETY: the buffer is ours, 8-byte aligned, and its size is passed.
            let ok = unsafe { GetFileInformationByHandleEx(h.0, class, buf.as_mut_ptr().cast(), (buf.len() * 8) as u32) };
            if ok == 0 {
                let e = unsafe { GetLastError() };
                if e == ERROR_NO_MORE_FILES {
                    return Ok(out);
                }
                return Err(io::Error::from_raw_os_error(e as i32));
            }
            class = FileIdBothDirectoryInfo;
            let base = buf.as_ptr() as *const u8;
            let mut at = 0usize;
            loop {
                // SAFETY: `at` is an entry offset the system wrote within the buffer; the
                // name's length is the one it gives, inside the same entry.
                let e = unsafe { &*(base.add(at) as *const FILE_ID_BOTH_DIR_INFO) };
                let name_ptr =
                    unsafe { (e as *const FILE_ID_BOTH_DIR_INFO as *const u8).add(std::mem::offset_of!(FILE_ID_BOTH_DIR_INFO, FileName)) };
                let name = unsafe { std::slice::from_raw_parts(name_ptr as *const u16, e.FileNameLength as usize / 2) };
                if name != [b'.' as u16] && name != [b'.' as u16, b'.' as u16] {
                    let name = String::from_utf16(name).map_err(|_| String::from_utf16_lossy(name));
                    out.push((name, node(e, vol)));
                }
                if e.NextEntryOffset == 0 {
                    break;
                }
                at += e.NextEntryOffset as usize;
            }
        }
    }

    fn node(e: &FILE_ID_BOTH_DIR_INFO, vol: u32) -> Node {
        let (link, dir) = link_or_dir(e.FileAttributes, e.EaSize);
        if link {
            return Node::Symlink;
        }
        let kind = if dir { Kind::Dir } else { Kind::File };
        Node::Entry(Entry {
            kind,
            size: if dir { 0 } else { e.EndOfFile.max(0) as u64 },
            mtime: filetime_ns(e.LastWriteTime),
            mode: mode_of(e.FileAttributes),
            file_id: file_id(vol, e.FileId as u64),
            version: filetime_ns(e.ChangeTime),
            hash: None,
        })
    }

    /// Set the carried attributes of an open file to `mode`'s.
    pub fn set_attributes_handle(f: &std::fs::File, mode: u32) -> io::Result<()> {
        use std::os::windows::io::AsRawHandle;
        let h = f.as_raw_handle() as HANDLE;
        // SAFETY: zeroed plain struct; zero times mean "leave as they are".
        let mut basic: FILE_BASIC_INFO = unsafe { std::mem::zeroed() };
        let ok = unsafe {
            GetFileInformationByHandleEx(
                h,
                FileBasicInfo,
                (&mut basic as *mut FILE_BASIC_INFO).cast(),
                std::mem::size_of::<FILE_BASIC_INFO>() as u32,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let set = FILE_BASIC_INFO {
            FileAttributes: attributes_for(basic.FileAttributes, mode),
            ..unsafe { std::mem::zeroed() }
        };
        let ok = unsafe {
            SetFileInformationByHandle(
                h,
                FileBasicInfo,
                (&set as *const FILE_BASIC_INFO).cast(),
                std::mem::size_of::<FILE_BASIC_INFO>() as u32,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Set the carried attributes of `path` to `mode`'s.
    pub fn set_attributes(path: &Path, current: u32, mode: u32) -> io::Result<()> {
        let w = wide(path);
        // SAFETY: a valid wide string.
        if unsafe { SetFileAttributesW(w.as_ptr(), attributes_for(current, mode)) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// What the volume holding `root` is.
    pub struct Volume {
        /// "NTFS", "ReFS", "FAT32", "exFAT"...
        pub fs: String,
        pub hard_links: bool,
        pub remote: bool,
    }

    impl Volume {
        /// File ids and change times that are stable and honest (not FAT's, whose ids are
        /// folder positions and which has no change time).
        pub fn ids(&self) -> bool {
            matches!(self.fs.as_str(), "NTFS" | "ReFS")
        }
    }

    pub fn volume(root: &Path) -> Option<Volume> {
        let w = wide(root);
        let mut vol = [0u16; 1024];
        // SAFETY: valid input string; the output buffer and its length match.
        if unsafe { GetVolumePathNameW(w.as_ptr(), vol.as_mut_ptr(), vol.len() as u32) } == 0 {
            return None;
        }
        let mut fs = [0u16; 64];
        let mut flags = 0u32;
        // SAFETY: the volume path is NUL-terminated by the call above; buffers match lengths.
        let ok = unsafe {
            GetVolumeInformationW(
                vol.as_ptr(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut flags,
                fs.as_mut_ptr(),
                fs.len() as u32,
            )
        };
        if ok == 0 {
            return None;
        }
        let end = fs.iter().position(|c| *c == 0).unwrap_or(fs.len());
        // SAFETY: the volume path is a valid wide string.
        let remote = unsafe { GetDriveTypeW(vol.as_ptr()) } == DRIVE_REMOTE;
        Some(Volume {
            fs: String::from_utf16_lossy(&fs[..end]),
            hard_links: flags & FILE_SUPPORTS_HARD_LINKS != 0,
            remote,
        })
    }

    /// A file open in another program (Office, a scanner) that Windows will not share.
    pub fn in_use(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(32 /* sharing violation */ | 33 /* lock violation */))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_facts_convert() {
        // 1970-01-01 in FILETIME ticks, and one second and 100 ns later.
        assert_eq!(filetime_ns(116_444_736_000_000_000), 0);
        assert_eq!(filetime_ns(116_444_736_010_000_001), 1_000_000_100);
        // Plain file: only the mark; read-only + archive carried; directory bit dropped.
        assert_eq!(mode_of(0x80), MARK);
        assert_eq!(mode_of(0x1 | 0x20 | 0x10), MARK | 0x21);
        // Setting "no carried attribute" on a read-only file leaves it normal.
        assert_eq!(attributes_for(0x1, MARK), 0x80);
        assert_eq!(attributes_for(0x20 | 0x2000, MARK | 0x2), 0x2 | 0x2000);
        // Symbolic links and junctions are links; a OneDrive placeholder is a file.
        assert_eq!(link_or_dir(0x400, 0xA000_000C), (true, false));
        assert_eq!(link_or_dir(0x410, 0xA000_0003), (true, true));
        assert_eq!(link_or_dir(0x400 | 0x20, 0x9000_601A), (false, false));
        assert_ne!(file_id(7, 42), file_id(8, 42));
        assert_eq!(file_id(0, 0), 1);
    }
}
