//! Reading `text/event-stream` as the server writes it: `id:` and `data:`
//! fields, events ended by a blank line, `:` comments (heartbeats).
//!
//! Written here rather than taken from a crate: the format needed is the
//! server's own, a few lines of it, and the watch must see heartbeats (to
//! tell a live idle stream from a dead connection), which event-only
//! parsers hide.

/// What one complete block of lines held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// An event: its `id` (if any) and its `data` lines joined by `\n`.
    Event { id: Option<String>, data: String },
    /// A comment line, such as the server's heartbeat.
    Comment,
}

/// Bytes in, items out; keeps what it has not yet seen the end of.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: Vec<u8>,
    id: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// Takes a chunk of the body; answers the items it completed, in order.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Item> {
        self.buffer.extend_from_slice(chunk);
        let mut items = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if let Some(item) = self.line(line) {
                items.push(item);
            }
        }
        items
    }

    fn line(&mut self, line: &str) -> Option<Item> {
        if line.is_empty() {
            let id = self.id.take();
            return self.data.take().map(|data| Item::Event { id, data });
        }
        if line.starts_with(':') {
            return Some(Item::Comment);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `event:`, `retry:` and unknown fields carry nothing the watch uses.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Item, Parser};

    fn event(id: &str, data: &str) -> Item {
        Item::Event {
            id: Some(id.to_owned()),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_comments_and_chunks_split_anywhere() {
        let body = b":heartbeat\n\nid: 17\ndata: {\"a\":1}\n\nid:18\r\ndata:x\r\ndata: y\r\n\r\n";
        let whole = Parser::default().push(body);
        assert_eq!(
            whole,
            vec![Item::Comment, event("17", "{\"a\":1}"), event("18", "x\ny")]
        );
        // Byte by byte gives the same items.
        let mut parser = Parser::default();
        let split: Vec<Item> = body.iter().flat_map(|b| parser.push(&[*b])).collect();
        assert_eq!(split, whole);
    }

    #[test]
    fn an_event_without_data_is_no_event_and_its_id_does_not_leak() {
        let mut parser = Parser::default();
        assert_eq!(parser.push(b"retry: 10\nid: 9\n\n"), vec![]);
        assert_eq!(
            parser.push(b"data: z\n\n"),
            vec![Item::Event {
                id: None,
                data: "z".to_owned()
            }]
        );
        // Unfinished: nothing yet.
        assert_eq!(parser.push(b"id: 3\ndata: w"), vec![]);
        assert_eq!(parser.push(b"\n\n"), vec![event("3", "w")]);
    }
}
