//! Signals and the graceful drain: upgrades and `/readyz` answer 503, every chat client gets
//! close 1001, and the loop ends once they are gone or `--shutdown-timeout` has passed.

use std::io;

use chat_protocol::CloseReason;

use super::EventLoop;
use crate::connection::State;

impl EventLoop {
    /// SIGINT or SIGTERM: the first begins the drain, a second one stops at once. SIGHUP
    /// (registered only with TLS): reload the certificate.
    pub(super) fn signalled(&mut self) -> io::Result<()> {
        let Some(signals) = self.signals.as_mut() else {
            return Ok(());
        };
        let (mut count, mut hangup) = (0, false);
        for signal in signals.pending() {
            if signal == signal_hook::consts::SIGHUP {
                hangup = true;
            } else {
                count += 1;
            }
        }
        if hangup {
            self.reload_tls();
        }
        if count == 0 {
            return Ok(());
        }
        if self.drain_deadline.is_some() || count > 1 {
            log::warn!("second signal: stopping without waiting for clients");
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped by a second signal",
            ));
        }
        log::info!("signal received: shutting down (send it again to stop at once)");
        self.begin_drain();
        Ok(())
    }

    /// Graceful shutdown: WebSocket upgrades and `/readyz` answer 503 from now on, every chat
    /// client gets close 1001, and `run` returns once they are gone or the timeout passed.
    pub(super) fn begin_drain(&mut self) {
        if let Some(hook) = self.on_drain.take() {
            hook();
        }
        log::info!(
            "draining {} chat clients (at most {:?})",
            self.metrics.websocket_open,
            self.config.shutdown_timeout
        );
        self.drain_deadline = Some(self.now.instant + self.config.shutdown_timeout);
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.client().is_some())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.close_client(key, CloseReason::Shutdown, false);
        }
        self.settle();
    }

    /// Every chat client is gone and nothing is left to write.
    pub(super) fn drained(&self) -> bool {
        self.conns.iter().all(|(_, c)| match c.state {
            State::Gone => true,
            State::Http { .. } => c.queued() == 0,
            State::WebSocket { .. } | State::Closing(_) => false,
        })
    }
}
