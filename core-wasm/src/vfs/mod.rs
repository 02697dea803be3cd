//! The VFS every store of the core opens its files with: SQLite's own
//! `unix-none` (in the component; `unix` on a host build) with the
//! rollback journal's writes gathered.
//!
//! SQLite writes a rollback-journal record as three calls (the page number,
//! the page, a checksum) after a header, and in the component every call is
//! a WASI operation that wasmtime hands to another thread and back (see
//! docs/perf-notes.md). This VFS forwards every call to the wrapped one,
//! except that the writes to a main journal that continue each other are
//! kept in a buffer and written as one call. The journal reaches the file
//! with the same bytes, in the same order, before the same syncs:
//!
//! - the buffer is written out before anything that observes or orders the
//!   journal file: its sync, read, size, truncation, close, lock and file
//!   control calls, and any write that does not continue the buffer;
//! - it is also written out before the journal's database file is written,
//!   truncated, synced, locked or unlocked, so no database page is
//!   overwritten before the original it replaces is in the journal file, as
//!   without the buffer. With `synchronous=OFF` (no journal sync before the
//!   database writes) a killed process still leaves a journal that rolls the
//!   database back;
//! - a process that dies with bytes in the buffer leaves the journal as a
//!   crash between the same writes would: SQLite writes the database only
//!   after those bytes went out (above), so the file is untouched and the
//!   journal holds less than a complete transaction's originals;
//! - bytes that cannot go out (a full disk) stay in the buffer, and every
//!   call that needs them in the file fails with the write's error until
//!   they do: SQLite, unable to read its journal back, gives up on the
//!   transaction and discards its page cache (rolling back from a journal
//!   that lacks pages would keep the transaction's pages in the cache), and
//!   the database is never written after such a journal. The journal that
//!   SQLite then leaves behind is removed when SQLite would not play it
//!   back (see [`Wrapped::stray_journal`]), and played back at once when it
//!   would ([`settle`]).
//!
//! Database files are wrapped only to send their journal's buffer out first;
//! every other file (temporary files, WAL, super-journals) is the wrapped
//! VFS's own, untouched.
//!
//! This module is the ABI boundary with SQLite's C VFS interface, and all
//! the core's `unsafe` for it is here. [`coalesce`] holds the buffering
//! logic, with no `unsafe`.

mod coalesce;
#[cfg(test)]
mod tests;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

use coalesce::{Coalescer, Sink};

/// The name stores pass to `sqlite3_open_v2`.
pub const NAME: &str = "fast-crewai";
const NAME_C: &CStr = c"fast-crewai";

/// The VFS wrapped. Inside WebAssembly there are no file locks (the host
/// serialises processes with its own): `unix-none` takes none. A host
/// build (cargo test) wraps SQLite's default, which locks.
#[cfg(target_arch = "wasm32")]
const BASE: &CStr = c"unix-none";
#[cfg(not(target_arch = "wasm32"))]
const BASE: &CStr = c"unix";

/// The most the unix VFS writes in one call: its `seekAndWriteFd` keeps the
/// low 17 bits of the length (`nBuf &= 0x1ffff`), so a longer buffer would
/// be cut short. The buffer is written out whenever it holds this much.
const MAX_WRITE: usize = 0x1ffff;

/// Called after a write failed on a full disk. When SQLite gave up on the
/// transaction (its journal could not be written out, above), the journal
/// it left may hold the originals of pages already written to the database
/// file, which its next statement would play back: that is now, as SQLite
/// does within the failed call when its journal writes fail at once,
/// rather than whenever the connection is used again (another process
/// finding the journal first must take the write lock; a read-only one
/// cannot roll it back). Within a transaction that goes on, nothing.
pub fn settle(conn: &rusqlite::Connection) {
    if conn.is_autocommit() {
        // Reading the schema cookie takes the shared lock, which plays a hot
        // journal back first; a failure of its own leaves the journal for
        // the next statement, and says nothing more about the write.
        let _ = conn.query_row("PRAGMA schema_version", [], |_| Ok(()));
    }
}

