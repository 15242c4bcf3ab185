//! Server-sent events, as OpenAI-compatible services stream them: robust to
//! events split across reads, `\r\n` line endings, comments (keep-alives),
//! multi-line `data:` and the closing `data: [DONE]`.

/// An incremental SSE parser: feed it bytes as they arrive, take out the
/// `data` of each complete event.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    data: Option<String>,
    done: bool,
}

/// One parsed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// The `data` of an event (lines joined with `\n`).
    Data(String),
    /// `data: [DONE]`: the stream is finished.
    Done,
}

/// The longest event we accept; a service that sends more without a blank line is broken.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Add bytes; returns the events they complete, or an error for an oversized event.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.line(&line) {
                if event == SseEvent::Done {
                    self.done = true;
                }
                events.push(event);
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(format!("an event longer than {MAX_EVENT_BYTES} bytes"));
        }
        Ok(events)
    }

    /// The end of the input: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.buffer.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
            events.extend(self.line(rest.trim_end_matches('\r')));
        }
        events.extend(self.line(""));
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take()?;
            return Some(if data.trim() == "[DONE]" {
                SseEvent::Done
            } else {
                SseEvent::Data(data)
            });
        }
        if line.starts_with(':') {
            return None; // A comment, e.g. a keep-alive.
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if field == "data" {
            match &mut self.data {
                // An event that never ends is cut off at the size limit (then fails to parse).
                Some(data) if data.len() + value.len() < MAX_EVENT_BYTES => {
                    data.push('\n');
                    data.push_str(value);
                }
                Some(_) => {}
                None => self.data = Some(value.to_string()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = b": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: line one\ndata: line two\n\nevent: x\ndata: [DONE]\n\n";
        for size in 1..stream.len() {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            for piece in stream.chunks(size) {
                events.extend(parser.feed(piece).unwrap());
            }
            events.extend(parser.finish());
            assert_eq!(
                events,
                vec![
                    SseEvent::Data("{\"a\":1}".into()),
                    SseEvent::Data("line one\nline two".into()),
                    SseEvent::Done
                ],
                "split every {size} bytes"
            );
        }
    }

    #[test]
    fn a_last_event_without_blank_line_counts() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(parser.finish(), vec![SseEvent::Data("tail".into())]);
    }
}
