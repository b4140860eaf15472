//! Ctrl-C and SIGTERM for the long-running commands: the handler only raises a
//! flag; `up`, `chaos`, `experiment` and `bench` poll it, stop what they
//! started, and exit cleanly.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Catch SIGINT and SIGTERM from now on.
pub fn catch() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// True once SIGINT or SIGTERM arrived (after [`catch`]).
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
