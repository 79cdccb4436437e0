//! Graceful shutdown: one trigger, any number of listeners that learn of it.

use tokio::sync::watch;

/// The side that starts a shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The side that waits for one. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every listener to shut down.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once shutdown has been triggered (or the trigger dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

/// Resolves when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM (what `kill`,
/// systemd and container runtimes send). Servers then stop accepting and finish what is in
/// flight, so both signals get the same graceful shutdown.
pub async fn terminate_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