/// Registers the VFS (once per process); stores then open files with
/// [`NAME`]. Fails only when SQLite has no [`BASE`] VFS or cannot register.
pub fn register() -> rusqlite::Result<()> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    // SAFETY: `NAME_C` and `BASE` are 'static NUL-terminated names, as
    // `register_as` requires.
    let rc = *REGISTERED.get_or_init(|| unsafe { register_as(NAME_C, BASE, Options::default()) });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some(format!(
                "cannot register the {NAME} VFS over {}",
                BASE.to_string_lossy()
            )),
        ))
    }
}

/// How one registration behaves: tests register more than one, the core
/// only the default.
#[derive(Default)]
struct Options {
    /// Forward journal writes one by one, as SQLite makes them (the
    /// reference the tests compare against).
    #[cfg(test)]
    write_through: bool,
    /// Where to record the calls this VFS receives.
    #[cfg(test)]
    log: Option<&'static tests::Log>,
    /// A disk that fills up: the bytes by which files may still grow; a
    /// write that would make a file longer than that fails with
    /// `SQLITE_FULL` (overwriting written bytes needs no room).
    #[cfg(test)]
    room: Option<&'static std::sync::atomic::AtomicU64>,
}

impl Options {
    fn gathers_journal_writes(&self) -> bool {
        #[cfg(test)]
        return !self.write_through;
        #[cfg(not(test))]
        true
    }
}

/// A registered VFS's own data (`sqlite3_vfs.pAppData`).
struct Shared {
    base: *mut ffi::sqlite3_vfs,
    options: Options,
}

/// Registers a VFS named `name` over the VFS named `base`.
///
/// # Safety
/// Both names must be NUL-terminated and live as long as the process
/// (SQLite keeps the name's pointer); `base` must not be this VFS itself.
unsafe fn register_as(name: &'static CStr, base: &CStr, options: Options) -> c_int {
    // SAFETY: a valid NUL-terminated name; SQLite returns a registered VFS,
    // which lives until unregistered (the core never unregisters), or null.
    let base = unsafe { ffi::sqlite3_vfs_find(base.as_ptr()) };
    if base.is_null() {
        return ffi::SQLITE_ERROR;
    }
    // SAFETY: `base` is a registered VFS, readable for as long as it is
    // registered (the whole process here).
    let b = unsafe { &*base };
    let Ok(sz_os_file) = c_int::try_from(HEADER + b.szOsFile as usize) else {
        return ffi::SQLITE_ERROR;
    };
    // Leaked: SQLite keeps using a registered VFS until the process ends.
    let shared: &'static mut Shared = Box::leak(Box::new(Shared { base, options }));
    let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
        iVersion: b.iVersion.min(3),
        szOsFile: sz_os_file,
        mxPathname: b.mxPathname,
        pNext: ptr::null_mut(),
        zName: name.as_ptr(),
        pAppData: (shared as *mut Shared).cast(),
        xOpen: Some(x_open),
        // Every other method forwards to the wrapped VFS's, present where
        // it is present.
        xDelete: b.xDelete.and(Some(x_delete)),
        xAccess: b.xAccess.and(Some(x_access)),
        xFullPathname: b.xFullPathname.and(Some(x_full_pathname)),
        xDlOpen: b.xDlOpen.and(Some(x_dl_open)),
        xDlError: b.xDlError.and(Some(x_dl_error)),
        xDlSym: b.xDlSym.and(Some(x_dl_sym)),
        xDlClose: b.xDlClose.and(Some(x_dl_close)),
        xRandomness: b.xRandomness.and(Some(x_randomness)),
        xSleep: b.xSleep.and(Some(x_sleep)),
        xCurrentTime: b.xCurrentTime.and(Some(x_current_time)),
        xGetLastError: b.xGetLastError.and(Some(x_get_last_error)),
        xCurrentTimeInt64: b.xCurrentTimeInt64.and(Some(x_current_time_int64)),
        xSetSystemCall: b.xSetSystemCall.and(Some(x_set_system_call)),
        xGetSystemCall: b.xGetSystemCall.and(Some(x_get_system_call)),
        xNextSystemCall: b.xNextSystemCall.and(Some(x_next_system_call)),
    }));
    // SAFETY: `vfs` is fully initialised and leaked ('static), as SQLite
    // requires of a registered VFS; 0 = not the default VFS.
    unsafe { ffi::sqlite3_vfs_register(vfs, 0) }
}

