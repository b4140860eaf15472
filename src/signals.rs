//! Ctrl-C and SIGTERM for the long-running commands: `signal-hook` raises a
//! flag; `up`, `chaos`, `experiment`, `bench` and `logs --follow` poll it, stop
//! what they started, and exit cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

fn flag() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catch SIGINT and SIGTERM from now on (raising the flag [`stopped`] reads).
pub fn catch() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registering can only fail for a signal that cannot be caught; these can.
        let _ = signal_hook::flag::register(sig, flag().clone());
    }
}

/// True once SIGINT or SIGTERM arrived (after [`catch`]).
pub fn stopped() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Die quietly on a closed pipe (`synod sim --seeds 100 | head`), as Unix
/// tools do: give SIGPIPE back its default action (Rust ignores it).
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread
    // exists; no handler runs our code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
