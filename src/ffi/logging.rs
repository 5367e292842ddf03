//! The crate's log lines, forwarded to a C callback (charon's bus).

use core::ffi::{c_char, c_int, c_void};
use std::ffi::CString;
use std::sync::{OnceLock, PoisonError, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::gikev2_error_t::{self, *};
use super::{fail, guard};

/// Receives one log line: `level` on charon's scale (0 basic .. 4
/// private), `msg` a NUL-terminated line without a trailing newline, owned
/// by the library and valid only during the call, and the `ctx` given to
/// gikev2_set_log_callback(). Called on the thread that made the call which
/// logs, possibly on several threads at once, while that handle's mutex is
/// held: it must not call into this library and must not unwind.
pub type gikev2_log_cb_t =
    Option<unsafe extern "C" fn(level: c_int, msg: *const c_char, ctx: *mut c_void)>;

struct Sink {
    cb: unsafe extern "C" fn(c_int, *const c_char, *mut c_void),
    ctx: *mut c_void,
    max_level: c_int,
}

// SAFETY: the caller of gikev2_set_log_callback promises that the callback
// and its context may be used from any thread (documented there).
unsafe impl Send for Sink {}
// SAFETY: as above; the sink itself is never mutated through `&`.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();
static LOGGER: CallbackLogger = CallbackLogger;

/// charon's level for a log line: errors are always shown (0), warnings
/// and progress are control flow (1), debugging detail is 2, tracing 3.
/// Level 4 (private data) is never used: the crate does not log secrets.
fn charon_level(l: Level) -> c_int {
    match l {
        Level::Error => 0,
        Level::Warn | Level::Info => 1,
        Level::Debug => 2,
        Level::Trace => 3,
    }
}

fn filter(max_level: c_int) -> LevelFilter {
    match max_level {
        i32::MIN..=-1 => LevelFilter::Off,
        0 => LevelFilter::Error,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

struct CallbackLogger;

impl Log for CallbackLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        sink.as_ref()
            .is_some_and(|s| charon_level(m.level()) <= s.max_level)
    }

    fn log(&self, r: &Record<'_>) {
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        let Some(s) = sink.as_ref() else { return };
        let level = charon_level(r.level());
        if level > s.max_level {
            return;
        }
        let mut line = r.args().to_string().into_bytes();
        line.retain(|&b| b != 0);
        let line = CString::new(line).unwrap_or_default();
        // SAFETY: the callback was installed by C with this context and
        // takes a NUL-terminated string valid for the call.
        unsafe { (s.cb)(level, line.as_ptr(), s.ctx) };
    }

    fn flush(&self) {}
}

/// Installs (or, with `cb` NULL, removes) the callback that receives the
/// library's log lines up to `max_level` on charon's scale (-1 silences
/// it): error → 0, warning and info → 1, debug → 2, trace → 3 (4, private,
/// is never used). `ctx` is passed back unchanged; it and `cb` must stay
/// usable from any thread until the callback is replaced or removed. Once
/// this returns, the previous callback is no longer called. Process-wide;
/// fails with GIKEV2_ERR_STATE if other Rust code in the process already
/// installed a logger.
///
/// # Safety
/// `cb`, if not NULL, is a function that may be called with `ctx` from any
/// thread until it is replaced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_set_log_callback(
    cb: gikev2_log_cb_t,
    ctx: *mut c_void,
    max_level: c_int,
) -> gikev2_error_t {
    guard("gikev2_set_log_callback", || {
        // The first call installs our logger for good; `log` allows one.
        let ours = *INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok());
        if !ours {
            return Err(fail(
                GIKEV2_ERR_STATE,
                "another logger is installed in this process",
            ));
        }
        let mut sink = SINK.write().unwrap_or_else(PoisonError::into_inner);
        *sink = cb.map(|cb| Sink { cb, ctx, max_level });
        log::set_max_level(if sink.is_some() {
            filter(max_level)
        } else {
            LevelFilter::Off
        });
        Ok(())
    })
}
