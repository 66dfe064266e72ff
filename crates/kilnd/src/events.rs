//! The event hub behind `GET /api/v1/events`: one broadcast channel that the supervisor, the
//! control API's registry mutations, the telemetry sampler and the deployer publish
//! [`Event`]s into, served to each client as Server-Sent Events (the event names and bodies
//! are `kiln_core::api::Event`'s).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use kiln_core::api::{Event, Lagged};
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
    Send(SseEvent),
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

    /// Sends `event` to every connected client (none connected is fine).
    pub fn publish(&self, event: &Event) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        if let Ok(text) = event.data() {
            let _ = self.sender.send(Published {
                name: event.name(),
                data: text.into(),
            });
        }
    }

    /// Whether any client is listening.
    pub fn has_listeners(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new client's stream, with keep-alive comments every 15 s.
    pub fn stream(
        &self,
    ) -> Sse<impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static + use<>> {
        let events = BroadcastStream::new(self.sender.subscribe()).map(|item| {
            Item::Send(match item {
                Ok(event) => SseEvent::default().event(event.name).data(&*event.data),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    let lagged = Event::Lagged(Lagged { missed });
                    SseEvent::default()
                        .event(lagged.name())
                        .data(lagged.data().unwrap_or_default())
                }
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
