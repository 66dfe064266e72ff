//! The event hub behind `GET /api/v1/events`: one broadcast channel that the supervisor, the
//! registry watcher, the telemetry sampler and the deployer publish into, served to each
//! client as Server-Sent Events.
//!
//! | event        | data                                              |
//! | ------------ | ------------------------------------------------- |
//! | `job`        | the job view `{id, spec, status}` on each change   |
//! | `metrics`    | `{job, records, next}`: new metric lines           |
//! | `registry`   | `{at}`: models, versions, aliases or evals changed |
//! | `telemetry`  | one telemetry `Sample`, 1 Hz                       |
//! | `deployment` | a deployment journal entry                         |
//! | `lagged`     | `{missed}`: this client fell behind; refetch       |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

/// One event, serialised once however many clients receive it.
#[derive(Clone, Debug)]
pub struct Published {
    pub name: &'static str,
    pub data: Arc<str>,
}

/// The publishing side; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Published>,
    /// Set when the daemon stops: every open stream ends, so shutdown need not wait on them.
    closing: Arc<watch::Sender<bool>>,
}

/// A stream item: an event to send, or the daemon stopping.
enum Item {
    Send(Event),
    Stop,
}

impl Hub {
    /// A hub that keeps up to `capacity` events for slow clients before they lag.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends every open event stream (the daemon is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Sends `data` as event `name` to every connected client (none connected is fine).
    pub fn publish(&self, name: &'static str, data: &impl Serialize) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        if let Ok(text) = serde_json::to_string(data) {
            let _ = self.sender.send(Published {
                name,
                data: text.into(),
            });
        }
    }

    /// A new client's stream, with keep-alive comments every 15 s.
    pub fn stream(&self) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>> + Send + 'static + use<>> {
        let events = BroadcastStream::new(self.sender.subscribe()).map(|item| {
            Item::Send(match item {
                Ok(event) => Event::default().event(event.name).data(&*event.data),
                Err(BroadcastStreamRecvError::Lagged(missed)) => Event::default()
                    .event("lagged")
                    .data(serde_json::json!({ "missed": missed }).to_string()),
            })
        });
        let stop = WatchStream::new(self.closing.subscribe())
            .filter(|closing| *closing)
            .map(|_| Item::Stop);
        let stream = events
            .merge(stop)
            .take_while(|item| matches!(item, Item::Send(_)))
            .filter_map(|item| match item {
                Item::Send(event) => Some(Ok(event)),
                Item::Stop => None,
            });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}
