//! Windows facts the standard library does not give the local side: a file's id (file index
//! and volume serial) and change time, read for a whole folder with one enumeration
//! (`FileIdBothDirectoryInfo`, no handle per file); the attributes Tandem carries (read-only,
//! hidden, system, archive) and setting them; what a volume is (file system, hard links,
//! network drive); secret files kept to their owner (checking a file's access list, giving
//! one an owner-only list); the UTF-16 strings every wide ("W") call takes. Pure conversions
//! at the top are tested on every platform.

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

/// The refusal of a secret file others can reach, one shape on every platform: `who` says
/// who else may reach it, `fix` the command that makes it owner-only.
pub fn not_private(path: &std::path::Path, who: &str, fix: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "{}: a secret file must be readable by its owner only ({who}): {fix}",
            path.display()
        ),
    )
}

#[cfg(windows)]
pub use os::*;

#[cfg(windows)]
mod os {
    use super::*;
    use crate::model::{Entry, Kind};
    use crate::side::Node;
    use std::ffi::OsStr;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::{null, null_mut};
    use windows_sys::Win32::Foundation::{
        CloseHandle, GetLastError, LocalFree, ERROR_NO_MORE_FILES, GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
        SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        EqualSid, GetAce, GetTokenInformation, IsWellKnownSid, LookupAccountSidW, SetFileSecurityW, TokenUser, WinBuiltinAdministratorsSid,
        WinLocalSystemSid, ACCESS_ALLOWED_ACE, ACE_HEADER, DACL_SECURITY_INFORMATION, INHERIT_ONLY_ACE, OWNER_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, PSID, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::Storage::FileSystem::*;
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    const DRIVE_REMOTE: u32 = 4;
    const FILE_SUPPORTS_HARD_LINKS: u32 = 0x0040_0000;

    /// `s` as the NUL-terminated UTF-16 string the wide ("W") Windows calls take.
    pub fn wide<S: AsRef<OsStr> + ?Sized>(s: &S) -> Vec<u16> {
        s.as_ref().encode_wide().chain(std::iter::once(0)).collect()
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

    // ------------------------------------------------------------ owner-only secret files

    /// Memory the system allocated for us with LocalAlloc (a security descriptor, a string),
    /// freed when dropped.
    struct Local<T>(*mut T);
    impl<T> Drop for Local<T> {
        fn drop(&mut self) {
            // SAFETY: null or a block the system allocated for us, freed once.
            unsafe { LocalFree(self.0.cast()) };
        }
    }

    /// The account this process runs as (its token's TOKEN_USER, the SID inside the buffer).
    struct ProcessUser(Vec<u64>);
    impl ProcessUser {
        fn get() -> io::Result<Self> {
            let mut token = null_mut();
            // SAFETY: this process's pseudo-handle and an out-pointer we own; the token handle is
            // closed by `Handle`.
            if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
                return Err(io::Error::last_os_error());
            }
            let token = Handle(token);
            // TOKEN_USER and a SID (at most 68 bytes) fit in 512 bytes, 8-byte aligned.
            let mut buf = vec![0u64; 64];
            let mut len = 0;
            // SAFETY: the buffer and its byte length match.
            if unsafe { GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), 512, &mut len) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ProcessUser(buf))
        }
        fn sid(&self) -> PSID {
            // SAFETY: the buffer holds the TOKEN_USER the call wrote; its SID points inside it.
            unsafe { (*(self.0.as_ptr() as *const TOKEN_USER)).User.Sid }
        }
    }

    /// A NUL-terminated UTF-16 string the system wrote.
    fn from_wide(p: *const u16) -> String {
        // SAFETY: `p` is a valid NUL-terminated string: its length is counted up to the NUL.
        let len = (0..).take_while(|i| unsafe { *p.add(*i) } != 0).count();
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
    }

    /// A SID as text, "S-1-5-18".
    fn sid_string(sid: PSID) -> io::Result<String> {
        let mut s = null_mut();
        // SAFETY: a valid SID; the string allocated for us is freed by `Local`.
        if unsafe { ConvertSidToStringSidW(sid, &mut s) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Local(s);
        Ok(from_wide(s.0))
    }

    /// An account's name, "DOMAIN\name" or "Everyone"; its SID when it has no name here.
    fn account(sid: PSID) -> String {
        let (mut name, mut domain) = ([0u16; 256], [0u16; 256]);
        let (mut n, mut d, mut kind) = (256u32, 256u32, 0);
        // SAFETY: a valid SID; buffers and their lengths (in characters) match.
        let ok = unsafe { LookupAccountSidW(null(), sid, name.as_mut_ptr(), &mut n, domain.as_mut_ptr(), &mut d, &mut kind) };
        if ok == 0 {
            return sid_string(sid).unwrap_or_else(|_| "an unknown account".into());
        }
        let (name, domain) = (from_wide(name.as_ptr()), from_wide(domain.as_ptr()));
        if domain.is_empty() {
            name
        } else {
            format!("{domain}\\{name}")
        }
    }

    /// What lets an account read or change a file's content, or give itself that right
    /// (generic rights as they are, or mapped: FILE_ALL_ACCESS and FILE_GENERIC_READ/WRITE
    /// contain the data bits).
    const READ: u32 = FILE_READ_DATA | GENERIC_READ | GENERIC_ALL;
    const WRITE: u32 = FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_WRITE | GENERIC_ALL;
    const REWRITE_ACL: u32 = WRITE_DAC | WRITE_OWNER;
    const ACCESS_ALLOWED: u8 = 0;

    /// Whether `path` may hold a secret: no account but its owner, this process's user,
    /// SYSTEM and the administrators may read or write its content (or change who may). A
    /// NULL access list (anyone may do anything) is refused too. The error names the file,
    /// an account that may reach it and the `icacls` command that fixes it.
    pub fn check_private(path: &Path) -> io::Result<()> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let (mut owner, mut dacl, mut sd) = (null_mut(), null_mut(), null_mut());
        // SAFETY: a valid wide path and out-pointers we own; owner and DACL point into `sd`,
        // which is freed by `Local` after the last use of either.
        let rc = unsafe {
            GetNamedSecurityInfoW(
                wide(path).as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                &mut owner,
                null_mut(),
                &mut dacl,
                null_mut(),
                &mut sd,
            )
        };
        if rc != 0 {
            return Err(named(io::Error::from_raw_os_error(rc as i32)));
        }
        let _sd = Local(sd);
        let fix = |sid: Option<&str>| {
            let remove = sid.map(|s| format!(" /remove \"*{s}\"")).unwrap_or_default();
            format!("icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\"{remove}", path.display())
        };
        if dacl.is_null() {
            return Err(not_private(path, "it has no access list: anyone may read and write it", &fix(None)));
        }
        let me = ProcessUser::get().map_err(named)?;
        // SAFETY: a DACL the call returned, alive in `sd`.
        for i in 0..unsafe { (*dacl).AceCount } {
            let mut ace = null_mut();
            // SAFETY: an index below the list's count; the ACE lives in `sd`.
            if unsafe { GetAce(dacl, i.into(), &mut ace) } == 0 {
                return Err(named(io::Error::last_os_error()));
            }
            // SAFETY: every ACE starts with its header.
            let header = unsafe { &*(ace as *const ACE_HEADER) };
            // Only "allow" ACEs grant; an inherit-only one applies to a folder's children.
            if header.AceType != ACCESS_ALLOWED || u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0 {
                continue;
            }
            // SAFETY: an ACCESS_ALLOWED ACE (by its type); its SID starts at SidStart.
            let ace = unsafe { &*(ace as *const ACCESS_ALLOWED_ACE) };
            let sid = (&ace.SidStart as *const u32).cast_mut().cast();
            // SAFETY: valid SIDs (`owner` is checked for null: a descriptor may lack one).
            let trusted = unsafe {
                (!owner.is_null() && EqualSid(sid, owner) != 0)
                    || EqualSid(sid, me.sid()) != 0
                    || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                    || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
            };
            let (read, write) = (ace.Mask & READ != 0, ace.Mask & WRITE != 0);
            let what = match (read, write) {
                _ if trusted => continue,
                (true, true) => "read and write",
                (true, false) => "read",
                (false, true) => "write",
                _ if ace.Mask & REWRITE_ACL != 0 => "change who may read",
                _ => continue,
            };
            let who = format!("{} may {what} it", account(sid));
            return Err(not_private(path, &who, &fix(sid_string(sid).ok().as_deref())));
        }
        Ok(())
    }

    /// Give `path` an owner-only access list, not inherited from its folder: full control
    /// for this process's user, SYSTEM and the administrators, nobody else (what
    /// [`check_private`] accepts; on Unix, mode 0600).
    pub fn make_private(path: &Path) -> io::Result<()> {
        let me = sid_string(ProcessUser::get()?.sid())?;
        set_dacl(path, &format!("D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;{me})"))
    }

    /// Set `path`'s access list to the one of the SDDL string `sddl` ("D:P(A;;FA;;;SY)...";
    /// "P": protected from inheritance). SetFileSecurityW, not SetNamedSecurityInfoW: it
    /// does not rewrite what is below a folder, and wine 8 maps its list to the Unix mode
    /// (SetNamedSecurityInfoW there returns success and leaves the file 0775, whatever the list).
    pub fn set_dacl(path: &Path, sddl: &str) -> io::Result<()> {
        let mut sd = null_mut();
        // SAFETY: a valid wide SDDL string; the descriptor allocated for us is freed by `Local`.
        if unsafe { ConvertStringSecurityDescriptorToSecurityDescriptorW(wide(sddl).as_ptr(), SDDL_REVISION_1, &mut sd, null_mut()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let sd = Local(sd);
        // SAFETY: a valid wide path and the descriptor just made, alive in `sd`.
        if unsafe {
            SetFileSecurityW(
                wide(path).as_ptr(),
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                sd.0,
            )
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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

    /// `path`'s owner and access list as SDDL ("O:...D:..."), for messages.
    #[cfg(windows)]
    fn sddl(path: &std::path::Path) -> String {
        use std::ptr::null_mut as null;
        use windows_sys::Win32::Security::Authorization::*;
        use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION as D, OWNER_SECURITY_INFORMATION as O};
        let (mut sd, mut s) = (null(), null());
        // SAFETY: a valid wide path and out-pointers we own; both blocks are freed below.
        unsafe {
            let rc = GetNamedSecurityInfoW(wide(path).as_ptr(), SE_FILE_OBJECT, O | D, null(), null(), null(), null(), &mut sd);
            assert_eq!(rc, 0, "{}", path.display());
            assert_ne!(
                ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1, O | D, &mut s, null()),
                0
            );
            let len = (0..).take_while(|i| *s.add(*i) != 0).count();
            let text = String::from_utf16_lossy(std::slice::from_raw_parts(s, len));
            windows_sys::Win32::Foundation::LocalFree(s.cast());
            windows_sys::Win32::Foundation::LocalFree(sd);
            text
        }
    }

    /// An owner-only file passes; one Everyone may read is refused, naming the file, the
    /// account and the fix; made owner-only again, it passes. Under wine (8) no access list is
    /// kept: SetFileSecurityW maps the list to the Unix mode and GetNamedSecurityInfoW makes
    /// one from the mode (SYSTEM; the owner; Everyone for the "other" bits), so this checks
    /// there what the Unix mode lets other users do (a fresh file, 0644, is refused).
    #[cfg(windows)]
    #[test]
    fn a_secret_file_is_owner_only_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s3.secret");
        std::fs::write(&f, "secret").unwrap();
        make_private(&f).unwrap();
        check_private(&f).unwrap_or_else(|e| panic!("{e}; {}", sddl(&f)));
        set_dacl(&f, "D:P(A;;FA;;;SY)(A;;FR;;;WD)").unwrap();
        let e = check_private(&f).expect_err(&sddl(&f));
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let e = e.to_string();
        assert!(
            e.contains("s3.secret") && e.contains("Everyone may read it") && e.contains("icacls"),
            "{e}"
        );
        make_private(&f).unwrap();
        check_private(&f).unwrap_or_else(|e| panic!("{e}; {}", sddl(&f)));
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "secret");
    }
}
