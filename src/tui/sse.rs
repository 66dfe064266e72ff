//! A Server-Sent Events parser (the `text/event-stream` framing of `GET /api/v1/events`).
//!
//! Bytes arrive in arbitrary chunks; complete lines are parsed as they come, and an event is
//! emitted at each blank line. Comment lines (`: keep-alive`) and unknown fields are ignored.

/// One complete event: its name (`message` when none was given) and its data lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
}

/// Longest partial line kept; a daemon sending more without a newline is misbehaving.
const MAX_LINE: usize = 8 << 20;

impl SseParser {
    /// Feeds a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + offset;
            let line = String::from_utf8_lossy(&self.pending[start..end]).into_owned();
            start = end + 1;
            if let Some(event) = self.line(line.strip_suffix('\r').unwrap_or(&line)) {
                events.push(event);
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let event = if event.is_empty() { "message".to_owned() } else { event };
        Some(SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments_skipped() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nevent: job\ndata: {\"a\"").is_empty());
        let events = parser.push(b":1}\r\n\r\nevent: registry\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "job".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "registry".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn event_without_name_is_a_message() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: hi\n\n");
        assert_eq!(events[0].event, "message");
    }
}
