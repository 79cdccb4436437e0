//! Serving a recording to `tokio-console`: a console server whose updates are the recorded
//! ones, sent with the gaps they were recorded with (divided by a speed), so the console shows
//! the run as it went. Pausing in the console pauses the replay.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use console_api::instrument::instrument_server::{Instrument, InstrumentServer};
use console_api::instrument::{
    InstrumentRequest, PauseRequest, PauseResponse, ResumeRequest, ResumeResponse, State,
    StateRequest, TaskDetailsRequest, Temporality, Update,
};
use console_api::tasks::TaskDetails;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

use super::ConsoleRecording;

/// Longest gap between two replayed updates: a recording that sat idle for minutes replays
/// without the wait.
pub const REPLAY_GAP_MAX: Duration = Duration::from_secs(2);

/// Updates buffered per console client ahead of what it has read.
const CLIENT_BUFFER: usize = 4;

/// The replaying console server.
#[derive(Debug)]
pub struct Replay {
    updates: Arc<Vec<Update>>,
    speed: f64,
    paused: watch::Sender<bool>,
}

impl Replay {
    /// A replay of `recording` at `speed` (2.0 is twice as fast as recorded).
    pub fn new(recording: ConsoleRecording, speed: f64) -> Replay {
        Replay {
            updates: Arc::new(recording.updates),
            speed: if speed > 0.0 { speed } else { 1.0 },
            paused: watch::channel(false).0,
        }
    }

    /// The wait before update `i`: its gap from the one before, at the replay's speed.
    fn gap(&self, i: usize) -> Duration {
        let at = |u: &Update| u.now.as_ref().map(|t| (t.seconds, t.nanos));
        let (Some(prev), Some(next)) = (
            i.checked_sub(1)
                .and_then(|p| self.updates.get(p))
                .and_then(at),
            self.updates.get(i).and_then(at),
        ) else {
            return Duration::ZERO;
        };
        let ns = (next.0 - prev.0) as f64 * 1e9 + f64::from(next.1 - prev.1);
        Duration::from_secs_f64((ns.max(0.0) / 1e9 / self.speed).min(REPLAY_GAP_MAX.as_secs_f64()))
    }

    /// When the recording's last update was made.
    fn last_now(&self) -> Option<prost_types::Timestamp> {
        self.updates.iter().rev().find_map(|u| u.now)
    }
}

/// Waits while the replay is paused.
async fn while_paused(paused: &mut watch::Receiver<bool>) {
    let _ = paused.wait_for(|p| !*p).await;
}

#[tonic::async_trait]
impl Instrument for Replay {
    type WatchUpdatesStream = ReceiverStream<Result<Update, Status>>;
    type WatchTaskDetailsStream = ReceiverStream<Result<TaskDetails, Status>>;
    type WatchStateStream = ReceiverStream<Result<State, Status>>;

    async fn watch_updates(
        &self,
        _: Request<InstrumentRequest>,
    ) -> Result<Response<Self::WatchUpdatesStream>, Status> {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let gaps: Vec<Duration> = (0..self.updates.len()).map(|i| self.gap(i)).collect();
        let (updates, mut paused) = (self.updates.clone(), self.paused.subscribe());
        tokio::spawn(async move {
            for (update, gap) in updates.iter().zip(gaps) {
                tokio::time::sleep(gap).await;
                while_paused(&mut paused).await;
                if tx.send(Ok(update.clone())).await.is_err() {
                    return;
                }
            }
            // The recording is over; the console keeps showing it until it leaves.
            tx.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn watch_task_details(
        &self,
        request: Request<TaskDetailsRequest>,
    ) -> Result<Response<Self::WatchTaskDetailsStream>, Status> {
        // A recording keeps no poll-time histograms: the details view shows the task without.
        let (tx, rx) = mpsc::channel(1);
        let details = TaskDetails {
            task_id: request.into_inner().id,
            now: self.last_now(),
            scheduled_times_histogram: None,
            poll_times_histogram: None,
        };
        tokio::spawn(async move {
            if tx.send(Ok(details)).await.is_ok() {
                tx.closed().await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn watch_state(
        &self,
        _: Request<StateRequest>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let mut paused = self.paused.subscribe();
        tokio::spawn(async move {
            loop {
                let temporality = if *paused.borrow_and_update() {
                    Temporality::Paused
                } else {
                    Temporality::Live
                };
                let state = State {
                    temporality: temporality as i32,
                };
                if tx.send(Ok(state)).await.is_err() || paused.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn pause(&self, _: Request<PauseRequest>) -> Result<Response<PauseResponse>, Status> {
        self.paused.send_replace(true);
        Ok(Response::new(PauseResponse {}))
    }

    async fn resume(&self, _: Request<ResumeRequest>) -> Result<Response<ResumeResponse>, Status> {
        self.paused.send_replace(false);
        Ok(Response::new(ResumeResponse {}))
    }
}

/// Serves `replay` on `listener` until `shutdown` completes.
pub async fn serve(
    replay: Replay,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(InstrumentServer::new(replay))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