/// The wrapped VFS of `vfs`, one of ours.
///
/// # Safety
/// `vfs` must be a VFS registered by [`register_as`].
unsafe fn base_of(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: our VFS's pAppData is its leaked `Shared`.
    unsafe { (*(*vfs).pAppData.cast::<Shared>()).base }
}

/// A database or main-journal file SQLite opened through this VFS. SQLite
/// allocates `szOsFile` bytes (`HEADER` + the wrapped VFS's size), at least
/// 8-byte aligned, and never moves them while the file is open: this struct
/// is at the start, the wrapped VFS's file at `HEADER`. `file` comes first so
/// that a pointer to it is a pointer to the whole (`repr(C)`).
#[repr(C)]
struct Wrapped {
    file: ffi::sqlite3_file,
    /// The wrapped VFS's file, `HEADER` bytes after `self`.
    real: *mut ffi::sqlite3_file,
    /// The registration that opened it.
    shared: *const Shared,
    /// For a main journal: the writes not yet forwarded.
    buffer: Option<Coalescer>,
    /// A journal's database file, or a database's open journal (null when
    /// none): the other end of the link is cleared when either closes.
    peer: *mut Wrapped,
    /// For a main journal: its name as SQLite gave it to xOpen (the pager's,
    /// which lives as long as the database file is open); null otherwise.
    name: *const c_char,
    /// For a database: its journal, when that closed with writes it could
    /// not make (a full disk) and a zero first byte in the file. SQLite
    /// never plays such a journal back (it is empty, or its header still
    /// waits for the first sync, before which no database page is written),
    /// but having given up on the transaction (its error state) it leaves
    /// the file behind; this VFS removes it at the database's next unlock,
    /// which follows at once.
    stray_journal: Option<CString>,
}

/// Where the wrapped VFS's file starts: after `Wrapped`, 8-byte aligned.
const HEADER: usize = size_of::<Wrapped>().next_multiple_of(8);
// SQLite aligns the allocation to 8 bytes only.
const _: () = assert!(align_of::<Wrapped>() <= 8);

/// The wrapped VFS's file, as the buffer's sink.
struct Real(*mut ffi::sqlite3_file);

