//! Readiness for systemd (`Type=notify`, see `deploy/systemd/chat-mio-server.service`): the
//! server says READY=1 once it listens and STOPPING=1 when a graceful shutdown begins. Outside
//! systemd (no `NOTIFY_SOCKET`) both do nothing.

use sd_notify::NotifyState;

/// The socket is bound and listening: connections are served from now on (the first ones may
/// wait in the backlog for a moment while the loop starts).
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// The drain has begun: clients are being closed.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("cannot notify systemd: {e}");
    }
}
