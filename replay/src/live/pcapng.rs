//! The pcapng form of the live view (a Wireshark extcap interface): each connection, once it
//! has ended, as the synthetic TCP session `spliff replay -o out.pcapng` writes for it.

use std::io::{self, Write};

use crate::pcapng::{PcapngOptions, PcapngSink};
use crate::pipeline::{ReplayedConnection, Sink, is_http};
use crate::text::parts::Part;

/// The pcapng sink and the number of connections it has planned.
pub struct LivePcapng {
    sink: PcapngSink,
    connections: usize,
}

impl std::fmt::Debug for LivePcapng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePcapng")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl LivePcapng {
    /// Writes the section and interface header to `out`.
    pub(super) fn start(out: &mut dyn Write) -> io::Result<LivePcapng> {
        let sink = PcapngSink::new(PcapngOptions::default());
        sink.begin(out)?;
        out.flush()?;
        Ok(LivePcapng {
            sink,
            connections: 0,
        })
    }

    /// The packets of a whole connection, in order.
    pub(super) fn connection(&mut self, c: &ReplayedConnection<'_>) -> io::Result<Vec<Part>> {
        let index = self.connections;
        self.connections += 1;
        let flow = self.sink.context(
            index,
            &c.info,
            is_http(&c.result.detection, !c.result.exchanges.is_empty()),
        );
        let items = self.sink.render(index, c, flow)?;
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(seq, item)| Part {
                ts_ns: item.ts_ns,
                seq: seq as u64,
                bytes: item.bytes,
            })
            .collect())
    }
}
