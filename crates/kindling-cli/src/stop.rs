//! SIGINT and SIGTERM during training. The first asks the training loop to
//! stop at the next step boundary and checkpoint (the library polls the
//! flag [`on_signals`] returns; it installs no handler itself); a second
//! ends the process at once. The command then exits with 128 + the
//! signal's number (130 for SIGINT, 143 for SIGTERM), as shells expect.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics, write(2), _exit(2).
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe; a second signal means "now".
        unsafe { libc::_exit(128 + sig) };
    }
    SIGNAL.store(sig, Ordering::SeqCst);
    let msg = b"\nstopping after this step to save a checkpoint (signal again to quit at once)\n";
    // SAFETY: write(2) on stderr with a valid buffer is async-signal-safe.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Installs the handlers for a training command and returns the flag the
/// training loop polls between steps.
pub fn on_signals() -> &'static AtomicBool {
    #[cfg(unix)]
    // SAFETY: a zeroed sigaction with a handler that only touches atomics
    // and calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    &STOP
}

/// The exit code of a command stopped by a signal, if one arrived.
pub fn exit_code() -> Option<u8> {
    let sig = SIGNAL.load(Ordering::SeqCst);
    (sig > 0).then(|| (128 + sig) as u8)
}