impl Sink for Real {
    type Error = c_int;
    fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), c_int> {
        // The coalescer never holds more than MAX_WRITE bytes, and a file
        // offset fits SQLite's i64.
        let (Ok(len), Ok(offset)) = (c_int::try_from(data.len()), i64::try_from(offset)) else {
            return Err(ffi::SQLITE_IOERR_WRITE);
        };
        // SAFETY: `Real` is only built from an open `Wrapped`'s `real`, an
        // open file of the wrapped VFS with its methods; `data` is valid for
        // `len` bytes for the duration of the call.
        let rc = unsafe {
            match (*(*self.0).pMethods).xWrite {
                Some(write) => write(self.0, data.as_ptr().cast(), len, offset),
                None => ffi::SQLITE_IOERR_WRITE,
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

impl Wrapped {
    /// Sends this file's buffered journal writes to the file.
    fn flush(&mut self) -> c_int {
        match &mut self.buffer {
            Some(buffer) => match buffer.flush(&mut Real(self.real)) {
                Ok(()) => ffi::SQLITE_OK,
                Err(rc) => rc,
            },
            None => ffi::SQLITE_OK,
        }
    }

    /// Sends the buffered writes of this file and of its peer (a database's
    /// journal).
    fn flush_all(&mut self) -> c_int {
        let rc = self.flush();
        if rc != ffi::SQLITE_OK || self.peer.is_null() {
            return rc;
        }
        // SAFETY: a non-null peer is an open `Wrapped` of the same
        // connection (the link is cleared when either file closes), and a
        // connection's files are used by one thread at a time.
        unsafe { (*self.peer).flush() }
    }

    #[cfg(test)]
    fn options(&self) -> &Options {
        // SAFETY: `shared` is the leaked registration that opened the file.
        unsafe { &(*self.shared).options }
    }

    /// The wrapped VFS's methods for `real`.
    fn methods(&self) -> &ffi::sqlite3_io_methods {
        // SAFETY: `real` is open, so its pMethods points to the wrapped
        // VFS's static method table.
        unsafe { &*(*self.real).pMethods }
    }
}

/// The wrapped file behind `file`, one of ours.
///
/// # Safety
/// `file` must have been opened by [`x_open`] as a `Wrapped` (SQLite calls a
/// file's methods only with that file), and not be in use elsewhere.
unsafe fn wrapped<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Wrapped {
    // SAFETY: per the contract, `file` points to an initialised `Wrapped`.
    unsafe { &mut *file.cast::<Wrapped>() }
}

/// Calls the wrapped file's method `$m` with `real` and the arguments, or
/// returns `$absent` when the wrapped VFS lacks it.
macro_rules! forward {
    ($w:expr, $m:ident, $absent:expr $(, $arg:expr)*) => {
        match $w.methods().$m {
            // SAFETY: the wrapped VFS's own method on its own open file, with
            // the arguments SQLite gave this VFS.
            Some(f) => unsafe { f($w.real $(, $arg)*) },
            None => $absent,
        }
    };
}

/// Returns `$rc` unless it is `SQLITE_OK`.
macro_rules! check {
    ($rc:expr) => {
        let rc = $rc;
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    };
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xOpen with our VFS and `szOsFile` writable bytes
    // at `file`; the rest of the arguments go to the wrapped xOpen as given.
    unsafe {
        let shared = (*vfs).pAppData.cast::<Shared>().cast_const();
        let base = (*shared).base;
        let Some(open) = (*base).xOpen else {
            (*file).pMethods = ptr::null();
            return ffi::SQLITE_CANTOPEN;
        };
        let journal = flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0;
        if !journal && flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
            // Not ours: the wrapped VFS's file at the start of the space,
            // with its own methods.
            return open(base, name, file, flags, out_flags);
        }
        let real = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
        let rc = open(base, name, real, flags, out_flags);
        // SQLite calls xClose whenever pMethods is set after xOpen, even
        // when it failed; it is set exactly when the wrapped file's is.
        let Some(methods) = (*real).pMethods.as_ref() else {
            (*file).pMethods = ptr::null();
            return rc;
        };
        let ours = if methods.iVersion >= 2 && methods.xShmMap.is_some() {
            &WITH_SHM
        } else {
            &WITHOUT_SHM
        };
        let coalescing = journal && (*shared).options.gathers_journal_writes();
        ptr::write(
            file.cast::<Wrapped>(),
            Wrapped {
                file: ffi::sqlite3_file { pMethods: ours },
                real,
                shared,
                buffer: coalescing.then(|| Coalescer::new(MAX_WRITE)),
                peer: ptr::null_mut(),
                name: if journal { name } else { ptr::null() },
                stray_journal: None,
            },
        );
        #[cfg(test)]
        tests::record(&*file.cast::<Wrapped>(), || {
            tests::Event::Open(CStr::from_ptr(name).to_string_lossy().into_owned())
        });
        if rc == ffi::SQLITE_OK && coalescing {
            link_to_database(file.cast::<Wrapped>(), name);
        }
        rc
    }
}

/// Links a journal just opened to its database file, when that is one of
/// this registration's files.
///
/// # Safety
/// `journal` is an initialised `Wrapped` and `name` the name SQLite passed
/// to xOpen with `SQLITE_OPEN_MAIN_JOURNAL` (the pager's own journal name,
/// which `sqlite3_database_file_object` requires).
unsafe fn link_to_database(journal: *mut Wrapped, name: ffi::sqlite3_filename) {
    // SAFETY: per the contract; the pager's database file is open while its
    // journal is, and is one of ours exactly when its methods are ours and
    // it was opened by the same registration.
    unsafe {
        let db = ffi::sqlite3_database_file_object(name);
        if db.is_null() || !is_ours((*db).pMethods) {
            return;
        }
        let db = db.cast::<Wrapped>();
        if (*db).shared == (*journal).shared {
            (*db).peer = journal;
            (*journal).peer = db;
            // A new journal under that name, which must stay.
            (*db).stray_journal = None;
        }
    }
}

fn is_ours(methods: *const ffi::sqlite3_io_methods) -> bool {
    ptr::eq(methods, &WITH_SHM) || ptr::eq(methods, &WITHOUT_SHM)
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file it opened through `x_open` once; the
    // wrapper is dropped in place here and SQLite clears pMethods after.
    unsafe {
        let w = wrapped(file);
        #[cfg(test)]
        tests::record(w, || tests::Event::Close);
        let flushed = w.flush();
        if !w.peer.is_null() && ptr::eq((*w.peer).peer, &*w) {
            if let (false, Some(read)) = (flushed == ffi::SQLITE_OK || w.name.is_null(), w.methods().xRead) {
                // What SQLite reads to tell a journal to play back (its
                // hasHotJournal): the first byte, zero when the file is empty.
                let mut first = 0u8;
                let rc = read(w.real, (&raw mut first).cast(), 1, 0);
                if (rc == ffi::SQLITE_OK || rc == ffi::SQLITE_IOERR_SHORT_READ) && first == 0 {
                    (*w.peer).stray_journal = Some(CStr::from_ptr(w.name).to_owned());
                }
            }
            (*w.peer).peer = ptr::null_mut();
        }
        let closed = match w.methods().xClose {
            Some(close) => close(w.real),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(w as *mut Wrapped);
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn x_read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    forward!(w, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset)
}

unsafe extern "C" fn x_write(file: *mut ffi::sqlite3_file, buf: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`, with
    // `amount` (> 0) readable bytes at `buf` for the call's duration.
    let w = unsafe { wrapped(file) };
    #[cfg(test)]
    if let Some(room) = w.options().room {
        let mut size = 0;
        check!(forward!(w, xFileSize, ffi::SQLITE_IOERR_FSTAT, &mut size));
        let grows = u64::try_from(offset + i64::from(amount) - size).unwrap_or(0);
        let left = room.load(std::sync::atomic::Ordering::Relaxed);
        if grows > left {
            return ffi::SQLITE_FULL;
        }
        room.store(left - grows, std::sync::atomic::Ordering::Relaxed);
    }
    #[cfg(test)]
    tests::record(w, || {
        // SAFETY: as above.
        tests::Event::Write(
            offset,
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), amount as usize) }.to_vec(),
        )
    });
    match (&mut w.buffer, u64::try_from(offset), usize::try_from(amount)) {
        (Some(buffer), Ok(at), Ok(len)) => {
            // SAFETY: as above.
            let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
            match buffer.write(&mut Real(w.real), data, at) {
                Ok(()) => ffi::SQLITE_OK,
                Err(rc) => rc,
            }
        }
        _ => {
            check!(w.flush_all());
            forward!(w, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amount, offset)
        }
    }
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    #[cfg(test)]
    tests::record(w, || tests::Event::Truncate(size));
    check!(w.flush_all());
    forward!(w, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    #[cfg(test)]
    tests::record(w, || tests::Event::Sync);
    check!(w.flush_all());
    forward!(w, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    forward!(w, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    forward!(w, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    let rc = forward!(w, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level);
    if let Some(journal) = w.stray_journal.take() {
        // SAFETY: `shared` is the leaked registration that opened the file,
        // and its base a registered VFS; the name is NUL-terminated. When
        // SQLite deleted the journal itself the delete fails, harmlessly.
        unsafe {
            let base = (*w.shared).base;
            if let Some(delete) = (*base).xDelete {
                delete(base, journal.as_ptr(), 0);
            }
        }
    }
    rc
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    forward!(w, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, out)
}

unsafe extern "C" fn x_file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    check!(w.flush());
    forward!(w, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    forward!(w, xSectorSize, 0)
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`.
    let w = unsafe { wrapped(file) };
    forward!(w, xDeviceCharacteristics, 0)
}

// Shared memory (WAL) and memory mapping only ever concern database files,
// which never buffer: straight through.

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`; only in
    // the table for wrapped files whose methods have xShmMap.
    let w = unsafe { wrapped(file) };
    forward!(w, xShmMap, ffi::SQLITE_IOERR_SHMMAP, page, page_size, extend, out)
}

unsafe extern "C" fn x_shm_lock(file: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    // SAFETY: as `x_shm_map`.
    let w = unsafe { wrapped(file) };
    forward!(w, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as `x_shm_map`.
    let w = unsafe { wrapped(file) };
    forward!(w, xShmBarrier, ())
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: as `x_shm_map`.
    let w = unsafe { wrapped(file) };
    forward!(w, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn x_fetch(file: *mut ffi::sqlite3_file, offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int {
    // SAFETY: called by SQLite on a file it opened through `x_open`, `out`
    // writable. A wrapped file without xFetch maps nothing: SQLite then reads.
    unsafe {
        let w = wrapped(file);
        if w.methods().iVersion >= 3 {
            if let Some(fetch) = w.methods().xFetch {
                return fetch(w.real, offset, amount, out);
            }
        }
        *out = ptr::null_mut();
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_unfetch(file: *mut ffi::sqlite3_file, offset: i64, page: *mut c_void) -> c_int {
    // SAFETY: as `x_fetch`.
    let w = unsafe { wrapped(file) };
    if w.methods().iVersion < 3 {
        return ffi::SQLITE_OK;
    }
    forward!(w, xUnfetch, ffi::SQLITE_OK, offset, page)
}

const METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

/// The method table of wrapped files whose wrapped methods have shared
/// memory (the `unix` VFS) ...
static WITH_SHM: ffi::sqlite3_io_methods = METHODS;

/// ... and of those without (`unix-none`): SQLite decides whether WAL can
/// share memory from xShmMap's presence, so it must stay absent.
static WITHOUT_SHM: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    ..METHODS
};

// The VFS's other methods: straight to the wrapped VFS.
// SAFETY (all of them): SQLite calls them with one of our registered VFSes
// (`base_of`'s contract) and arguments valid for the wrapped method; each is
// registered only where the wrapped VFS has the method, so the `unwrap`s
// cannot fail.

unsafe extern "C" fn x_delete(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, sync_dir: c_int) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xDelete.unwrap()(base, name, sync_dir)
    }
}

unsafe extern "C" fn x_access(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, flags: c_int, out: *mut c_int) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xAccess.unwrap()(base, name, flags, out)
    }
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xFullPathname.unwrap()(base, name, n, out)
    }
}

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    unsafe {
        let base = base_of(vfs);
        (*base).xDlOpen.unwrap()(base, name)
    }
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    unsafe {
        let base = base_of(vfs);
        (*base).xDlError.unwrap()(base, n, out)
    }
}

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn x_dl_sym(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void, symbol: *const c_char) -> DlSym {
    unsafe {
        let base = base_of(vfs);
        (*base).xDlSym.unwrap()(base, handle, symbol)
    }
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    unsafe {
        let base = base_of(vfs);
        (*base).xDlClose.unwrap()(base, handle)
    }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xRandomness.unwrap()(base, n, out)
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, microseconds: c_int) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xSleep.unwrap()(base, microseconds)
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xCurrentTime.unwrap()(base, out)
    }
}

unsafe extern "C" fn x_get_last_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xGetLastError.unwrap()(base, n, out)
    }
}

unsafe extern "C" fn x_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xCurrentTimeInt64.unwrap()(base, out)
    }
}

unsafe extern "C" fn x_set_system_call(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    call: ffi::sqlite3_syscall_ptr,
) -> c_int {
    unsafe {
        let base = base_of(vfs);
        (*base).xSetSystemCall.unwrap()(base, name, call)
    }
}

unsafe extern "C" fn x_get_system_call(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> ffi::sqlite3_syscall_ptr {
    unsafe {
        let base = base_of(vfs);
        (*base).xGetSystemCall.unwrap()(base, name)
    }
}

unsafe extern "C" fn x_next_system_call(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *const c_char {
    unsafe {
        let base = base_of(vfs);
        (*base).xNextSystemCall.unwrap()(base, name)
    }
}
